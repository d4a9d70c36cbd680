"""Audit log benchmark: durable appends per second, and verification rate of a 100,000-entry log.

Peers measured in the same run: a bare `write` + `fsync` of the same line bytes (the physical
limit of a durable append on this disk), and the issue's goal of 50,000 entries verified per
second (hashing and chain checks; one signature per checkpoint).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vault import merkle  # noqa: E402
from vault.audit import AuditLog, canonical  # noqa: E402
from vault.checkpoint import sign_checkpoint  # noqa: E402
from vault.crypto.signing import SigningKey  # noqa: E402

GOAL_ENTRIES_PER_S = 50_000
ORIGIN = "strongroom.local/vault/bench0000bench00"
DETAIL = {"purpose": "train", "version": 3, "records": 60000, "rule": "allow-operators-train-dp"}


def bench_durable_appends(work: Path, count: int) -> tuple[float, float]:
    log = AuditLog(work / "appends" / "audit", origin=ORIGIN)
    log.append("alice", "operator", "session.unlock", "vault", "ok", {})
    start = time.perf_counter()
    for i in range(count):
        log.append("alice", "operator", "dataset.read", f"set{i % 7}", "ok", DETAIL)
    ours = count / (time.perf_counter() - start)

    line = log.log_path.read_bytes().split(b"\n")[1] + b"\n"
    fd = os.open(work / "bare.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = time.perf_counter()
        for _ in range(count):
            os.write(fd, line)
            os.fsync(fd)
        bare = count / (time.perf_counter() - start)
    finally:
        os.close(fd)
    return ours, bare


def make_log(audit_dir: Path, entries: int, key: SigningKey) -> str:
    """Write an entries-long log directly (no fsync per line) and a signed checkpoint over it."""
    audit_dir.mkdir(parents=True)
    tree = merkle.MerkleTree()
    chunks = []
    for seq in range(entries):
        entry = {
            "v": 1,
            "seq": seq,
            "time": "2025-03-01T09:30:12.123456Z",
            "actor": "alice",
            "role": "operator",
            "action": "dataset.read",
            "subject": f"set{seq % 7}",
            "outcome": "ok",
            "detail": DETAIL,
            "prev": tree.root().hex(),
        }
        data = canonical(entry)
        tree.append_data(data)
        chunks.append(data + b"\n")
    (audit_dir / "log.jsonl").write_bytes(b"".join(chunks))
    (audit_dir / "pubkey.pem").write_bytes(key.public_pem())
    text = sign_checkpoint(key, ORIGIN, entries, tree.root())
    (audit_dir / "checkpoint").write_text(text)
    (audit_dir / "checkpoints").mkdir()
    (audit_dir / "checkpoints" / f"{entries}.txt").write_text(text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000, help="entries in the verified log")
    parser.add_argument("--appends", type=int, default=300, help="durable appends to time")
    parser.add_argument("--repeat", type=int, default=3, help="verification runs (best is reported)")
    args = parser.parse_args()
    key = SigningKey.generate()
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        work = Path(tmp)
        ours, bare = bench_durable_appends(work, args.appends)
        print(
            f"durable appends        {ours:10.0f} /s   bare write+fsync {bare:10.0f} /s   ratio {ours / bare:.2f}"
        )

        audit_dir = work / "big" / "audit"
        saved = make_log(audit_dir, args.entries, key)
        log = AuditLog(audit_dir)
        best = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            report = log.verify(key.public_pem(), saved)
            best = min(best, time.perf_counter() - start)
            assert report.ok and report.truncation_ruled_out, report.findings
        rate = args.entries / best
        print(
            f"verify {args.entries} entries {best:7.2f} s   {rate:10.0f} entries/s   "
            f"goal {GOAL_ENTRIES_PER_S} /s   ratio {rate / GOAL_ENTRIES_PER_S:.2f}"
        )

        log.append("alice", "operator", "session.unlock", "vault", "ok", {})  # builds the state cache
        count = min(args.appends, 100)
        start = time.perf_counter()
        for i in range(count):
            log.append("alice", "operator", "dataset.read", f"set{i % 7}", "ok", DETAIL)
        big = count / (time.perf_counter() - start)
        print(f"durable appends to a {args.entries}-entry log {big:8.0f} /s   ratio to bare {big / bare:.2f}")
        start = time.perf_counter()
        log.write_checkpoint(key, ORIGIN)
        print(
            f"checkpoint after {count} appends to a {args.entries}-entry log {time.perf_counter() - start:.3f} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

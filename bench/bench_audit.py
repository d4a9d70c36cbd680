"""Audit log benchmark: durable sealed appends per second, and verification rate of a sealed
100,000-entry log.

Peers measured in the same run: a bare `write` + `fsync` of the same line bytes (the physical
limit of a durable append on this disk; goal: at least 0.5x), and the goal of 100,000 entries
verified per second (hashing, chain, every entry's seal, the epoch certificates from the initial
key, one signature per checkpoint). Also printed: the hash chain alone, without the seals.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vault.audit import AuditLog, epochs, merkle  # noqa: E402
from vault.audit.checkpoint import sign_checkpoint  # noqa: E402
from vault.crypto.signing import SigningKey  # noqa: E402
from vault.storage.files import canonical_json as canonical  # noqa: E402

GOAL_ENTRIES_PER_S = 100_000
EPOCH_EVERY = 1_000  # entries per epoch in the verified log (one command's worth)
ORIGIN = "strongroom.local/vault/bench0000bench00"
DETAIL = {"purpose": "train", "version": 3, "records": 60000, "rule": "allow-operators-train-dp"}


def appends_per_second(log: AuditLog, count: int) -> float:
    start = time.perf_counter()
    for i in range(count):
        log.append("alice", "operator", "dataset.read", f"set{i % 7}", "ok", DETAIL)
    return count / (time.perf_counter() - start)


def bare_per_second(path: Path, line: bytes, count: int) -> float:
    """The peer: the same bytes with one write and one fsync each, nothing else."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = time.perf_counter()
        for _ in range(count):
            os.write(fd, line)
            os.fsync(fd)
        return count / (time.perf_counter() - start)
    finally:
        os.close(fd)


def compare_appends(log: AuditLog, bare_path: Path, count: int, rounds: int) -> tuple[float, float]:
    """Best rate of ours and of the peer over interleaved rounds (a shared disk is noisy)."""
    log.append("alice", "operator", "session.unlock", "vault", "ok", {})  # builds the tree state
    line = log.log_path.read_bytes().rsplit(b"\n", 2)[-2] + b"\n"
    ours = bare = 0.0
    for _ in range(rounds):
        ours = max(ours, appends_per_second(log, count // rounds))
        bare = max(bare, bare_per_second(bare_path, line, count // rounds))
    return ours, bare


def make_log(audit_dir: Path, entries: int, key: SigningKey) -> tuple[str, bytes]:
    """Write an entries-long sealed log directly (no fsync per line), a new epoch every EPOCH_EVERY
    entries, and a signed checkpoint over it; returns the checkpoint and the initial key."""
    audit_dir.mkdir(parents=True)
    tree = merkle.MerkleTree()
    chunks = []
    live = previous = None
    first = None
    for seq in range(entries):
        if seq % EPOCH_EVERY == 0:
            previous, live = live, epochs.new_epoch(seq // EPOCH_EVERY, seq, 0)
            first = first or live.signing.public_raw()
            detail = epochs.epoch_detail(previous, live, seq, tree.root().hex(), "bench", False)
            action = "audit.epoch"
        else:
            detail, action = DETAIL, "dataset.read"
        entry = {
            "v": 1,
            "seq": seq,
            "time": "2025-03-01T09:30:12.123456Z",
            "actor": "alice",
            "role": "operator",
            "action": action,
            "subject": f"set{seq % 7}",
            "outcome": "ok",
            "detail": detail,
            "prev": tree.root().hex(),
            "seal": "",
        }
        data = epochs.seal_line(live.mac_key, canonical(entry))
        tree.append_data(data)
        chunks.append(data + b"\n")
    with open(audit_dir / "log.jsonl", "wb") as f:
        f.write(b"".join(chunks))
        f.flush()
        os.fsync(f.fileno())  # so that the timed appends do not pay for flushing the whole log
    (audit_dir / "pubkey.pem").write_bytes(key.public_pem())
    text = sign_checkpoint(key, ORIGIN, entries, tree.root())
    (audit_dir / "checkpoint").write_text(text)
    (audit_dir / "checkpoints").mkdir()
    (audit_dir / "checkpoints" / f"{entries}.txt").write_text(text)
    assert first is not None
    return text, first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000, help="entries in the verified log")
    parser.add_argument("--appends", type=int, default=300, help="durable appends to time")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each measurement (best is reported)")
    args = parser.parse_args()
    key = SigningKey.generate()
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        work = Path(tmp)
        small = AuditLog(work / "small" / "audit", origin=ORIGIN)
        small.attach_sealer(key.raw(), "alice", "operator")
        ours, bare = compare_appends(small, work / "bare-small.log", args.appends, args.repeat)
        print(
            f"durable sealed appends {ours:10.0f} /s   bare write+fsync {bare:10.0f} /s   ratio {ours / bare:.2f}"
            "   (goal 0.5)"
        )

        audit_dir = work / "big" / "audit"
        saved, initial = make_log(audit_dir, args.entries, key)
        log = AuditLog(audit_dir)
        best = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            report = log.verify(key.public_pem(), saved, initial_key=initial)
            best = min(best, time.perf_counter() - start)
            assert report.ok and report.truncation_ruled_out and report.initial_key_checked, report.findings
            assert report.epochs == -(-args.entries // EPOCH_EVERY)
        rate = args.entries / best
        lines = log.log_path.read_bytes().split(b"\n")[:-1]
        seals_best = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            assert not epochs.check_seals(lines, initial).findings
            seals_best = min(seals_best, time.perf_counter() - start)
        print(
            f"verify {args.entries} sealed entries {best:7.2f} s   {rate:10.0f} entries/s   "
            f"goal {GOAL_ENTRIES_PER_S} /s   ratio {rate / GOAL_ENTRIES_PER_S:.2f}   "
            f"(of which seals and epochs {seals_best:.2f} s, {args.entries / seals_best:.0f} entries/s)"
        )

        log.attach_sealer(key.raw(), "alice", "operator")
        bare_big = work / "bare-big.log"  # the peer appends to a file as big as the log, as it does
        shutil.copyfile(log.log_path, bare_big)
        with open(bare_big, "rb+") as f:
            os.fsync(f.fileno())
        ours, bare = compare_appends(log, bare_big, args.appends, args.repeat)
        print(
            f"durable appends to a {args.entries}-entry log {ours:8.0f} /s   bare write+fsync {bare:8.0f} /s   "
            f"ratio {ours / bare:.2f}"
        )
        count = 100
        start = time.perf_counter()
        log.write_checkpoint(key, ORIGIN)  # no cached signed tree yet: hashes the whole log once
        cold = time.perf_counter() - start
        for i in range(count):
            log.append("alice", "operator", "dataset.read", f"set{i % 7}", "ok", DETAIL)
        start = time.perf_counter()
        log.write_checkpoint(key, ORIGIN)  # extends the cached signed tree: only the new entries
        warm = time.perf_counter() - start
        print(
            f"checkpoint of a {args.entries}-entry log: first {cold:.3f} s, "
            f"then after {count} more appends {warm:.3f} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

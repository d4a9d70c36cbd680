"""Benchmark: the access report over a large log (goal: 1,000,000 entries in under 10 s, one read of
the log), against a peer measured in the same run: the least any report must do, one `json.loads`
per line and a count by action.

Run: .venv/bin/python bench/bench_audit_report.py [--entries 1000000]
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vault.audit import AuditLog, merkle  # noqa: E402
from vault.audit.checkpoint import sign_checkpoint  # noqa: E402
from vault.audit.report import Scope, build_report, render_html, render_markdown  # noqa: E402
from vault.crypto.signing import SigningKey  # noqa: E402
from vault.storage.files import canonical_json  # noqa: E402

GOAL_SECONDS = 10.0
ORIGIN = "strongroom.local/vault/bench0000bench00"
USERS = [(f"user{i:02d}", "operator" if i % 5 else "admin") for i in range(20)]
DATASETS = [f"set{i:02d}" for i in range(30)]


def activity(seq: int) -> tuple[str, str, str, dict]:
    """A mix of what a busy room writes: mostly reads and decisions, some runs, exports and refusals."""
    user, role = USERS[seq % len(USERS)]
    dataset = DATASETS[(seq // 7) % len(DATASETS)]
    kind = seq % 20
    if kind < 9:
        return (
            user,
            role,
            "dataset.read",
            {"subject": dataset, "purpose": "train", "version": 1, "samples": 60000},
        )
    if kind < 14:
        return (
            user,
            role,
            "policy.decision",
            {
                "subject": dataset,
                "request_action": "train",
                "rule": "roles.operator",
                "reason": "ok",
                "dry_run": False,
                "outcome": "denied" if kind == 13 else "allowed",
            },
        )
    if kind == 14:
        return (
            user,
            role,
            "train.start",
            {"subject": dataset, "run": f"run-{seq}", "model": "cnn", "dp": True, "epsilon": 3.0},
        )
    if kind == 15:
        return (
            user,
            role,
            "train.end",
            {
                "subject": dataset,
                "run": f"run-{seq - 1}",
                "model": f"cnn-{seq}",
                "epsilon": 2.99,
                "ledger_epsilon": 5.0,
                "ledger_unbounded": False,
            },
        )
    if kind == 16:
        return user, role, "session.unlock", {"subject": "vault", "pid": seq}
    if kind == 17:
        return (
            user,
            role,
            "network.isolation",
            {
                "subject": "vault",
                "mode": "namespace+seccomp",
                "policy_requires": "namespace+seccomp",
                "isolated": True,
            },
        )
    if kind == 18:
        return (
            user,
            role,
            "model.export",
            {"subject": f"cnn-{seq - 3}", "approvals": [{"user": "user00", "role": "admin"}]},
        )
    return user, role, "session.end", {"subject": "vault", "network_blocked": 0}


def make_log(audit_dir: Path, entries: int) -> None:
    """Write the log directly (one write, not one fsync per line) with a signed checkpoint."""
    key = SigningKey.generate()
    audit_dir.mkdir(parents=True)
    tree = merkle.MerkleTree()
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    with open(audit_dir / "log.jsonl", "wb") as out:
        for seq in range(entries):
            user, role, action, detail = activity(seq)
            subject = detail.pop("subject")
            outcome = detail.pop("outcome", "ok")
            when = start + dt.timedelta(seconds=seq * 2.5)
            entry = {
                "v": 1,
                "seq": seq,
                "time": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "actor": user,
                "role": role,
                "action": action,
                "subject": subject,
                "outcome": outcome,
                "detail": detail,
                "prev": tree.root().hex(),
            }
            data = canonical_json(entry)
            tree.append_data(data)
            out.write(data + b"\n")
    (audit_dir / "pubkey.pem").write_bytes(key.public_pem())
    (audit_dir / "checkpoint").write_text(sign_checkpoint(key, ORIGIN, entries, tree.root()))


def peer(path: Path) -> tuple[float, int]:
    start = time.perf_counter()
    counts: collections.Counter[str] = collections.Counter()
    with open(path, "rb") as f:
        for line in f:
            counts[json.loads(line)["action"]] += 1
    return time.perf_counter() - start, sum(counts.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        audit_dir = Path(tmp) / "audit"
        t0 = time.perf_counter()
        make_log(audit_dir, args.entries)
        print(f"log of {args.entries:,} entries written in {time.perf_counter() - t0:.1f} s")
        peer_s, counted = peer(audit_dir / "log.jsonl")
        start = time.perf_counter()
        report = build_report(audit_dir, Scope(), generated="bench")
        built = time.perf_counter() - start
        markdown = render_markdown(report)
        page = render_html(report)
        total = time.perf_counter() - start
        assert report["verification"]["ok"] and report["entries"] == counted == args.entries
        assert AuditLog(audit_dir).origin is None  # the report reads the log alone, no vault
        print(f"peer (json.loads per line, count by action): {peer_s:.2f} s")
        print(
            f"access report: verified and gathered in {built:.2f} s, with Markdown ({len(markdown) / 1e6:.0f} MB) "
            f"and HTML ({len(page) / 1e6:.0f} MB) in {total:.2f} s; {args.entries / total:,.0f} entries/s"
        )
        print(
            f"ratio to the peer: {total / peer_s:.2f}x; goal: under {GOAL_SECONDS:.0f} s for 1,000,000 entries"
        )
        return 0 if total <= GOAL_SECONDS * args.entries / 1_000_000 else 1


if __name__ == "__main__":
    raise SystemExit(main())

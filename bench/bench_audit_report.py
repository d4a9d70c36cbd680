"""Benchmark: the access report over a large log (goal: 1,000,000 entries in under 10 s, one read of
the log), against a peer measured in the same run: the least any report must do, one `json.loads`
per line and a count by action.

The log is written as a vault writes it: every entry sealed, a new epoch (certified by the one
before) every EPOCH_EVERY entries, a signed checkpoint at the end; `--unsealed` writes the log of a
vault made before sealing. Timed: the report built in this process, then rendered in Markdown and
in HTML; and the command an auditor runs, `strongroom audit report --format F --out FILE`, from
its start to its exit, once per format. The goal is met when each format's command is under it.

Run: .venv/bin/python bench/bench_audit_report.py [--entries 1000000] [--unsealed]
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vault.audit import AuditLog, epochs, merkle  # noqa: E402
from vault.audit.checkpoint import sign_checkpoint  # noqa: E402
from vault.audit.report import Scope, build_report, render_html, render_markdown  # noqa: E402
from vault.crypto.signing import SigningKey  # noqa: E402
from vault.storage.files import canonical_json  # noqa: E402

GOAL_SECONDS = 10.0
EPOCH_EVERY = 1_000  # entries per epoch (one command's worth)
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


def make_log(audit_dir: Path, entries: int, sealed: bool = True) -> None:
    """Write the log directly (one write, not one fsync per line) with a signed checkpoint."""
    key = SigningKey.generate()
    audit_dir.mkdir(parents=True)
    tree = merkle.MerkleTree()
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    live = None
    with open(audit_dir / "log.jsonl", "wb") as out:
        for seq in range(entries):
            if sealed and seq % EPOCH_EVERY == 0:
                previous, live = live, epochs.new_epoch(seq // EPOCH_EVERY, seq, 0)
                user, role, action = "user00", "admin", "audit.epoch"
                detail = {
                    "subject": "audit",
                    **epochs.epoch_detail(previous, live, seq, tree.root().hex(), "command", False),
                }
            else:
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
            data = (
                canonical_json(entry)
                if live is None
                else epochs.seal_line(live.mac_key, canonical_json({**entry, "seal": ""}))
            )
            tree.append_data(data)
            out.write(data + b"\n")
    (audit_dir / "pubkey.pem").write_bytes(key.public_pem())
    (audit_dir / "checkpoint").write_text(sign_checkpoint(key, ORIGIN, entries, tree.root()))


def command(vault: Path, fmt: str, out: Path) -> float:
    """Seconds of `strongroom audit report --format FMT --out OUT`, from its start to its exit."""
    start = time.perf_counter()
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("strongroom")),
            "audit",
            "report",
            "--vault",
            str(vault),
            "--format",
            fmt,
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"audit report --format {fmt} exited {done.returncode}: {done.stderr.strip()}")
    return seconds


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
    parser.add_argument("--unsealed", action="store_true", help="the log of a vault made before sealing")
    args = parser.parse_args()
    goal = GOAL_SECONDS * args.entries / 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        audit_dir = Path(tmp) / "audit"
        t0 = time.perf_counter()
        make_log(audit_dir, args.entries, sealed=not args.unsealed)
        kind = "unsealed" if args.unsealed else f"sealed, an epoch every {EPOCH_EVERY:,}"
        print(f"log of {args.entries:,} entries ({kind}) written in {time.perf_counter() - t0:.1f} s")
        peer_s, counted = peer(audit_dir / "log.jsonl")
        print(f"peer (json.loads per line, count by action): {peer_s:.2f} s")
        start = time.perf_counter()
        report = build_report(audit_dir, Scope(), generated="bench")
        built = time.perf_counter() - start
        markdown = render_markdown(report)
        md_s = time.perf_counter() - start - built
        page = render_html(report)
        html_s = time.perf_counter() - start - built - md_s
        assert report["verification"]["ok"] and report["entries"] == counted == args.entries
        assert report["verification"]["epochs"] == (0 if args.unsealed else -(-args.entries // EPOCH_EVERY))
        assert AuditLog(audit_dir).origin is None  # the report reads the log alone, no vault
        print(
            f"in this process: verified and gathered in {built:.2f} s; Markdown ({len(markdown) / 1e6:.0f} MB) "
            f"{md_s:.2f} s, HTML ({len(page) / 1e6:.0f} MB) {html_s:.2f} s"
        )
        del report, markdown, page
        worst = 0.0
        for fmt in ("md", "html"):
            seconds = command(Path(tmp), fmt, Path(tmp) / f"report.{fmt}")
            worst = max(worst, seconds)
            print(
                f"strongroom audit report --format {fmt} --out FILE: {seconds:.2f} s, "
                f"{args.entries / seconds:,.0f} entries/s, {seconds / peer_s:.2f}x the peer"
            )
        print(
            f"goal: under {goal:.1f} s for {args.entries:,} entries, each format: {'met' if worst < goal else 'not met'}"
        )
        return 0 if worst < goal else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Real processes: appends killed with SIGKILL at several points, and two appenders at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support import REPO
from vault.audit import AuditLog
from vault.audit.checkpoint import parse_checkpoint
from vault.crypto.signing import SigningKey

ORIGIN = "strongroom.local/vault/c0ffeec0ffeec0ff"

APPENDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from vault.audit import AuditLog
    from vault.crypto.signing import SigningKey

    audit_dir, origin, actor, count, seed_hex, checkpoint_every = sys.argv[1:7]
    log = AuditLog(Path(audit_dir), origin=origin)
    key = SigningKey.from_raw(bytes.fromhex(seed_hex))
    print("ready", flush=True)
    sys.stdin.readline()  # wait for the go signal so that appenders really overlap
    for i in range(int(count)):
        entry = log.append(actor, "operator", "dataset.read", "set", "ok", {"i": i, "pad": "x" * (i % 97)})
        print(entry["seq"], flush=True)  # printed only once the entry is durable
        if int(checkpoint_every) and i % int(checkpoint_every) == 0:
            log.write_checkpoint(key)
            print("checkpoint", flush=True)
    """
)


def start(
    audit_dir: Path, actor: str, count: int, key: SigningKey, checkpoint_every: int
) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            APPENDER,
            str(audit_dir),
            ORIGIN,
            actor,
            str(count),
            key.raw().hex(),
            str(checkpoint_every),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


def test_sigkill_during_appends_loses_no_durable_entry(tmp_path: Path) -> None:
    key = SigningKey.generate()
    log = AuditLog(tmp_path / "audit", origin=ORIGIN)
    log.init(key.public_pem())
    acknowledged = -1
    for kill_after in (1, 7, 23, 4, 40, 13):
        proc = start(log.dir, f"run{kill_after}", 10_000, key, checkpoint_every=5)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        seen = 0
        while seen < kill_after:
            line = proc.stdout.readline()
            assert line, "the appender died on its own"
            if line.strip().isdigit():
                acknowledged = max(acknowledged, int(line))
                seen += 1
        proc.send_signal(signal.SIGKILL)  # lands somewhere inside the next append or checkpoint
        proc.wait()
        proc.stdout.close()
        proc.stdin.close()

        report = AuditLog(log.dir).verify(key.public_pem())
        assert {f.kind for f in report.findings} <= {"torn_tail"}, [f.line() for f in report.findings]
        assert report.entries >= acknowledged + 1  # every acknowledged entry survived
        assert [e["seq"] for e in log.entries()] == list(range(report.entries))

    # The next writer carries on from wherever the crash left the log, and signs it.
    log.append("admin", "admin", "session.unlock", "vault")
    text = log.write_checkpoint(key)
    assert not [p for p in log.dir.rglob("*") if p.name.startswith(".tmp-")]
    assert parse_checkpoint(text).size == log.verify().entries
    final = log.verify(key.public_pem(), text)
    assert final.ok and final.truncation_ruled_out and final.unsigned == 0


def append_at_once(audit_dir: Path, key: SigningKey, per_process: int) -> list[dict]:
    """Two appender processes started together; returns the log's entries once both are done."""
    procs = [start(audit_dir, actor, per_process, key, checkpoint_every=50) for actor in ("left", "right")]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        assert out.count("\n") >= per_process
    return AuditLog(audit_dir).entries()


def test_two_processes_appending_at_once_are_serialised(tmp_path: Path) -> None:
    key = SigningKey.generate()
    per_process = 150
    interleaved = False
    for attempt in range(3):  # until the scheduler really ran them side by side
        log = AuditLog(tmp_path / f"attempt{attempt}" / "audit", origin=ORIGIN)
        log.init(key.public_pem())
        entries = append_at_once(log.dir, key, per_process)
        assert [e["seq"] for e in entries] == list(range(2 * per_process))
        for actor in ("left", "right"):
            assert sorted(e["detail"]["i"] for e in entries if e["actor"] == actor) == list(
                range(per_process)
            )
        log.write_checkpoint(key)
        report = log.verify(key.public_pem())
        assert report.ok, [f.line() for f in report.findings]
        actors = [e["actor"] for e in entries]
        switches = sum(a != b for a, b in zip(actors, actors[1:], strict=False))
        if switches >= 3:
            interleaved = True
            break
    assert interleaved, "the two appenders never ran at the same time"

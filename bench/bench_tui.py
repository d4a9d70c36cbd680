"""TUI speed: time to the unlock screen, opening the Audit area on 100,000 entries, and key
response while a training run works in its own process. Each figure is printed beside a peer
measured in the same run.

Run: .venv/bin/python bench/bench_tui.py [--entries 100000] [--skip-run]
Goals (issue 7): unlock screen <= 1.0 s; Audit area open <= 1.0 s; key response <= 50 ms during a run.

Peers: a minimal Textual app started the same way (startup floor); the core's own
AuditLog.entries() over the same log (parse floor); key response with no run active.
Key response is the time from a key event entering the app to its binding having moved the
audit log's cursor (the UI thread's queueing and handling; the paint follows on the next frame).
The 100,000-entry log is built once with real durable appends and kept in the temp directory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from vault.crypto import keys  # noqa: E402
from vault.netguard import state  # noqa: E402

keys.use_test_kdf()  # the fixture vault's slots are cheap; the benchmark times screens, not Argon2id
state.waive_for_tests()  # this process does not isolate itself

PASSPHRASE = "correct horse battery staple"
FIXTURE = REPO / "tests" / "tui" / "snapshots" / "fixture-vault"
WORK = Path(tempfile.gettempdir()) / "strongroom-bench-tui"
PEER_APP = """
from textual.app import App
from textual.widgets import Static
class Peer(App):
    def compose(self):
        yield Static("Passphrase")
Peer().run()
"""


def tmux_seconds_until(command: list[str], marker: str, timeout: float = 30.0) -> float:
    """Wall time from starting `command` in an 80x24 tmux pane until `marker` is on screen."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    env = [f"{k}={v}" for k, v in os.environ.items() if k.startswith(("STRONGROOM_", "PATH", "HOME", "LANG"))]
    start = time.perf_counter()
    subprocess.run(
        [
            "tmux",
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            "80",
            "-y",
            "24",
            "env",
            *env,
            "TERM=xterm-256color",
            *command,
        ],
        check=True,
        cwd=REPO,
    )
    try:
        while time.perf_counter() - start < timeout:
            pane = subprocess.run(
                ["tmux", "capture-pane", "-p", "-t", name], capture_output=True, text=True
            ).stdout
            if marker in pane:
                return time.perf_counter() - start
        raise RuntimeError(f"{marker!r} never appeared")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def bench_startup(vault: Path, repeat: int) -> None:
    if shutil.which("tmux") is None:
        print("startup: skipped (tmux is absent)")
        return
    ours, peer = [], []
    for _ in range(repeat):
        ours.append(
            tmux_seconds_until(
                [sys.executable, "-m", "vault.cli", "tui", "--vault", str(vault)], "Passphrase"
            )
        )
        peer.append(tmux_seconds_until([sys.executable, "-c", PEER_APP], "Passphrase"))
    o, p = statistics.median(ours), statistics.median(peer)
    print(
        f"time to unlock screen: {o:.3f} s median of {repeat} (goal <= 1.0 s); "
        f"minimal Textual app: {p:.3f} s; ratio {o / p:.2f}x the bare-Textual floor"
    )


def audit_vault(entries: int) -> Path:
    """A vault whose log holds `entries` entries (built once with durable appends, then reused)."""
    from vault.audit import AuditLog
    from vault.door import Vault

    path = WORK / f"audit-{entries}"
    if (path / "vault.json").exists() and len(AuditLog(path / "audit").entries()) >= entries - 5:
        return path
    shutil.rmtree(path, ignore_errors=True)
    print(f"building a {entries:,}-entry audit log (durable appends; once) ...", flush=True)
    actors, actions = (
        ("ann", "bob", "cyd", "dee"),
        ("dataset.read", "policy.decision", "train.start", "dataset.sample"),
    )
    with Vault.create(path, passphrase=PASSPHRASE.encode()) as vault:
        for index in range(entries - 5):
            vault.audit.append(
                actors[index % 4],
                "operator",
                actions[index % 4],
                f"set-{index % 13}",
                "denied" if index % 97 == 0 else "ok",
                {"n": index},
            )
    return path


async def open_audit(vault: Path) -> tuple[float, float, int]:
    from tui.app import StrongroomApp
    from tui.widgets.log_view import AuditLogView

    app = StrongroomApp(vault, auditor=True)
    start = time.perf_counter()
    async with app.run_test(size=(80, 24)) as pilot:
        opened = verified = 0.0
        while not verified:
            await pilot.pause(0.005)
            views = app.screen.query(AuditLogView)
            if not opened and views and views.first().total:
                opened = time.perf_counter() - start
            if "verified" in str(app.screen.query_one("#audit-verdict").render()):
                verified = time.perf_counter() - start
        return opened, verified, app.screen.query_one(AuditLogView).total


def bench_audit(entries: int) -> None:
    from vault.audit import AuditLog

    vault = audit_vault(entries)
    start = time.perf_counter()
    raw = len(AuditLog(vault / "audit").entries())
    parse = time.perf_counter() - start
    opened, verified, shown = asyncio.run(open_audit(vault))
    print(
        f"audit area, {shown:,} entries: table shown after {opened:.3f} s (goal <= 1.0 s), verdict after "
        f"{verified:.3f} s; AuditLog.entries() alone: {parse:.3f} s for {raw:,}; ratio {opened / parse:.2f}x "
        "the parse floor"
    )


async def key_latencies(vault: Path, during_run: bool, presses: int) -> list[float]:
    from textual.widgets import Input, Select

    from tui.app import StrongroomApp

    app = StrongroomApp(vault)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        field = app.screen.query_one("#passphrase", Input)
        field.focus()
        field.value = PASSPHRASE
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        if during_run:
            await pilot.press("2")
            await app.workers.wait_for_complete()
            await pilot.pause()
            app.screen.query_one("#train-dataset", Select).value = "digits"
            app.screen.query_one("#train-epochs", Input).value = "4"
            await pilot.pause()
            await pilot.press("ctrl+r")
            while not app.screen.query_one("#train-status").render().plain.startswith("▶ running"):
                await pilot.pause(0.05)
        await pilot.press("5")
        await app.workers.wait_for_complete()
        await pilot.pause()
        from tui.widgets.log_view import AuditLogView

        log = app.screen.query_one(AuditLogView)
        times = []
        for index in range(presses):
            if during_run and not app.run_active:
                break
            before = log.cursor
            start = time.perf_counter()
            app.simulate_key("j" if index % 2 else "k")  # the log opens on its last row: up first
            while log.cursor == before:  # handled: the binding ran and moved the cursor
                await asyncio.sleep(0)
            times.append(time.perf_counter() - start)
            await pilot.pause(0.05)
        if during_run and app.run_active:
            app.training_run.cancel()
            await app.training_run.wait()
        return times


def bench_keys(presses: int) -> None:
    vault = WORK / "keys-vault"
    shutil.rmtree(vault, ignore_errors=True)
    shutil.copytree(FIXTURE, vault)
    idle = asyncio.run(key_latencies(vault, False, presses))
    busy = asyncio.run(key_latencies(vault, True, presses))

    def describe(times: list[float]) -> str:
        ordered = sorted(times)
        p95 = ordered[int(0.95 * (len(ordered) - 1))]
        return f"median {statistics.median(ordered) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms"

    print(f"key response during a training run ({len(busy)} keys): {describe(busy)} (goal <= 50 ms)")
    print(
        f"key response with no run ({len(idle)} keys): {describe(idle)}; median ratio "
        f"{statistics.median(busy) / statistics.median(idle):.2f}x"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--presses", type=int, default=100)
    parser.add_argument("--skip-run", action="store_true", help="skip the key-response-during-a-run figure")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    startup_vault = WORK / "startup-vault"
    shutil.rmtree(startup_vault, ignore_errors=True)
    shutil.copytree(FIXTURE, startup_vault)
    bench_startup(startup_vault, args.repeat)
    bench_audit(args.entries)
    if not args.skip_run:
        bench_keys(args.presses)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

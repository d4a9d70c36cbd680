"""The trainer launcher (`tui.launcher`): the process the UI starts before its own sandbox so that runs
across several processes can meet over loopback. Real processes, real namespaces, real descriptor
passing; no UI. The whole path from the sandboxed UI is in test_tui_tmux.py."""

from __future__ import annotations

import array
import json
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.security.test_netguard import FORBID
from tests.support import unshare_refused
from tui.launcher import START, Launcher
from vault.vocabulary import LOOPBACK_ISOLATION


@pytest.fixture
def launcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    refused = unshare_refused()
    if refused:
        pytest.skip(
            f"this host forbids network namespaces, so the launcher cannot reach the loopback level: {refused}"
        )
    monkeypatch.setenv("STRONGROOM_PASSPHRASE", "launcher-test-passphrase")
    (tmp_path / "vault").mkdir()
    started = Launcher.start(tmp_path / "vault")
    yield started
    started.close()
    _reap(started.pid)


def _reap(pid: int, timeout: float = 30.0) -> int | None:
    """The launcher's exit status once it has ended, or None at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return 0
        if done == pid:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    return None


def test_the_launcher_holds_the_loopback_level_and_no_passphrase(launcher: Launcher) -> None:
    word = launcher.status()
    assert word["ready"], word
    isolation = word["isolation"]
    assert isolation["mode"] == LOOPBACK_ISOLATION and launcher.refusal() is None
    assert isolation["loopback_check"]["allowed"] and isolation["loopback_check"]["interfaces_seen"] == ["lo"]
    assert isolation["netns"] != isolation["host_netns"]
    assert "seccomp" in isolation["layers"] and "netns" in isolation["layers"]
    environ = Path(f"/proc/{launcher.pid}/environ").read_bytes()
    assert b"launcher-test-passphrase" not in environ and b"STRONGROOM_PASSPHRASE" not in environ


def test_a_trainer_runs_with_its_pipes_and_its_exit_code_comes_back(launcher: Launcher) -> None:
    trainer = launcher.spawn()
    assert trainer.stdin is not None and trainer.stdout is not None
    # a job for a vault that cannot be opened: the trainer inherits the launcher's isolation,
    # then reports the error on its own stdout and exits non-zero
    job = {
        "vault": "/nonexistent/vault",
        "user": "admin",
        "request": {"nproc": 2},
        "slot_secrets_b64": "",
        "isolation": launcher.status()["isolation"],
    }
    trainer.stdin.write(json.dumps(job) + "\n")
    trainer.stdin.flush()
    lines = [json.loads(line) for line in trainer.stdout]
    assert lines and lines[-1]["type"] == "error", lines
    trainer.stdin.close()
    assert trainer.wait() != 0


def test_anything_but_a_start_with_three_descriptors_is_refused(launcher: Launcher) -> None:
    assert launcher.status()["ready"]
    sock = launcher._sock
    read_end, write_end = os.pipe()
    try:
        for data, fds in ((b"exec /bin/sh", [read_end, read_end, write_end]), (START, [read_end])):
            sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
            answer = json.loads(sock.recv(4096))
            assert answer["type"] == "refused" and "only starts trainers" in answer["title"]
    finally:
        os.close(read_end)
        os.close(write_end)
    trainer = launcher.spawn()  # still serving
    assert trainer.stdin is not None
    trainer.stdin.close()  # end of file before a job: the trainer ends
    assert trainer.wait() != 0


def test_the_launcher_ends_with_the_ui_once_its_trainers_have_ended(launcher: Launcher) -> None:
    trainer = launcher.spawn()
    launcher.close()  # the UI is gone; the trainer still runs
    assert _reap(launcher.pid, timeout=1.0) is None, "the launcher left a trainer behind"
    assert trainer.stdin is not None
    trainer.stdin.close()
    assert trainer.wait() != 0
    assert _reap(launcher.pid) == 0


def test_a_launcher_that_cannot_start_leaves_the_ui_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "/nonexistent/python3")
    started = Launcher.start(None)
    problem = started.refusal()
    assert problem and "could not start" in problem and "No such file" in problem
    with pytest.raises(OSError, match="cannot start trainers"):
        started.spawn()


def test_a_launcher_that_cannot_isolate_says_why(tmp_path: Path) -> None:
    """Without the loopback level the launcher answers with the reason, and the UI keeps that reason
    for the Train form; spawn() refuses."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    # a launcher that is not there: its end closed at once, as when it died before its first word
    theirs.close()
    broken = Launcher(ours, pid=0)
    problem = broken.refusal()
    assert problem and "ended before it was ready" in problem
    with pytest.raises(OSError, match="cannot start trainers"):
        broken.spawn()
    # a real one on a host that refuses unshare (a seccomp filter loaded first, as in
    # test_netguard's guard fallback): it reaches only 'guard' and says so
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    code = FORBID + f"from tui.launcher import main; raise SystemExit(main([{theirs.fileno()!r}]))"
    proc = subprocess.Popen(
        [sys.executable, "-I", "-c", code], pass_fds=(theirs.fileno(),), stderr=subprocess.DEVNULL
    )
    theirs.close()
    word = Launcher(ours, pid=proc.pid)
    problem = word.refusal()
    assert proc.wait(timeout=60) == 6
    assert problem and "reached only 'guard'" in problem, problem
    assert LOOPBACK_ISOLATION in problem or "user namespaces" in problem, problem


def test_a_trainer_that_does_not_stop_is_ended_after_the_grace(tmp_path: Path) -> None:
    """A trainer that never sees end of file (here: its stdin held open, no job sent) must not
    outlive the session: after the grace the launcher ends, and with it, as PID 1 of its
    namespace, the trainer."""
    if unshare_refused():
        pytest.skip("this host forbids network namespaces")
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    proc = subprocess.Popen(
        [sys.executable, "-I", "-m", "tui.launcher", str(theirs.fileno()), "", "1.5"],
        pass_fds=(theirs.fileno(),),
        stderr=subprocess.DEVNULL,
    )
    theirs.close()
    started = Launcher(ours, pid=proc.pid)
    trainer = started.spawn()
    assert trainer.stdout is not None
    started.close()
    assert proc.wait(timeout=60) == 1  # ended at the grace, a trainer still running
    assert trainer.wait() == -1  # no exit code came back: the launcher did not wait for it
    # and the trainer is gone with the namespace: the last holder of its stdout closed it
    readable, _, _ = select.select([trainer.stdout], [], [], 30)
    assert readable and trainer.stdout.read() == ""

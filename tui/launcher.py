"""The trainer launcher: a small process the UI starts before its own sandbox, holding the loopback level.

`strongroom tui` isolates itself at 'namespace+seccomp', and a seccomp filter passes to every child
and cannot be loosened there, so no process the UI starts could open the internet sockets on
loopback that a run across several processes needs. Before isolating, the UI therefore starts this
process (`python -I -m tui.launcher FD VAULT`, in a session of its own). It hardens itself, isolates at
'namespace+seccomp-loopback' (its own network namespace, seen to hold only `lo`, in which internet
sockets may exist), reports that level, and then does one thing: on a "start" message from the UI,
carrying three file descriptors, it starts `python -I -u -m tui.train_child` with the first two as
its stdin and stdout, and writes the trainer's exit code to the third when it ends.

It never reads what passes through those pipes: the job, with the UI session's slot secrets, goes
from the UI to the trainer directly, and the trainer's events go straight back. It runs no other
command, and nothing the UI sends over the socket reaches a command line. It ends when the UI
closes its end of the control socket (the UI quit or died), after its trainers have ended (each
sees end of file on its stdin and stops between steps, charging the steps taken), or after
GRACE_S, when it takes what is left along. Runs of one process never pass through it: they stay in
the UI's stricter sandbox.
"""

from __future__ import annotations

import array
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from vault.vocabulary import LOOPBACK_ISOLATION

ROOT = Path(__file__).resolve().parents[1]
START = b"start"
FDS = 3  # the trainer's stdin, its stdout, the pipe its exit code is written to
READY_TIMEOUT = 30.0  # isolation takes well under a second; a loaded host gets room
# Once the UI is gone, how long trainers get to stop between steps and charge what they took. Then
# the launcher ends, and as PID 1 of its namespace it takes every process left in it along (a trainer
# hung in a collective must not hold the vault's lock after the session that started it).
GRACE_S = 120.0


def trainer_command() -> list[str]:
    """The trainer's command line: isolated mode (-I), so neither the working directory nor user
    site-packages nor PYTHON* variables can put a module of someone else's in front of ours."""
    return [sys.executable, "-I", "-u", "-m", "tui.train_child"]


def trainer_environment() -> dict[str, str]:
    """This process's environment, from which the passphrases were taken at start (`netguard.hardening`)."""
    from vault.netguard import hardening

    hardening.take_secrets()
    return dict(os.environ)


def _send_json(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(json.dumps(message, default=str).encode("utf-8"))


# ----------------------------------------------------------------------------- the UI's side
class LaunchedTrainer:
    """A trainer the launcher started: its stdin and stdout as text streams, and its exit code."""

    def __init__(self, stdin: IO[str], stdout: IO[str], status: IO[str], pid: int) -> None:
        self.stdin: IO[str] | None = stdin
        self.stdout: IO[str] | None = stdout
        self._status = status
        self.pid = pid  # in the launcher's PID namespace
        self._code: int | None = None

    def wait(self) -> int:
        """The trainer's exit code, once it has ended (-1 when the launcher went away first)."""
        if self._code is None:
            text = self._status.read().strip()
            self._status.close()
            try:
                self._code = int(text)
            except ValueError:
                self._code = -1
        return self._code


class Launcher:
    """The UI's handle on the launcher process: its isolation report, and `spawn()`."""

    def __init__(self, sock: socket.socket, pid: int) -> None:
        self._sock = sock
        self.pid = pid  # in the namespace of the process that started it
        self._lock = threading.Lock()
        self._ready: dict[str, Any] | None = None

    @classmethod
    def start(cls, vault_path: str | os.PathLike[str] | None) -> Launcher:
        """Start the launcher. Call it before this process isolates itself, while it has no thread.

        posix_spawn, not subprocess: this process goes on in a PID namespace of its own, where the
        launcher's pid means nothing, so nothing here may ever wait on it by that number (its parent
        outside, `_pidns`'s supervisor, reaps it). In a session of its own, so a ^C or a hang-up of
        the terminal is the UI's to handle; it ends when the UI's end of the socket closes."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [*trainer_command()[:2], "-m", "tui.launcher", str(theirs.fileno())]
        if vault_path is not None:
            argv.append(str(Path(vault_path).expanduser().resolve()))
        quiet = [
            (os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY, 0)
            for fd in (0, 1, 2)
        ]
        try:
            theirs.set_inheritable(True)
            pid = os.posix_spawn(sys.executable, argv, trainer_environment(), file_actions=quiet, setsid=True)
        except OSError as exc:  # the UI still opens; runs of several processes say why they cannot start
            ours.close()
            started = cls(ours, 0)
            started._ready = {
                "ready": False,
                "title": f"the trainer launcher could not start ({exc})",
                "hint": "",
            }
            return started
        finally:
            theirs.close()
        return cls(ours, pid)

    def status(self) -> dict[str, Any]:
        """The launcher's first word: {"ready": True, "isolation": {...}, "pid": N} or {"ready": False,
        "title": ..., "hint": ...}. Waits for it the first time (isolation takes well under a second)."""
        with self._lock:
            if self._ready is None:
                self._ready = self._first_word()
            return dict(self._ready)

    def _first_word(self) -> dict[str, Any]:
        self._sock.settimeout(READY_TIMEOUT)
        try:
            data = self._sock.recv(1 << 20)
        except OSError as exc:
            return {"ready": False, "title": f"the trainer launcher did not answer ({exc})", "hint": ""}
        finally:
            self._sock.settimeout(None)
        try:
            word = json.loads(data) if data else {}
        except ValueError:
            word = {}
        if word.get("type") == "ready":
            return {"ready": True, "isolation": dict(word.get("isolation") or {}), "pid": word.get("pid")}
        return {
            "ready": False,
            "title": str(word.get("title") or "the trainer launcher ended before it was ready"),
            "hint": str(word.get("hint") or ""),
        }

    def refusal(self) -> str | None:
        """Why runs of several processes cannot start through the launcher, or None."""
        word = self.status()
        if not word.get("ready"):
            return f"{word['title']}" + (f" ({word['hint']})" if word.get("hint") else "")
        if word["isolation"].get("mode") != LOOPBACK_ISOLATION:
            return f"the trainer launcher reached only {word['isolation'].get('mode')!r}"
        return None

    def spawn(self) -> LaunchedTrainer:
        """Start a trainer; raises OSError when the launcher is not ready or has gone."""
        refused = self.refusal()
        if refused is not None:
            raise OSError(f"the trainer launcher cannot start trainers: {refused}")
        child_in, to_child = os.pipe()
        from_child, child_out = os.pipe()
        status_r, status_w = os.pipe()
        try:
            with self._lock:
                fds = array.array("i", [child_in, child_out, status_w])
                self._sock.sendmsg([START], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
                answer = json.loads(self._sock.recv(4096) or b"{}")
        except (OSError, ValueError):
            for fd in (to_child, from_child, status_r):
                os.close(fd)
            raise
        finally:
            for fd in (child_in, child_out, status_w):
                os.close(fd)
        if answer.get("type") != "started":
            for fd in (to_child, from_child, status_r):
                os.close(fd)
            raise OSError(str(answer.get("title") or "the trainer launcher did not start the trainer"))
        return LaunchedTrainer(
            os.fdopen(to_child, "w", encoding="utf-8"),
            os.fdopen(from_child, "r", encoding="utf-8"),
            os.fdopen(status_r, "r", encoding="ascii"),
            int(answer.get("pid") or 0),
        )

    def close(self) -> None:
        """Tell the launcher to end (it waits for its trainers first)."""
        try:
            self._sock.close()
        except OSError:
            pass


_current: Launcher | None = None


def use(launcher: Launcher | None) -> None:
    """Set the launcher this UI process starts trainers of several processes through."""
    global _current
    _current = launcher


def current() -> Launcher | None:
    return _current


# ----------------------------------------------------------------------------- the launcher's side
def serve(sock: socket.socket, grace: float = GRACE_S) -> int:
    """Answer "start" messages until the UI closes its end; then wait for the trainers (at most
    `grace` seconds) and return."""
    waiters: list[threading.Thread] = []
    while True:
        try:
            data, ancillary, _flags, _addr = sock.recvmsg(64, socket.CMSG_SPACE(FDS * 4))
        except InterruptedError:
            continue
        fds: list[int] = []
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                usable = len(payload) - len(payload) % 4
                fds.extend(array.array("i", payload[:usable]))
        if not data and not fds:
            break  # the UI is gone
        if data != START or len(fds) != FDS:
            for fd in fds:
                os.close(fd)
            _send_json(sock, {"type": "refused", "title": "the launcher only starts trainers"})
            continue
        stdin_fd, stdout_fd, status_fd = fds
        try:
            process = subprocess.Popen(
                trainer_command(),
                stdin=stdin_fd,
                stdout=stdout_fd,
                stderr=subprocess.DEVNULL,
                cwd=str(ROOT),
                env=trainer_environment(),
            )
        except OSError as exc:
            os.close(status_fd)
            _send_json(sock, {"type": "refused", "title": f"could not start the trainer: {exc}"})
            continue
        finally:
            os.close(stdin_fd)
            os.close(stdout_fd)
        waiter = threading.Thread(target=_report_exit, args=(process, status_fd), daemon=True)
        waiter.start()
        waiters.append(waiter)
        _send_json(sock, {"type": "started", "pid": process.pid})
    deadline = time.monotonic() + grace
    for waiter in waiters:
        waiter.join(max(0.0, deadline - time.monotonic()))
    return 0 if not any(waiter.is_alive() for waiter in waiters) else 1


def _report_exit(process: subprocess.Popen[bytes], status_fd: int) -> None:
    code = process.wait()
    try:
        os.write(status_fd, f"{code}\n".encode("ascii"))
    except OSError:
        pass
    finally:
        os.close(status_fd)


def main(argv: list[str] | None = None) -> int:
    from vault.netguard import hardening

    hardening.harden()  # not dumpable, no core dumps, no passphrase in the environment
    for number in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP):
        signal.signal(number, signal.SIG_IGN)
    args = list(sys.argv[1:] if argv is None else argv)  # FD [VAULT [GRACE_S]]
    sock = socket.socket(fileno=int(args[0]))
    keep = [args[1]] if len(args) > 1 and args[1] else []
    grace = float(args[2]) if len(args) > 2 else GRACE_S
    try:
        from vault import netguard
        from vault.errors import StrongroomError

        try:
            report = netguard.isolate_session(keep=keep, loopback=True)
        except StrongroomError as error:
            _send_json(sock, {"type": "failed", "title": error.title, "hint": error.hint})
            return error.exit_code
        if report.mode != LOOPBACK_ISOLATION:
            refused = "; ".join(w for w in report.warnings if "loopback" in w) or "a layer failed"
            _send_json(
                sock,
                {
                    "type": "failed",
                    "title": f"the trainer launcher reached only {report.mode!r}: {refused}",
                    "hint": netguard.isolation.NAMESPACE_HINT,
                },
            )
            return 6
        _send_json(sock, {"type": "ready", "isolation": report.to_json(), "pid": os.getpid()})
        return serve(sock, grace)
    except BrokenPipeError:
        return 0  # the UI ended before the launcher was ready


if __name__ == "__main__":
    raise SystemExit(main())

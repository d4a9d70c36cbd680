"""A PID namespace for the command: the host's processes are not there to signal, trace or list.

A new PID namespace applies to the children of the caller, not to the caller itself, so `enter()`
forks: the child, PID 1 of the new namespace, returns and runs the command; the parent never returns.
It stays outside, holding nothing but the terminal it shares, passes on the signals a user process
sends it, and exits as its child did. The child dies with it (PR_SET_PDEATHSIG), so `kill -9` of
the command's pid still ends the command at once.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import Any

from vault.netguard import _linux

PR_SET_PDEATHSIG = 1
SI_KERNEL = 0x80  # a signal the terminal (the kernel) sent to the whole process group: the child has it too
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
# PID 1 of a namespace ignores signals it has no handler for; these end the command as they would.
TERMINATING = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def enter() -> dict[str, Any]:
    """Unshare the PID namespace and fork; returns (in the child) the evidence, or why it was not entered."""
    outer_pid = os.getpid()
    try:
        _linux.unshare(_linux.CLONE_NEWPID)
    except OSError as exc:
        return {"new": False, "error": f"unshare(CLONE_NEWPID): {_linux.errno_name(exc.errno)}"}
    watched = {signal.SIGCHLD, *FORWARDED}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child:
        _supervise(child, watched)  # never returns
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    for number in TERMINATING:
        signal.signal(number, _end)
    signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return {"new": True, "pid_inside": os.getpid(), "supervisor_pid": outer_pid}


def _end(number: int, _frame: Any) -> None:
    os._exit(128 + number)


def _supervise(child: int, watched: set[signal.Signals]) -> None:
    """The parent outside: forward what users send, wait for the child, leave as it left."""
    try:
        _linux.restrict_caps(frozenset())
        _linux.set_no_new_privs()
    except OSError:
        pass
    while True:
        info = signal.sigwaitinfo(watched)
        if info.si_signo != signal.SIGCHLD:
            # The kernel signals a whole process group (^C), so the child has those already; but a
            # hung-up terminal signals its session leader alone, and that may be this process.
            if info.si_code != SI_KERNEL or info.si_signo == signal.SIGHUP:
                try:
                    os.kill(child, info.si_signo)
                except OSError:
                    pass
            continue
        pid, status = os.waitpid(child, os.WNOHANG)
        if pid == child:
            break
    if os.WIFSIGNALED(status):
        _leave_by_signal(os.WTERMSIG(status))
    code = os.waitstatus_to_exitcode(status)
    if code - 128 in TERMINATING:
        _leave_by_signal(code - 128)
    os._exit(code)


def _leave_by_signal(number: int) -> None:
    signal.signal(number, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {number})
    os.kill(os.getpid(), number)
    os._exit(128 + number)

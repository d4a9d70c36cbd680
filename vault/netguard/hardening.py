"""The process's own hardening, first thing at start: no core dumps, not dumpable (so no other process
of the same user reads its memory through /proc or ptrace), and passphrases taken out of the
environment, including the copy the kernel shows in /proc/PID/environ, before any child starts.

    hardening.harden()                         # idempotent; returns the evidence
    hardening.secret("STRONGROOM_PASSPHRASE")  # the value taken at start, or None
"""

from __future__ import annotations

import ctypes
import os
import resource
from pathlib import Path
from typing import Any

# Environment variables that carry secrets; read once, then gone from this process and its children.
SECRET_ENVIRONMENT = (
    "STRONGROOM_PASSPHRASE",
    "STRONGROOM_NEW_PASSPHRASE",
    "STRONGROOM_APPROVER_PASSPHRASE",
)

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3

_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_taken: dict[str, str] = {}
_removed: list[str] = []


def take_secrets() -> list[str]:
    """Move the secret variables out of os.environ (and libc's environ) into this module; wipe them
    from the block /proc/PID/environ shows. Returns the names removed so far."""
    found = [name for name in SECRET_ENVIRONMENT if name in os.environ]
    for name in found:
        _taken[name] = os.environ.pop(name)  # unsetenv(): children never inherit it
        if name not in _removed:
            _removed.append(name)
    if found:
        _wipe_initial_environment(found)
    return list(_removed)


def secret(name: str) -> str | None:
    """The value of a secret variable: taken from the environment now, or earlier by `take_secrets`."""
    take_secrets()
    return _taken.get(name)


def _wipe_initial_environment(names: list[str]) -> bool:
    """The kernel shows /proc/PID/environ from the process's initial stack, which unsetenv() does not
    touch: overwrite the NAME=value strings there with zero bytes, in place."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        start, end = int(fields[47]), int(fields[48])  # env_start and env_end (fields 50 and 51)
    except (OSError, IndexError, ValueError):
        return False
    if not 0 < start < end:
        return False
    block = ctypes.string_at(start, end - start)
    wiped = False
    for name in names:
        prefix = name.encode() + b"="
        offset = 0
        while (found := block.find(prefix, offset)) >= 0:
            stop = block.find(b"\0", found)
            stop = len(block) if stop < 0 else stop
            if found == 0 or block[found - 1] == 0:
                ctypes.memset(start + found, 0, stop - found)
                wiped = True
            offset = stop
    return wiped


def no_core_dumps() -> None:
    """RLIMIT_CORE 0 (soft and hard: a child cannot raise it) and PR_SET_DUMPABLE 0."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"prctl(PR_SET_DUMPABLE): {os.strerror(code)}")


def dumpable() -> int:
    return int(_libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))


def harden() -> dict[str, Any]:
    """Take the secrets and forbid core dumps; returns the evidence."""
    removed = take_secrets()
    no_core_dumps()
    return evidence(removed)


def evidence(removed: list[str] | None = None) -> dict[str, Any]:
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    return {
        "dumpable": dumpable(),
        "core_limit": [soft, hard],
        "secret_environment_removed": list(_removed if removed is None else removed),
        "secret_environment_left": sorted(n for n in SECRET_ENVIRONMENT if n in os.environ),
    }

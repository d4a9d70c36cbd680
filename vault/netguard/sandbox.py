"""The sandbox drill: from inside the isolation, try what hostile code would, and report each attempt.

    from vault.netguard import sandbox
    result = sandbox.drill()          # start a host sentinel, isolate, try every escape
    sandbox.exit_code(result)         # 0 when every attempt was blocked, else 6

A sentinel process, forked before isolation so that it stays on the host with every right, is the
target of the signal and ptrace attempts: the proof does not rest on error messages alone. Every
attempt is harmless when it gets through (core_pattern is written with its own value, planted files
are removed at once, a mount is undone) and only touches what the drill itself made.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vault.errors import IsolationError
from vault.netguard import _linux
from vault.netguard.isolation import current_report, isolate

SOURCE_ROOT = Path(__file__).resolve().parents[2]
PTRACE_SEIZE = 0x4206
SETUID_CANDIDATES = (
    "/usr/bin/su",
    "/bin/su",
    "/usr/bin/passwd",
    "/usr/bin/newgrp",
    "/usr/bin/chsh",
    "/usr/bin/mount",
)


class Escaped(Exception):
    """The attempt got through; the message says how far."""


@dataclass
class HostProcess:
    """A process forked before isolation: it stays in the host's namespaces with every right the
    caller had, and waits until its pipe closes. Start it before `isolate()`.

    Whether it still lives is read from a second pipe whose writing end only it holds (end of file
    when it dies), since inside a PID namespace it is not this process's child to wait for."""

    pid: int
    _pipe: int
    _life: int
    status: str | None = field(default=None)

    @classmethod
    def start(cls) -> HostProcess:
        if current_report() is not None:
            raise IsolationError(
                "the sandbox drill's host sentinel must start before isolation",
                "run the drill in a fresh process (strongroom sandbox-check)",
            )
        sys.stdout.flush()
        sys.stderr.flush()
        control_r, control_w = os.pipe()
        life_r, life_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(control_w)
            os.close(life_r)
            try:
                os.read(control_r, 1)
            finally:
                os._exit(0)
        os.close(control_r)
        os.close(life_w)
        return cls(pid, control_w, life_r)

    def alive(self) -> bool:
        if self.status is not None:
            return False
        ready, _, _ = select.select([self._life], [], [], 0)
        if ready and os.read(self._life, 1) == b"":
            self.status = "died"
            return False
        return True

    def stop(self) -> None:
        """Let it end (it reads end of file), and wait until it has."""
        for fd in (self._pipe,):
            try:
                os.close(fd)
            except OSError:
                pass
        select.select([self._life], [], [], 5)
        if self.status is None:
            self.status = "ended by the drill"
        try:
            os.close(self._life)
        except OSError:
            pass
        try:
            os.waitpid(self.pid, 0)  # reaped here when it is this process's child (no PID namespace)
        except ChildProcessError:
            pass


# ----------------------------------------------------------------------------- the attempts
def _describe(exc: OSError) -> str:
    return f"{_linux.errno_name(exc.errno)}: {exc.strerror or exc}"


def _plant(folder: str, suffix: str) -> str:
    path = os.path.join(folder, f"strongroom-drill-{uuid.uuid4().hex}{suffix}")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as exc:
        return f"refused: {_describe(exc)}"
    os.close(fd)
    os.unlink(path)
    raise Escaped(f"created {path} (removed again)")


def _write_core_pattern() -> str:
    path = "/proc/sys/kernel/core_pattern"
    try:
        current = Path(path).read_bytes()
        with open(path, "wb") as handle:  # its own value: harmless if it gets through
            handle.write(current)
    except OSError as exc:
        return f"refused: {_describe(exc)}"
    raise Escaped(f"{path} was writable (its own value written back)")


def _signal_host(sentinel: HostProcess) -> str:
    try:
        os.kill(sentinel.pid, signal.SIGTERM)
    except OSError as exc:
        if sentinel.alive():
            return f"kill({sentinel.pid}, SIGTERM) refused: {_describe(exc)}; the sentinel lives"
        raise Escaped("the sentinel died although kill() failed") from None
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and sentinel.alive():
        time.sleep(0.02)
    raise Escaped(f"SIGTERM delivered to host process {sentinel.pid}; alive afterwards: {sentinel.alive()}")


def _ptrace_host(sentinel: HostProcess) -> str:
    _linux.libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    _linux.libc.ptrace.restype = ctypes.c_long
    if _linux.libc.ptrace(PTRACE_SEIZE, sentinel.pid, None, None) != 0:
        code = ctypes.get_errno()
        return f"ptrace(PTRACE_SEIZE, {sentinel.pid}) refused: {_linux.errno_name(code)}"
    raise Escaped(f"seized host process {sentinel.pid} with ptrace (released when the drill ends)")


def _read_shadow() -> str:
    path = "/etc/shadow"
    if not os.path.lexists(path):
        return f"{path} is absent on this host"
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        return f"refused: {_describe(exc)}"
    raise Escaped(f"{path} was readable")


def _setuid_file() -> str:
    folder = tempfile.mkdtemp(prefix="strongroom-drill-")
    path = os.path.join(folder, "setuid")
    try:
        with open(path, "wb") as handle:
            handle.write(b"#!/bin/sh\n")
        try:
            os.chmod(path, 0o4755)
        except OSError as exc:
            return f"chmod 4755 refused: {_describe(exc)}"
        if os.stat(path).st_mode & stat.S_ISUID:
            raise Escaped(f"made {path} setuid (removed again)")
        return "chmod returned but the setuid bit did not stick"
    finally:
        for leftover in (path, folder):
            try:
                os.unlink(leftover) if leftover == path else os.rmdir(leftover)
            except OSError:
                pass


def _mknod() -> str:
    path = os.path.join(tempfile.gettempdir(), f"strongroom-drill-{uuid.uuid4().hex}")
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except OSError as exc:
        return f"mknod (character device 1:3) refused: {_describe(exc)}"
    os.unlink(path)
    raise Escaped(f"made device node {path} (removed again)")


def _mount() -> str:
    folder = tempfile.mkdtemp(prefix="strongroom-drill-")
    try:
        _linux.mount("tmpfs", folder, "tmpfs", 0, None)
    except OSError as exc:
        return f"mount tmpfs refused: {_describe(exc)}"
    finally:
        _unmount_and_remove(folder)
    raise Escaped(f"mounted a tmpfs on {folder} (unmounted again)")


def _unmount_and_remove(folder: str) -> None:
    _linux.libc.umount2(os.fsencode(folder), 2)  # MNT_DETACH; fails harmlessly when nothing is there
    try:
        os.rmdir(folder)
    except OSError:
        pass


def _load_module() -> str:
    numbers = {"x86_64": 175, "aarch64": 105}  # init_module
    number = numbers.get(os.uname().machine)
    if number is None:
        return "init_module's number is unknown on this machine; not tried"
    result = _linux.libc.syscall(number, None, ctypes.c_ulong(0), b"")
    code = ctypes.get_errno()
    if result != 0 and code == errno.EPERM:
        return "init_module refused: EPERM"
    raise Escaped(
        f"init_module passed the permission check (then {_linux.errno_name(code)}: no module given)"
    )


def _block_devices() -> list[str]:
    try:
        names = sorted(os.listdir("/sys/block"))
    except OSError:
        names = []
    return [f"/dev/{n}" for n in names if os.path.exists(f"/dev/{n}") and not n.startswith(("loop", "ram"))]


def _open_device() -> str:
    tried = []
    for path in ["/dev/mem", "/dev/kmem", "/dev/port", *_block_devices()[:3]]:
        if not os.path.exists(path):
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            tried.append(f"{path} {_linux.errno_name(exc.errno)}")
            continue
        os.close(fd)
        raise Escaped(f"opened {path} for reading")
    return "refused: " + (", ".join(tried) or "no such device on this host")


def _raise_capability() -> str:
    """Make CAP_SYS_ADMIN (21) effective and permitted: what mount, namespaces and most of the
    kernel's administration need."""
    header = _linux._CapHeader(_linux._CAP_VERSION_3, 0)
    data = (_linux._CapData * 2)()
    _linux.check(_linux.libc.capget(ctypes.byref(header), data), "capget")
    data[0].effective |= 1 << 21
    data[0].permitted |= 1 << 21
    if _linux.libc.capset(ctypes.byref(header), data) != 0:
        return f"capset(+sys_admin) refused: {_linux.errno_name(ctypes.get_errno())}"
    raise Escaped(f"CAP_SYS_ADMIN is effective; effective set now {_linux.effective_caps():#x}")


def _raw_socket() -> str:
    import socket

    fd, err = _linux.raw_socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    if fd < 0:
        return f"socket(AF_INET, SOCK_RAW) refused: {_linux.errno_name(err)}"
    os.close(fd)
    raise Escaped("opened a raw IP socket")


def _setuid_binary() -> str | None:
    for path in SETUID_CANDIDATES:
        try:
            info = os.stat(path)
        except OSError:
            continue
        if info.st_mode & stat.S_ISUID and info.st_uid == 0:
            return path
    return None


def _exec_setuid() -> str:
    path = _setuid_binary()
    if path is None:
        state = "set" if _linux.no_new_privs() else "NOT set"
        if not _linux.no_new_privs():
            raise Escaped("no setuid-root program found to try, and no_new_privs is not set")
        return f"no setuid-root program found to try; no_new_privs is {state}"
    try:
        child = subprocess.Popen(
            [path], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    except OSError as exc:
        return f"exec {path} refused: {_describe(exc)}"
    try:
        status = _status_after_exec(child.pid, os.path.basename(path))
    finally:
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.kill()
        except OSError:
            pass
        child.wait()
    if not status:
        return f"{path} ended before it could be inspected"
    uid = status.get("Uid", "").split()
    caps = int(status.get("CapEff", "0"), 16)
    effective_uid = int(uid[1]) if len(uid) > 1 else -1
    if caps == 0 and effective_uid == os.geteuid():
        return f"{path} ran without privileges (euid {effective_uid}, no capabilities: no_new_privs)"
    raise Escaped(f"{path} ran with euid {effective_uid} and capabilities {caps:#x}")


def _status_after_exec(pid: int, name: str) -> dict[str, str]:
    deadline = time.monotonic() + 3
    fields: dict[str, str] = {}
    while time.monotonic() < deadline:
        try:
            text = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return fields
        fields = {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}
        if fields.get("Name", "").startswith(name[:15]):
            return fields
        time.sleep(0.01)
    return {}


def _unshare() -> str:
    try:
        _linux.unshare(_linux.CLONE_NEWUSER)
    except OSError as exc:
        return f"unshare(CLONE_NEWUSER) refused: {_describe(exc)}"
    raise Escaped("entered a new user namespace (full capabilities inside it)")


def plan(sentinel: HostProcess) -> list[tuple[str, Callable[[], str]]]:
    site = sysconfig.get_paths()["purelib"]
    return [
        ("write_core_pattern", _write_core_pattern),
        ("ptrace_host_process", lambda: _ptrace_host(sentinel)),
        ("signal_host_process", lambda: _signal_host(sentinel)),
        ("write_site_packages", lambda: _plant(site, ".pth")),
        ("write_source_tree", lambda: _plant(str(SOURCE_ROOT / "vault"), ".py")),
        ("write_etc", lambda: _plant("/etc", "")),
        ("write_home", lambda: _plant(os.path.expanduser("~"), "")),
        ("read_etc_shadow", _read_shadow),
        ("create_setuid_file", _setuid_file),
        ("mknod", _mknod),
        ("mount", _mount),
        ("load_kernel_module", _load_module),
        ("open_device", _open_device),
        ("raise_capability", _raise_capability),
        ("raw_socket", _raw_socket),
        ("exec_setuid_binary", _exec_setuid),
        ("unshare_user_namespace", _unshare),
    ]


def attempt(name: str, action: Callable[[], str]) -> dict[str, Any]:
    try:
        detail = action()
    except Escaped as exc:
        return {"name": name, "blocked": False, "detail": str(exc)}
    except OSError as exc:
        return {"name": name, "blocked": True, "detail": f"refused: {_describe(exc)}"}
    return {"name": name, "blocked": True, "detail": detail}


def run_attempts(sentinel: HostProcess, *, unsandboxed: bool = False) -> dict[str, Any]:
    """Every escape, in this process as it is now; stops the sentinel. The JSON-ready result.

    In a process that was never isolated nothing is tried (each attempt is reported as not blocked)
    unless `unsandboxed` asks for a control run, which really escapes, harmlessly, on this host.
    """
    report = current_report()
    try:
        if report is None and not unsandboxed:
            why = "not tried: this process is not isolated, so nothing would stop it"
            attempts = [{"name": name, "blocked": False, "detail": why} for name, _ in plan(sentinel)]
        else:
            attempts = [attempt(name, action) for name, action in plan(sentinel)]
    finally:
        sentinel.stop()
    return {
        "mode": report.mode if report else "none",
        "isolated": bool(report and report.isolated),
        "layers": list(report.layers) if report else [],
        "all_blocked": all(a["blocked"] for a in attempts),
        "attempts": attempts,
        "sentinel": {"pid": sentinel.pid, "status": sentinel.status},
        "sandbox": dict(report.sandbox) if report else {},
    }


def drill(
    *,
    isolate_first: bool = True,
    keep: Iterable[str | os.PathLike[str]] = (),
    inside: Callable[[], Callable[[HostProcess], dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Start the host sentinel, isolate, try every escape. `isolate_first=False` is a control run that
    really tries them without a sandbox (harmless: everything that gets through is undone).

    `inside`, when given, runs after isolation and returns the function that runs the attempts (the
    CLI opens the vault there and returns the Vault's recording `sandbox_check`).
    """
    sentinel = HostProcess.start()
    try:
        if isolate_first:
            isolate("guard", keep=keep)
        run = inside() if inside is not None else run_attempts
    except BaseException:
        sentinel.stop()
        raise
    if not isolate_first and inside is None:
        return run_attempts(sentinel, unsandboxed=True)
    return run(sentinel)


def exit_code(result: dict[str, Any]) -> int:
    """0 when every attempt was blocked; 6 (the sandbox is missing or breached) otherwise."""
    return 0 if result["all_blocked"] else IsolationError.exit_code


def format_text(result: dict[str, Any]) -> str:
    """A few lines for a terminal; a glyph and a word with every verdict, never colour alone."""
    lines = [f"isolation: {result['mode']} (layers: {' '.join(result['layers']) or 'none'})"]
    width = max(len(a["name"]) for a in result["attempts"])
    for a in result["attempts"]:
        mark = "✓ blocked" if a["blocked"] else "✗ ESCAPED"
        lines.append(f"  {mark}  {a['name']:<{width}}  {a['detail']}")
    missing = (result.get("sandbox") or {}).get("unavailable") or {}
    for layer, reason in missing.items():
        lines.append(f"  note: {layer}: {reason}")
    total = len(result["attempts"])
    through = sum(not a["blocked"] for a in result["attempts"])
    if result["all_blocked"]:
        lines.append(f"✓ all {total} escapes blocked")
    else:
        lines.append(f"✗ BREACH: {through} of {total} escapes got through")
    return "\n".join(lines)

"""Landlock: the filesystem, TCP and scopes a process may use, enforced by the kernel for it and for
every child, whatever its uid or capabilities. Only the standard library (ctypes).

Read (and execute): the Python prefix, the virtual environment, the source being imported, the
system's library directories, /proc and /sys. Write: the vault, the command's output and the private
tmpfs. TCP bind and connect are denied (ABI 4); abstract Unix sockets and signals to processes
outside the domain are scoped away (ABI 6). Any domain already forbids ptrace-class access
(/proc/PID/root, /proc/PID/mem, pidfd_getfd) to processes outside it.
"""

from __future__ import annotations

import ctypes
import errno
import glob
import os
from collections.abc import Iterable
from typing import Any

from vault.netguard import _linux

FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
NET_BIND_TCP = 1
NET_CONNECT_TCP = 2
SCOPE_ABSTRACT_UNIX_SOCKET = 1
SCOPE_SIGNAL = 2
RULE_PATH_BENEATH = 1

READ = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
FILE_ONLY = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE
# Character devices a process needs to read and write: never a disk, never /dev/mem.
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty", "/dev/pts")
# Accelerators: NVIDIA's control, card and unified-memory nodes, AMD's kfd and the DRM render nodes.
ACCELERATOR_PATTERNS = ("/dev/nvidia*", "/dev/nvidia-caps", "/dev/kfd", "/dev/dri")


def accelerator_devices() -> list[str]:
    found: list[str] = []
    for pattern in ACCELERATOR_PATTERNS:
        found += sorted(glob.glob(pattern))
    return found


SYSTEM_READ = ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin", "/opt", "/proc", "/sys")
# From /etc only what the loader, libc and Python read; never shadow, never keys.
ETC_READ = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/gai.conf",
    "/etc/os-release",
    "/etc/mime.types",
    "/etc/terminfo",
    "/etc/ssl",
    "/etc/pki",
    "/etc/ca-certificates",
    "/etc/alternatives",
    "/etc/machine-id",
)


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def handled_fs(abi: int) -> int:
    rights = (1 << 13) - 1
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    return rights


def restrict(abi: int, *, read: Iterable[str], write: Iterable[str], tcp: bool = False) -> dict[str, Any]:
    """Put this process (and its future children) in a Landlock domain; returns the rules applied.

    Paths that do not exist are left out (listed under `absent`). Sets no_new_privs, as Landlock needs.
    `tcp=True` (the loopback level) leaves TCP out of the domain: the collectives of a run across
    processes bind and connect ephemeral ports that no port rule can name in advance; the network
    namespace holding only `lo` is then what confines them.
    """
    numbers = _linux.landlock_numbers()
    if numbers is None or abi < 1:
        raise OSError(errno.ENOSYS, "Landlock is not available on this kernel")
    fs = handled_fs(abi)
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 and not tcp else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    size = 24 if abi >= 6 else (16 if abi >= 4 else 8)
    attr = (ctypes.c_uint64 * 3)(fs, net, scoped)
    ruleset = _linux.libc.syscall(numbers[0], ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    _linux.check(ruleset, "landlock_create_ruleset")
    rules: dict[str, list[str]] = {"read": [], "write": [], "absent": []}
    try:
        for kind, paths, rights in (("read", read, READ & fs), ("write", write, fs)):
            for path in dict.fromkeys(os.path.abspath(p) for p in paths):
                if _add_rule(numbers[1], ruleset, path, rights):
                    rules[kind].append(path)
                else:
                    rules["absent"].append(path)
        _linux.set_no_new_privs()
        _linux.check(
            _linux.libc.syscall(numbers[2], ctypes.c_int(ruleset), ctypes.c_uint32(0)),
            "landlock_restrict_self",
        )
    finally:
        os.close(ruleset)
    denies = [
        "ptrace-class access to processes outside strongroom (/proc/PID/root, /proc/PID/mem, pidfd_getfd)",
        "writing anywhere but the vault, the command's output and the private /tmp",
        "reading anywhere but Python, its packages, the source, system libraries and the named inputs",
    ]
    if net:
        denies.append("TCP bind and connect on every port")
    scopes = []
    if scoped:
        scopes = ["abstract_unix_socket", "signal"]
        denies.append("abstract Unix sockets and signals to processes outside strongroom")
    return {
        "abi": abi,
        "handled_fs": hex(fs),
        "handled_net": hex(net),
        "scopes": scopes,
        "rules": rules,
        "denies": denies,
    }


def _add_rule(add_rule: int, ruleset: int, path: str, rights: int) -> bool:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if not os.path.isdir(f"/proc/self/fd/{fd}"):
            rights &= FILE_ONLY
        attr = _PathBeneath(rights, fd)
        result = _linux.libc.syscall(
            add_rule,
            ctypes.c_int(ruleset),
            ctypes.c_int(RULE_PATH_BENEATH),
            ctypes.byref(attr),
            ctypes.c_uint32(0),
        )
        _linux.check(result, f"landlock_add_rule {path}")
    finally:
        os.close(fd)
    return True

"""Thin ctypes wrappers over the Linux calls isolation needs: namespaces, mounts, capabilities, ioctls.

Only the standard library; nothing here starts a thread, so it is safe to import before `unshare`.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWPID = 0x20000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_RELATIME = 0x200000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18

PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_CAP_VERSION_3 = 0x20080522

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFF_LOOPBACK = 0x8
ARPHRD_LOOPBACK = 772

AF_PACKET = 17
AF_VSOCK = 40

# Capability numbers (linux/capability.h), for names in the evidence.
CAP_NAMES = (
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
)

libc = ctypes.CDLL(None, use_errno=True)
libc.unshare.argtypes = [ctypes.c_int]
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
libc.socket.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]


def _check(result: int, what: str) -> int:
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")
    return result


def errno_name(code: int | None) -> str:
    return errno.errorcode.get(code or 0, str(code))


def unshare(flags: int) -> None:
    _check(libc.unshare(flags), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def enc(s: str | None) -> bytes | None:
        return None if s is None else os.fsencode(s)

    _check(libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


PR_GET_DUMPABLE, PR_SET_DUMPABLE = 3, 4


def map_ids_to_self(uid: int, gid: int) -> None:
    """Inside a fresh user namespace, map our own uid and gid to themselves (one id each).

    A process that is not dumpable (hardening sets that first) has its /proc/self files owned by
    root, so an unprivileged user could not write its own maps: it is made dumpable for the three
    writes only, and not dumpable again whatever happens (the core limit stays 0 throughout)."""
    was = libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)
    if was == 0:
        _check(libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "prctl(PR_SET_DUMPABLE)")
    try:
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    finally:
        if was == 0:
            _check(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(PR_SET_DUMPABLE)")


def namespace_id(kind: str = "net", pid: str = "self") -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError as exc:
        return f"unknown ({exc.strerror})"


def task_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


# ----------------------------------------------------------------------------- interfaces
def host_interfaces() -> list[dict[str, object]]:
    """Non-loopback interfaces of the current network namespace as sysfs shows them (call before unshare)."""
    found: list[dict[str, object]] = []
    base = Path("/sys/class/net")
    names = set(proc_net_dev_names())
    if base.is_dir():
        names |= {p.name for p in base.iterdir()}
    for name in sorted(names):
        node = base / name

        def read(field: str, node: Path = node) -> str:
            try:
                return (node / field).read_text().strip()
            except OSError:
                return ""

        kind, flags = read("type"), read("flags")
        if kind == str(ARPHRD_LOOPBACK) or name == "lo":
            continue
        flag_bits = int(flags, 16) if flags else 0
        found.append(
            {"name": name, "up": bool(flag_bits & IFF_UP), "operstate": read("operstate") or "unknown"}
        )
    return found


def proc_net_dev_names() -> list[str]:
    """Interface names of the calling process's own network namespace (sysfs may show another one's)."""
    try:
        lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    except OSError:
        return []
    return [line.split(":", 1)[0].strip() for line in lines if ":" in line]


def interface_flags(sock: socket.socket, name: str) -> int:
    request = struct.pack("16sh22x", name.encode(), 0)
    reply = fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, request)
    return int(struct.unpack("16sh22x", reply)[1])


def bring_up(sock: socket.socket, name: str) -> None:
    flags = interface_flags(sock, name)
    if not flags & IFF_UP:
        fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, struct.pack("16sh22x", name.encode(), flags | IFF_UP))


# ----------------------------------------------------------------------------- capabilities
class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def last_cap() -> int:
    try:
        return int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        return len(CAP_NAMES) - 1


def cap_name(number: int) -> str:
    return CAP_NAMES[number] if number < len(CAP_NAMES) else f"cap_{number}"


def effective_caps() -> int:
    header = _CapHeader(_CAP_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(libc.capget(ctypes.byref(header), data), "capget")
    return data[0].effective | (data[1].effective << 32)


def restrict_caps(keep: frozenset[int]) -> list[int]:
    """Drop every capability not in `keep` from the bounding, ambient, effective, permitted and inheritable
    sets, for this process and everything it starts. Returns the numbers dropped from the bounding set."""
    dropped: list[int] = []
    for cap in range(last_cap() + 1):
        if cap in keep:
            continue
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
            dropped.append(cap)
        elif ctypes.get_errno() != errno.EINVAL:
            _check(-1, f"drop capability {cap_name(cap)}")
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = _CapHeader(_CAP_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(libc.capget(ctypes.byref(header), data), "capget")
    mask = [sum(1 << c for c in keep if c < 32), sum(1 << (c - 32) for c in keep if c >= 32)]
    for i in range(2):
        data[i].effective &= mask[i]
        data[i].permitted &= mask[i]
        data[i].inheritable = 0
    _check(libc.capset(ctypes.byref(header), data), "capset")
    return dropped


def capability_sets() -> dict[str, str]:
    """The five capability sets of this process, as /proc/self/status shows them (hex)."""
    names = {"CapEff": "effective", "CapPrm": "permitted", "CapInh": "inheritable", "CapBnd": "bounding"}
    names["CapAmb"] = "ambient"
    sets: dict[str, str] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in names:
                sets[names[key]] = hex(int(value.strip(), 16))
    except (OSError, ValueError):
        pass
    return sets


def no_new_privs() -> bool:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("NoNewPrivs:"):
                return line.split(":", 1)[1].strip() == "1"
    except OSError:
        pass
    return False


def set_no_new_privs() -> None:
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")


# ----------------------------------------------------------------------------- sockets and files
def raw_socket(family: int, kind: int, proto: int = 0) -> tuple[int, int]:
    """socket(2) straight through libc, as C code would call it: (fd or -1, errno)."""
    fd = libc.socket(family, kind, proto)
    return fd, (ctypes.get_errno() if fd < 0 else 0)


def socket_family(fd: int) -> int | None:
    """The address family of an open socket descriptor, or None when `fd` is not a socket."""
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            return None
        probe = socket.socket(fileno=os.dup(fd))
    except OSError:
        return None
    try:
        return int(probe.family)
    finally:
        probe.close()


def open_fds() -> list[int]:
    try:
        return sorted(int(n) for n in os.listdir("/proc/self/fd"))
    except OSError:
        return []


@dataclass(frozen=True)
class UnixSocketEntry:
    path: str
    listening: bool


def host_unix_sockets() -> list[UnixSocketEntry]:
    """Filesystem Unix sockets bound in the current network namespace (/proc/net/unix), abstract ones left out."""
    try:
        lines = Path("/proc/self/net/unix").read_text(errors="replace").splitlines()[1:]
    except OSError:
        return []
    seen: dict[str, UnixSocketEntry] = {}
    for line in lines:
        fields = line.split(None, 7)
        if len(fields) < 8 or not fields[7].startswith("/"):
            continue
        listening = bool(int(fields[3], 16) & 0x10000)
        path = fields[7]
        seen[path] = UnixSocketEntry(
            path, listening or seen.get(path, UnixSocketEntry(path, False)).listening
        )
    return sorted(seen.values(), key=lambda e: e.path)


def is_socket_file(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


# ----------------------------------------------------------------------------- Landlock
LANDLOCK_CREATE_RULESET_VERSION = 1
_SYS_LANDLOCK = {"x86_64": (444, 445, 446), "aarch64": (444, 445, 446)}


def landlock_numbers() -> tuple[int, int, int] | None:
    """(landlock_create_ruleset, landlock_add_rule, landlock_restrict_self) on this machine."""
    return _SYS_LANDLOCK.get(os.uname().machine)


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, or 0 when Landlock is absent or disabled."""
    numbers = landlock_numbers()
    if numbers is None:
        return 0
    version = libc.syscall(
        numbers[0], None, ctypes.c_size_t(0), ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION)
    )
    return max(0, int(version))


def check(result: int, what: str) -> int:
    return _check(result, what)

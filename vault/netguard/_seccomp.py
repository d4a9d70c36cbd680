"""The seccomp filter: socket() only for AF_UNIX (plus AF_INET/AF_INET6 at the loopback level), and
no syscall that leaves or rebuilds the isolation.

Installed last, inherited by every thread and child (C code, ctypes and subprocesses included),
and never removable. Built with pyseccomp (the PyPI twin of Debian's python3-seccomp).
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from typing import Any

from vault.netguard import _linux

# socket() and socketpair() fail with EACCES for every family but AF_UNIX: AF_INET, AF_INET6,
# AF_PACKET, AF_NETLINK (interface and route changes), AF_VSOCK (the hypervisor, which network
# namespaces do not confine), AF_BLUETOOTH, AF_CAN and the rest.
ALLOWED_FAMILIES = ("AF_UNIX",)
# The loopback level (a run across several processes) adds the internet families, for the
# collectives between its processes: only installed once the network namespace was seen to hold
# nothing but `lo`. Gloo finds loopback's address with getifaddrs(3), which reads NETLINK_ROUTE, so
# AF_NETLINK is allowed for that one protocol (every other netlink protocol stays refused); with every
# capability dropped, the kernel refuses any change of interface or route it would ask for.
LOOPBACK_FAMILIES = ("AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK")
NETLINK_ROUTE = 0

# Syscalls that would leave the namespaces, undo the private mounts, borrow another process's
# sockets, or create sockets without socket(2) (io_uring bypasses seccomp for its own operations).
DENIED_SYSCALLS = (
    "setns",
    "unshare",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "open_by_handle_at",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "bpf",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    # what an appliance never needs: performance counters, the kernel keyring, userfaultfd (a
    # favourite of kernel exploits), and the new-style module and namespace calls above
    "perf_event_open",
    "keyctl",
    "add_key",
    "request_key",
    "userfaultfd",
)
# clone(2) may not make namespaces (unshare's twin); clone3 passes its flags in memory a filter cannot
# read, so it answers ENOSYS and the C library falls back to clone(2), which the filter can check.
CLONE_NAMESPACE_FLAGS = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}

# chmod(2) and friends may not set the setuid or setgid bit: a file planted in the vault or an export
# folder never becomes a privileged program on the host (systemd's RestrictSUIDSGID).
SETID_MODE_ARGUMENT = {"chmod": 1, "fchmod": 1, "fchmodat": 2, "fchmodat2": 2}
SETID_BITS = (0o4000, 0o2000)

SELFTEST_FAMILIES = {
    "AF_INET": (socket.AF_INET, socket.SOCK_DGRAM),
    "AF_INET6": (socket.AF_INET6, socket.SOCK_DGRAM),
    "AF_PACKET": (_linux.AF_PACKET, socket.SOCK_DGRAM),
    "AF_NETLINK": (socket.AF_NETLINK, socket.SOCK_RAW),
    "AF_VSOCK": (_linux.AF_VSOCK, socket.SOCK_STREAM),
}
NETLINK_SOCK_DIAG, NETLINK_KOBJECT_UEVENT = 4, 15  # other netlink protocols: refused at the loopback level


def install(families: tuple[str, ...] = ALLOWED_FAMILIES) -> dict[str, Any]:
    """Load the filter into this process, allowing socket() for `families` (ALLOWED_FAMILIES or
    LOOPBACK_FAMILIES); returns what was installed. Raises OSError when it cannot."""
    if families not in (ALLOWED_FAMILIES, LOOPBACK_FAMILIES):
        raise ValueError(f"socket families {families} are neither the plain nor the loopback set")
    try:
        import pyseccomp as sc
    except (ImportError, RuntimeError) as exc:  # RuntimeError: libseccomp.so is missing
        raise OSError(errno.ENOSYS, f"pyseccomp/libseccomp unavailable: {exc}") from None
    flt = sc.SyscallFilter(sc.ALLOW)
    flt.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)  # 32-bit syscalls (int 0x80) end the process
    flt.set_attr(sc.Attr.CTL_NNP, 1)
    flt.set_attr(sc.Attr.CTL_TSYNC, 1)
    allowed = {int(getattr(socket, name)) for name in families}
    if socket.AF_NETLINK in allowed:  # NETLINK_ROUTE only (read by getifaddrs), never for socketpair
        flt.add_rule(
            sc.ERRNO(errno.EACCES),
            "socket",
            sc.Arg(0, sc.EQ, socket.AF_NETLINK),
            sc.Arg(2, sc.NE, NETLINK_ROUTE),
        )
        flt.add_rule(sc.ERRNO(errno.EACCES), "socketpair", sc.Arg(0, sc.EQ, socket.AF_NETLINK))
    for call in ("socket", "socketpair"):
        if allowed == {int(socket.AF_UNIX)}:
            flt.add_rule(sc.ERRNO(errno.EACCES), call, sc.Arg(0, sc.NE, socket.AF_UNIX))
            continue
        # families are small numbers: refuse every one below the largest known that is not allowed,
        # and everything from there up
        top = max(_linux.AF_VSOCK, socket.AF_NETLINK, _linux.AF_PACKET, 64)
        for family in range(top):
            if family not in allowed:
                flt.add_rule(sc.ERRNO(errno.EACCES), call, sc.Arg(0, sc.EQ, family))
        flt.add_rule(sc.ERRNO(errno.EACCES), call, sc.Arg(0, sc.GE, top))
    denied, unknown = [], []
    for call in DENIED_SYSCALLS:
        try:
            flt.add_rule(sc.ERRNO(errno.EPERM), call)
        except (OSError, ValueError):  # a name this libseccomp or architecture does not know
            unknown.append(call)
            continue
        denied.append(call)
    for flag in CLONE_NAMESPACE_FLAGS.values():
        flt.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    try:
        flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    except (OSError, ValueError):
        unknown.append("clone3")
    setid_refused = []
    for call, position in SETID_MODE_ARGUMENT.items():
        try:
            for bit in SETID_BITS:
                flt.add_rule(sc.ERRNO(errno.EPERM), call, sc.Arg(position, sc.MASKED_EQ, bit, bit))
        except (OSError, ValueError):
            unknown.append(call)
            continue
        setid_refused.append(call)
    flt.load()
    return {
        "setid_mode_refused": setid_refused,
        "clone_namespace_flags_refused": sorted(CLONE_NAMESPACE_FLAGS),
        "clone3": "ENOSYS (the C library falls back to clone, whose flags are checked)",
        "socket_families_allowed": list(families),
        "denied_syscalls": denied,
        "unknown_syscalls": unknown,
        "bad_arch_action": "kill process",
    }


def selftest(families: tuple[str, ...] = ALLOWED_FAMILIES) -> dict[str, str]:
    """Try socket(2) through libc for each family the filter refuses (those not in `families`);
    maps family to the errno seen ('CREATED' if not)."""
    seen: dict[str, str] = {}
    tries = [
        (name, family, kind, 0) for name, (family, kind) in SELFTEST_FAMILIES.items() if name not in families
    ]
    if "AF_NETLINK" in families:
        tries += [
            ("AF_NETLINK/sock_diag", socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG),
            ("AF_NETLINK/kobject_uevent", socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_KOBJECT_UEVENT),
        ]
    for name, family, kind, proto in tries:
        fd, err = _linux.raw_socket(family, kind, proto)
        if fd >= 0:
            os.close(fd)
            seen[name] = "CREATED"
        else:
            seen[name] = _linux.errno_name(err)
    return seen


def kernel_status() -> dict[str, int]:
    """The Seccomp and Seccomp_filters lines of /proc/self/status (mode 2 = filter)."""
    status: dict[str, int] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("Seccomp", "Seccomp_filters", "NoNewPrivs"):
                status[key] = int(value.strip())
    except (OSError, ValueError):
        pass
    return status

"""The seccomp filter: socket() only for AF_UNIX, and no syscall that leaves or rebuilds the isolation.

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


def install() -> dict[str, Any]:
    """Load the filter into this process; returns what was installed. Raises OSError when it cannot."""
    try:
        import pyseccomp as sc
    except (ImportError, RuntimeError) as exc:  # RuntimeError: libseccomp.so is missing
        raise OSError(errno.ENOSYS, f"pyseccomp/libseccomp unavailable: {exc}") from None
    flt = sc.SyscallFilter(sc.ALLOW)
    flt.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)  # 32-bit syscalls (int 0x80) end the process
    flt.set_attr(sc.Attr.CTL_NNP, 1)
    flt.set_attr(sc.Attr.CTL_TSYNC, 1)
    for call in ("socket", "socketpair"):
        flt.add_rule(sc.ERRNO(errno.EACCES), call, sc.Arg(0, sc.NE, socket.AF_UNIX))
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
        "socket_families_allowed": list(ALLOWED_FAMILIES),
        "denied_syscalls": denied,
        "unknown_syscalls": unknown,
        "bad_arch_action": "kill process",
    }


def selftest() -> dict[str, str]:
    """Try socket(2) through libc for each refused family; maps family to the errno seen ('CREATED' if not)."""
    seen: dict[str, str] = {}
    for name, (family, kind) in SELFTEST_FAMILIES.items():
        fd, err = _linux.raw_socket(family, kind)
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

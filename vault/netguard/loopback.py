"""The loopback level's one condition: the network namespace holds nothing but `lo`.

`namespace+seccomp-loopback` lets internet sockets exist inside the sandbox (the collectives of a
run across several processes connect over loopback), so what those sockets can reach is only what
the namespace holds. The interfaces are read from /proc/self/net/dev, which the kernel fills from
the reading process's own network namespace (sysfs would show the namespace it was mounted in).
`isolate()` checks once before the seccomp filter is loaded; every process of a run checks again
before its first socket (`confirm`), because root on the host can move an interface into the
namespace at any time (`ip link set DEV netns PID`), and no filter inside can stop that.
"""

from __future__ import annotations

import socket
from typing import Any

from vault.errors import IsolationError
from vault.netguard import _linux

ONLY = frozenset({"lo"})
HINT = (
    "an interface other than loopback appeared in strongroom's network namespace (someone with root on "
    "the host moved it there): stop that, or train in one process (--nproc 1), which keeps internet "
    "sockets refused by the kernel"
)


def bring_up_and_list(warnings: list[str]) -> list[dict[str, Any]]:
    """Bring `lo` up inside a new namespace (SIOCSIFFLAGS) and list what is there. The AF_INET socket
    used for the ioctl is created and closed here, before the guard and seccomp exist."""
    found: list[dict[str, Any]] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            _linux.bring_up(sock, "lo")
        except OSError as exc:
            warnings.append(f"could not bring loopback up inside the namespace: {exc.strerror}")
        for name in _linux.proc_net_dev_names():
            try:
                flags = _linux.interface_flags(sock, name)
            except OSError:
                flags = 0
            found.append({"name": name, "up": bool(flags & _linux.IFF_UP)})
    return found


def seen() -> list[str]:
    """The interfaces of this process's network namespace, by name, sorted."""
    return sorted(_linux.proc_net_dev_names())


def evidence(names: list[str], *, where: str) -> dict[str, Any]:
    """What one check saw: recorded with the isolation report and with the run."""
    return {
        "where": where,
        "interfaces_seen": sorted(names),
        "only_loopback": bool(names) and set(names) <= ONLY,
        "netns": _linux.namespace_id("net"),
        "source": "/proc/self/net/dev",
    }


def confirm(*, where: str, host_netns: str = "") -> dict[str, Any]:
    """Check, in this process, that its namespace holds only `lo` and is not the host's; returns the
    evidence, or raises IsolationError (exit 6) naming what was found."""
    names = seen()
    found = evidence(names, where=where)
    if host_netns and found["netns"] == host_netns:
        raise IsolationError(
            f"{where}: this process is in the host's network namespace, where loopback is the host's",
            HINT,
            detail=found,
        )
    if not found["only_loopback"]:
        others = ", ".join(n for n in names if n not in ONLY) or "none at all"
        raise IsolationError(
            f"{where}: the network namespace holds interfaces other than loopback ({others}), so "
            "internet sockets inside it could leave the host",
            HINT,
            detail=found,
        )
    return found

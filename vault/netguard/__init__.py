"""Network isolation and its evidence: the process proves it could not reach a network.

Usage, first thing at process start (before torch or anything else that starts threads)::

    from vault import netguard
    report = netguard.isolate_session(keep=[vault_dir])   # strongest level the host allows
    ...                                                   # open the vault; it checks
    report.meets(policy_level)                            # the policy's level after unlock

Layers, strongest first (see docs/THREAT_MODEL.md for what each stops and what it cannot):

netns         a fresh network namespace holding only `lo` (unshare CLONE_NEWNET; as root directly,
              otherwise inside a user namespace that maps the caller's own uid).
mountns       private tmpfs over /tmp, /var/tmp, /run and /dev/shm, so host services' Unix sockets
              are out of reach; the vault and other named paths are bound back in place.
capabilities  everything but file-access capabilities dropped (all of them in a user namespace).
landlock      no ptrace-class access to outside processes, no TCP, no foreign abstract sockets.
seccomp       socket() only for AF_UNIX; setns, mount, ptrace, io_uring and friends refused.
guard         an audit hook that turns Python-level attempts into NetworkBlocked errors and
              records each one (`set_recorder`, `blocked_count`).

Modes (what a policy can require): 'namespace+seccomp' (netns, mountns and seccomp all in place),
'guard' (the host forbids namespaces: the weaker level, loudly reported), 'none'.
`netcheck()` is the fire drill; `python -m vault.netguard netcheck` runs it without a vault.
"""

from __future__ import annotations

from vault.netguard.guard import (
    NetworkBlocked,
    blocked_attempts,
    blocked_count,
    recorder_errors,
    set_recorder,
)
from vault.netguard.isolation import (
    IsolationReport,
    current_report,
    inherit,
    isolate,
    isolate_session,
)
from vault.netguard.probe import HostSentinel, netcheck

__all__ = [
    "HostSentinel",
    "IsolationReport",
    "NetworkBlocked",
    "blocked_attempts",
    "blocked_count",
    "current_report",
    "isolate",
    "inherit",
    "isolate_session",
    "netcheck",
    "recorder_errors",
    "set_recorder",
]

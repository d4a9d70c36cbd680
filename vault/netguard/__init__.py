"""Network isolation and its evidence: the process proves it could not reach a network.

Usage, first thing at process start (before torch or anything else that starts threads)::

    from vault import netguard
    report = netguard.isolate_session(keep=[vault_dir])   # strongest level the host allows
    ...                                                   # open the vault; it checks
    report.meets(policy_level)                            # the policy's level after unlock

Layers, strongest first (see docs/THREAT_MODEL.md for what each stops and what it cannot):

hardening     first of all: no core dumps, not dumpable, passphrases taken out of the environment
              (`hardening.py`).
netns         a fresh network namespace holding only `lo` (unshare CLONE_NEWNET; as root directly,
              otherwise inside a user namespace that maps the caller's own uid); IPC and UTS too.
pidns         a PID namespace: the command goes on as PID 1 of it, forked (`_pidns.py`).
mountns       private tmpfs over /tmp, /var/tmp, /run and /dev/shm, so host services' Unix sockets
              are out of reach; the vault and other named paths are bound back in place.
readonly-root every other mount read-only but the vault and the output; /proc/sys and /sys too.
capabilities  every capability dropped from all five sets, as root too.
landlock      read only Python, the source and system libraries; write only the vault, the output
              and the private tmpfs; no TCP; signals and abstract sockets scoped (`_landlock.py`).
seccomp       socket() only for AF_UNIX; setns, mount, ptrace, io_uring, bpf, keyrings, perf,
              userfaultfd, namespace clones and setuid chmod refused.
guard         an audit hook that turns Python-level attempts into NetworkBlocked errors and
              records each one (`set_recorder`, `blocked_count`).

Modes (what a policy can require): 'namespace+seccomp' (netns, mountns and seccomp all in place),
'namespace+seccomp-loopback' (the same, with internet sockets allowed once the namespace was seen
to hold only `lo`: `isolate(loopback=True)`, for a run across processes; `loopback.py`),
'guard' (the host forbids namespaces: the weaker level, loudly reported), 'none'.
`netcheck()` is the fire drill; `python -m vault.netguard netcheck` runs it without a vault.
`sandbox.drill()` is the sandbox drill (`strongroom sandbox-check`): 17 escapes against a sentinel.
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

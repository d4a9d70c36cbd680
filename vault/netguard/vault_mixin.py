"""The Vault's side of isolation: `network.blocked` entries while a session is open, and the drill.

`NetworkMixin` gives the Vault these as methods; the functions below do the work on any object
with the Vault's `_record(action, subject, outcome, **detail)`, so the CLI can use them too.
"""

from __future__ import annotations

from typing import Any, Protocol

from vault.netguard import guard
from vault.netguard.probe import HostSentinel, netcheck


class _Recording(Protocol):
    def _record(self, action: str, subject: str, outcome: str = "ok", **detail: Any) -> dict[str, Any]: ...


def record_blocked(vault: _Recording, attempt: dict[str, Any]) -> None:
    vault._record("network.blocked", str(attempt["destination"]), "denied", **attempt)


def recorded_netcheck(
    vault: _Recording,
    probe: str | None = None,
    *,
    unix_socket: str | None = None,
    sentinel: HostSentinel | None = None,
    timeout: float = 2.0,
) -> dict[str, Any]:
    """Run the drill and record it as `network.netcheck`; its blocked attempts become `network.blocked`
    entries marked `drill`."""
    previous = guard.get_recorder()
    guard.set_recorder(lambda attempt: record_blocked(vault, attempt))
    try:
        result = netcheck(probe, unix_socket=unix_socket, sentinel=sentinel, timeout=timeout)
    finally:
        guard.set_recorder(previous)
    drill = result["probe"]
    passed = result["isolated"] and drill["all_blocked"]
    vault._record(
        "network.netcheck",
        drill["target"],
        "ok" if passed else "failed",
        mode=result["mode"],
        layers=result["layers"],
        all_blocked=drill["all_blocked"],
        unix_socket=drill["unix_socket"],
        sentinel=drill["sentinel"],
        attempts=[
            {k: a[k] for k in ("name", "target", "blocked", "layer", "error")} for a in drill["attempts"]
        ],
    )
    return result


class NetworkMixin:
    """Vault methods: call `_watch_network()` when a session starts and `_unwatch_network()` when it ends."""

    def _watch_network(self: _Recording) -> None:
        guard.set_recorder(lambda attempt: record_blocked(self, attempt))

    def _unwatch_network(self) -> None:
        guard.set_recorder(None)

    def netcheck(
        self: _Recording,
        probe: str | None = None,
        *,
        unix_socket: str | None = None,
        sentinel: HostSentinel | None = None,
        timeout: float = 2.0,
    ) -> dict[str, Any]:
        """The fire drill inside this session's isolation, recorded in the audit log."""
        return recorded_netcheck(self, probe, unix_socket=unix_socket, sentinel=sentinel, timeout=timeout)

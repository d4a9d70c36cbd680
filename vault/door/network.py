"""The network through the door: while a session is open, every blocked attempt becomes a
`network.blocked` entry; and the fire drill, decided by the policy and recorded."""

from __future__ import annotations

from typing import Any

from vault.door.session import Session
from vault.netguard import guard
from vault.netguard.probe import HostSentinel, netcheck
from vault.netguard.sandbox import HostProcess, run_attempts


class NetworkService:
    """The door's network methods."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def _record_blocked(self, attempt: dict[str, Any]) -> None:
        self.session.record("network.blocked", str(attempt["destination"]), "denied", **attempt)

    def watch(self) -> None:
        """Record each blocked attempt of this process while the session is open."""
        guard.set_recorder(self._record_blocked)

    def unwatch(self) -> None:
        guard.set_recorder(None)

    def netcheck(
        self,
        probe: str | None = None,
        *,
        unix_socket: str | None = None,
        sentinel: HostSentinel | None = None,
        timeout: float = 2.0,
    ) -> dict[str, Any]:
        """The fire drill inside this session's isolation, recorded as `network.netcheck`; its blocked
        attempts become `network.blocked` entries marked `drill`."""
        session = self.session
        session.decide("netcheck", target=probe or "sentinel")
        previous = guard.get_recorder()
        guard.set_recorder(self._record_blocked)
        try:
            result = netcheck(probe, unix_socket=unix_socket, sentinel=sentinel, timeout=timeout)
        finally:
            guard.set_recorder(previous)
        drill = result["probe"]
        passed = result["isolated"] and drill["all_blocked"]
        session.record(
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

    def sandbox_check(self, sentinel: HostProcess) -> dict[str, Any]:
        """The sandbox drill inside this session's isolation, decided like the network drill and
        recorded as `network.sandbox_check`. `sentinel` was started on the host before isolation."""
        session = self.session
        try:
            session.decide("netcheck", target="sandbox")
        except BaseException:
            sentinel.stop()
            raise
        result = run_attempts(sentinel)
        session.record(
            "network.sandbox_check",
            "sandbox",
            "ok" if result["all_blocked"] else "failed",
            mode=result["mode"],
            layers=result["layers"],
            all_blocked=result["all_blocked"],
            attempts=result["attempts"],
            sentinel=result["sentinel"],
        )
        return result

"""What a verification reports: structured findings (where, what was expected, what was found) and
progress events, one type each for the vault's objects and the audit log alike, so the CLI prints
them one per line and the TUI lists them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Finding:
    """One problem: where it is (a vault file or object id, or a log entry's seq), expected vs found."""

    kind: str
    expected: str
    found: str
    message: str
    object: str | None = None
    seq: int | None = None
    severity: str = "error"  # "error" fails the verification; "warning" does not

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def where(self) -> str:
        if self.object is not None:
            return self.object
        return f"seq {self.seq}" if self.seq is not None else "log"

    def line(self) -> str:
        return f"{self.where}: {self.kind}: expected {self.expected}; found {self.found} ({self.message})"


@dataclass(frozen=True)
class VerifyProgress:
    """Progress of a verification: `done` of `total` items (log entries or objects) checked."""

    done: int
    total: int
    stage: str = "audit"
    object: str | None = None

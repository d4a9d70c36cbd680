"""The one record of this process's isolation: `isolate()` or `inherit()` stores the report here; the
door reads it to write the evidence and to compare it with the level its policy requires.

Nothing heavy is imported here, so the door can read the report without loading the isolation code.
"""

from __future__ import annotations

from typing import Any

from vault.vocabulary import isolation_rank

_report: dict[str, Any] | None = None
# Tests only: `waive_for_tests()` lets a test process, which cannot isolate itself, open vaults
# whatever their policy requires. Nothing the installed product reads can set it, and the
# isolation evidence of every session it affects says so.
_waived = False


def waive_for_tests(enabled: bool = True) -> None:
    global _waived
    _waived = enabled


def waived() -> bool:
    return _waived


def set_report(report: dict[str, Any]) -> None:
    global _report
    _report = dict(report)


def current_report() -> dict[str, Any]:
    """The isolation reached by this process, or a report that says plainly there is none."""
    report: dict[str, Any] = (
        dict(_report) if _report is not None else {"isolated": False, "mode": "none", "layers": []}
    )
    if _waived:
        report["waived_by_test_switch"] = True
        report["warnings"] = [*report.get("warnings", []), "isolation requirement waived (a test process)"]
    return report


def level_of(report: dict[str, Any]) -> str | None:
    """The level a policy decision compares with its requirement; None when a test waived the check."""
    if report.get("waived_by_test_switch"):
        return None
    return str(report.get("mode", "none"))


def meets(report: dict[str, Any], required: str) -> bool:
    level = level_of(report)
    return level is None or isolation_rank(level) >= isolation_rank(required)


def blocked_count() -> int:
    if _report is None:
        return 0
    from vault.netguard import guard

    return int(guard.blocked_count())

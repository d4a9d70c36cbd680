"""The one record of this process's isolation: `isolate()` or `inherit()` stores the report here; the
door reads it to write the evidence and to compare it with the level its policy requires.

Nothing heavy is imported here, so the door can read the report without loading the isolation code.
"""

from __future__ import annotations

import os
from typing import Any

from vault.vocabulary import isolation_rank

TEST_SWITCH = "STRONGROOM_TEST_ISOLATION"

_report: dict[str, Any] | None = None


def set_report(report: dict[str, Any]) -> None:
    global _report
    _report = dict(report)


def current_report() -> dict[str, Any]:
    """The isolation reached by this process, or a report that says plainly there is none."""
    if _report is not None:
        return dict(_report)
    report: dict[str, Any] = {"isolated": False, "mode": "none", "layers": []}
    if os.environ.get(TEST_SWITCH) == "waive":
        report["waived_by_test_switch"] = True
        report["warnings"] = [f"isolation requirement waived by {TEST_SWITCH}=waive (tests only)"]
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

"""What this process knows about its own network isolation, without importing anything heavy.

`vault.netguard.isolate()` stores its report here; the Vault reads it to write the evidence
and to compare the reached level with the one its policy requires.
"""

from __future__ import annotations

import os
from typing import Any

LEVELS = {"none": 0, "guard": 1, "namespace+seccomp": 2}
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


def meets(report: dict[str, Any], required: str) -> bool:
    if report.get("waived_by_test_switch"):
        return True
    return LEVELS.get(str(report.get("mode")), 0) >= LEVELS.get(required, 2)


def blocked_count() -> int:
    if _report is None:
        return 0
    try:
        from vault import netguard
    except ImportError:
        return 0
    return int(netguard.blocked_count())

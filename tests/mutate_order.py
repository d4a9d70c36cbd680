"""A pytest plugin for `make mutate` only: runs the selected tests fastest first, by the durations
mutmut recorded in its stats run (mutants/mutmut-stats.json), so a mutant that a quick test kills
does not wait for the slow ones before it (mutmut hands pytest its tests in no particular order)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STATS = Path("mutmut-stats.json")  # mutmut runs the tests from inside mutants/


def pytest_collection_modifyitems(items: list[Any]) -> None:
    try:
        durations = json.loads(STATS.read_text())["duration_by_test"]
    except (OSError, ValueError, KeyError):
        return  # the stats run itself: no durations yet, collection order stands
    items.sort(key=lambda item: durations.get(item.nodeid, 0.0))

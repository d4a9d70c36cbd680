"""Reading the audit log for display: entries parsed only when a screen draws them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


class LazyEntries(Sequence[dict[str, Any]]):
    """The log's complete entries, each parsed the first time it is asked for.

    Opening a 100,000-entry log for display then costs a read and a split; a screen parses only the
    rows it draws. A line that is not a JSON object reads as a placeholder (verify names it).
    """

    def __init__(self, lines: list[bytes]) -> None:
        self._lines = lines
        self._parsed: dict[int, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self._lines)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self._lines)
        entry = self._parsed.get(index)
        if entry is None:
            try:
                entry = json.loads(self._lines[index])
            except (ValueError, RecursionError):
                entry = None
            if not isinstance(entry, dict):
                entry = {
                    "seq": index,
                    "action": "(unreadable line)",
                    "outcome": "not json",
                    "actor": "?",
                    "subject": f"line {index + 1}",
                }
            self._parsed[index] = entry
        return entry

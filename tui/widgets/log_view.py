"""The audit log as a virtual table (Line API): it renders only the rows on screen, so 100,000
entries scroll as fast as 100. Filters by actor, action, time and free text."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tui.keys import bindings
from tui.text import safe_name

OUTCOME_GLYPHS = {
    "ok": "✓",
    "allowed": "✓",
    "denied": "✗",
    "failed": "✗",
    "degraded": "▲",
    "cancelled": "■",
    "interrupted": "◆",
}


def outcome_cell(outcome: str) -> str:
    return f"{OUTCOME_GLYPHS.get(outcome, '•')} {outcome}"


def parse_filter(text: str) -> tuple[dict[str, str], list[str]]:
    """`actor:ann action:dataset since:2025-01-02 until:2025-02 words` -> (fields, words)."""
    fields: dict[str, str] = {}
    words: list[str] = []
    for token in text.split():
        key, sep, value = token.partition(":")
        if sep and key.lower() in ("actor", "action", "since", "until", "outcome", "subject") and value:
            fields[key.lower()] = value
        else:
            words.append(token.lower())
    return fields, words


def entry_matches(entry: dict[str, Any], fields: dict[str, str], words: list[str]) -> bool:
    for key in ("actor", "action", "outcome", "subject"):
        wanted = fields.get(key)
        if wanted is not None and wanted.lower() not in str(entry.get(key, "")).lower():
            return False
    time = str(entry.get("time", ""))
    since = fields.get("since")
    if since is not None and time < since:
        return False
    until = fields.get("until")
    if until is not None and time[: len(until)] > until:
        return False
    if words:
        haystack = " ".join(
            str(entry.get(k, "")) for k in ("seq", "time", "actor", "role", "action", "subject", "outcome")
        ).lower()
        return all(word in haystack for word in words)
    return True


class AuditLogView(ScrollView, can_focus=True):
    """Rows of audit entries with a sticky header; a cursor row moves with j/k, arrows, pages."""

    BINDINGS = [
        *bindings("table"),
        Binding("down", "cursor_down", show=False),
        Binding("up", "cursor_up", show=False),
        Binding("pagedown", "page_down", show=False),
        Binding("pageup", "page_up", show=False),
        Binding("home", "scroll_top", show=False),
        Binding("end", "scroll_bottom", show=False),
    ]
    DEFAULT_CSS = """
    AuditLogView { height: 1fr; }
    """

    cursor = reactive(0)

    class Highlighted(Message):
        def __init__(self, entry: dict[str, Any] | None) -> None:
            super().__init__()
            self.entry = entry

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._entries: Sequence[dict[str, Any]] = []
        self._visible: list[int] = []
        self._cache: LRUCache[tuple[int, int, bool], Strip] = LRUCache(1024)
        self.unsealed: set[int] = set()
        self.filter_text = ""

    # Data.
    def set_entries(self, entries: Sequence[dict[str, Any]]) -> None:
        self._entries = entries
        self._apply_filter(keep_end=True)

    def mark_unsealed(self, places: Iterable[int]) -> None:
        """Show the entries at these places (their lines, from 0, as verification names them; not the
        seq a line claims, which whoever wrote it chose) as unsealed: no valid seal, not written by
        the vault."""
        self.unsealed = set(places)
        self._cache.clear()
        self.refresh()

    def filter(self, text: str) -> None:
        self.filter_text = text
        self._apply_filter(keep_end=False)

    @property
    def total(self) -> int:
        return len(self._entries)

    @property
    def shown(self) -> int:
        return len(self._visible)

    @property
    def current_entry(self) -> dict[str, Any] | None:
        if not self._visible:
            return None
        return self._entries[self._visible[min(self.cursor, len(self._visible) - 1)]]

    def _apply_filter(self, *, keep_end: bool) -> None:
        fields, words = parse_filter(self.filter_text)
        if fields or words:
            self._visible = [
                i for i, entry in enumerate(self._entries) if entry_matches(entry, fields, words)
            ]
        else:
            self._visible = list(range(len(self._entries)))
        self._cache.clear()
        self.virtual_size = Size(self.size.width, len(self._visible) + 1)
        self.cursor = max(0, len(self._visible) - 1) if keep_end else 0
        self._scroll_cursor_into_view()
        self.refresh()
        self.post_message(self.Highlighted(self.current_entry))

    # Drawing.
    def _columns(self, width: int) -> list[tuple[str, int]]:
        time_width = 21 if width >= 110 else 15
        fixed = 1 + 7 + time_width + 9 + 22 + 11
        return [
            ("", 1),
            ("seq", 7),
            ("time", time_width),
            ("actor", 9),
            ("action", 22),
            ("subject", max(8, width - fixed)),
            ("outcome", 11),
        ]

    def _cells(self, entry: dict[str, Any], width: int, place: int) -> list[str]:
        """The row's cells, escaped for the terminal (tui.text): the log is written by others."""
        time = str(entry.get("time", ""))
        shown_time = time[:19].replace("T", " ") + "Z" if width >= 110 else time[5:19].replace("T", " ")
        return [
            safe_name(entry.get("seq", "")),
            safe_name(shown_time),
            safe_name(entry.get("actor", "")),
            safe_name(entry.get("action", "")),
            safe_name(entry.get("subject", "")),
            "✗ UNSEALED"
            if place in self.unsealed
            else safe_name(outcome_cell(str(entry.get("outcome", "")))),
        ]

    @staticmethod
    def _fit(text: str, width: int) -> str:
        return text[: width - 1].ljust(width - 1) + " " if len(text) >= width else text.ljust(width)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        columns = self._columns(width)
        if y == 0:
            header = "".join(self._fit(title, size) for title, size in columns)
            return Strip([Segment(header[:width].ljust(width), Style(bold=True, underline=True))])
        row = int(self.scroll_offset.y) + y - 1
        if row >= len(self._visible):
            return Strip.blank(width, Style())
        selected = row == self.cursor
        key = (row, width, selected and self.has_focus)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        place = self._visible[row]
        entry = self._entries[place]
        marker = "▸" if selected else " "
        cells = [marker, *self._cells(entry, width, place)]
        line = "".join(self._fit(cell, size) for cell, (_, size) in zip(cells, columns, strict=True))
        outcome = str(entry.get("outcome", ""))
        style = Style(reverse=True) if selected else Style()
        segments = [Segment(line[: width - 11].ljust(width - 11), style)]
        outcome_style = style + Style(bold=OUTCOME_GLYPHS.get(outcome) == "✗")
        segments.append(Segment(line[width - 11 : width].ljust(11), outcome_style))
        strip = Strip(segments, width)
        self._cache[key] = strip
        return strip

    # Moving.
    def watch_cursor(self, old: int, new: int) -> None:
        self._cache.clear()
        self.refresh()

    def _scroll_cursor_into_view(self) -> None:
        height = max(1, self.size.height - 1)
        top = int(self.scroll_offset.y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True)

    def _move(self, delta: int) -> None:
        if not self._visible:
            return
        self.cursor = max(0, min(len(self._visible) - 1, self.cursor + delta))
        self._scroll_cursor_into_view()
        self.post_message(self.Highlighted(self.current_entry))

    def action_cursor_down(self) -> None:
        self._move(1)

    def action_cursor_up(self) -> None:
        self._move(-1)

    def action_page_down(self) -> None:
        self._move(max(1, self.size.height - 2))

    def action_page_up(self) -> None:
        self._move(-max(1, self.size.height - 2))

    def action_scroll_top(self) -> None:
        self._move(-len(self._visible))

    def action_scroll_bottom(self) -> None:
        self._move(len(self._visible))

    def on_resize(self) -> None:
        self._cache.clear()
        self.virtual_size = Size(self.size.width, len(self._visible) + 1)

    def on_focus(self) -> None:
        self._cache.clear()
        self.refresh()

    def on_blur(self) -> None:
        self._cache.clear()
        self.refresh()

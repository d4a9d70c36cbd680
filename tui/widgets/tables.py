"""A DataTable that moves with j/k and keeps its full rows so `/` can filter them."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from tui.keys import bindings
from tui.text import shown

Cell = str | Text


class KeyTable(DataTable[Cell]):
    """Rows are (key, cells); `set_rows` replaces them, `filter` hides those not containing the text."""

    BINDINGS = bindings("table")

    def __init__(self, columns: Sequence[tuple[str, int | None]], *, id: str | None = None) -> None:
        """`columns`: (label, width) pairs; a width of None sizes the column to its content."""
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self._column_specs = list(columns)
        self._rows: list[tuple[str, tuple[Cell, ...]]] = []
        self._filter = ""

    def on_mount(self) -> None:
        for label, width in self._column_specs:
            self.add_column(label, width=width)

    def set_rows(self, rows: Sequence[tuple[str, Sequence[Cell]]]) -> None:
        """Plain-string cells are shown as typed (escaped, never read as markup); Text cells as given."""
        self._rows = [
            (key, tuple(shown(c) if isinstance(c, str) else c for c in cells)) for key, cells in rows
        ]
        self._show()

    def filter(self, text: str) -> None:
        self._filter = text.strip().lower()
        self._show()

    @property
    def selected_key(self) -> str | None:
        if self.row_count == 0:
            return None
        row_key, _ = self.coordinate_to_cell_key((self.cursor_row, 0))
        return row_key.value

    def _show(self) -> None:
        selected = self.selected_key if self.row_count else None
        self.clear()
        for key, cells in self._rows:
            if self._filter and not any(self._filter in str(cell).lower() for cell in cells):
                continue
            self.add_row(*cells, key=key)
        if selected is not None:
            try:
                self.move_cursor(row=self.get_row_index(selected))
            except RowDoesNotExist:
                self.move_cursor(row=0)

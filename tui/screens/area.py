"""What every area shares: the area bar, a `/` filter line, esc to go back, the footer,
and `call_core`, which runs a blocking core call in a thread worker and hands the result
(or the error, as a dialog) back on the UI thread."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, ClassVar

from textual.app import ComposeResult, SystemCommand
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input
from textual.worker import Worker, WorkerState

from tui.keys import bindings
from tui.widgets.area_bar import AreaBar
from tui.widgets.tables import KeyTable


class CoreScreen(Screen[None]):
    """A screen that calls the core: `call_core` runs a blocking call in a thread worker and hands
    the result (or the error, as a dialog unless `failed` handles it) back on the UI thread."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._pending: dict[
            Worker[Any], tuple[Callable[[Any], None] | None, Callable[[BaseException], bool | None] | None]
        ] = {}

    def call_core(
        self,
        description: str,
        function: Callable[..., Any],
        *args: Any,
        done: Callable[[Any], None] | None = None,
        failed: Callable[[BaseException], bool | None] | None = None,
        exclusive: bool = True,
        **kwargs: Any,
    ) -> Worker[Any]:
        worker = self.run_worker(
            partial(function, *args, **kwargs),
            name=description,
            group=description,
            thread=True,
            exclusive=exclusive,
            exit_on_error=False,
        )
        self._pending[worker] = (done, failed)
        return worker

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        callbacks = self._pending.get(event.worker)
        if callbacks is None or event.state not in (
            WorkerState.SUCCESS,
            WorkerState.ERROR,
            WorkerState.CANCELLED,
        ):
            return
        del self._pending[event.worker]
        done, failed = callbacks
        if event.state == WorkerState.SUCCESS and done is not None:
            done(event.worker.result)
        elif event.state == WorkerState.ERROR:
            error = event.worker.error or RuntimeError("worker failed")
            handled = failed(error) if failed is not None else False
            if not handled:
                self.app.show_error(error)


class AreaScreen(CoreScreen):
    """Base of the six areas. Subclasses set AREA and implement compose_area/refresh_area."""

    AREA: ClassVar[str] = ""
    BINDINGS = bindings("area")
    AUTO_FOCUS = "KeyTable, AuditLogView"

    def __init__(self) -> None:
        super().__init__(id=f"area-{self.AREA}")
        self._stale = True

    def compose(self) -> ComposeResult:
        from tui.app import AREAS

        app = self.app
        areas = [(area, *AREAS[area]) for area in app.areas]
        backend = getattr(app, "backend", None)
        who = f"{backend.user} ({backend.role})" if backend is not None else "auditor · read-only"
        yield AreaBar(self.AREA, areas, who)
        yield Input(
            placeholder="filter: type to narrow the table, esc clears",
            id="filter",
            classes="filter",
            disabled=True,
        )
        with Vertical(classes="area-body"):
            yield from self.compose_area()
        yield Footer()

    def compose_area(self) -> ComposeResult:
        raise NotImplementedError

    def on_screen_resume(self) -> None:
        """Reload when the area is entered (first time, or back from another area), not when a
        dialog on top of it closes: a failing core call must not reopen its error dialog."""
        if self._stale:
            self._stale = False
            self.refresh_area()

    def on_screen_suspend(self) -> None:
        if self.app.current_mode != self.AREA:
            self._stale = True

    def refresh_area(self) -> None:
        """Reload what the area shows from the core (called whenever the area is shown)."""

    @property
    def backend(self) -> Any:
        return self.app.backend

    # Filtering and going back.
    def filter_table(self) -> KeyTable | None:
        """The table that `/` filters (the first one in the area by default)."""
        tables = self.query(KeyTable)
        return tables.first() if tables else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "filter" and self.is_mounted and self.filter_table() is None:
            return None
        return True

    def action_filter(self) -> None:
        if self.filter_table() is None:
            return
        field = self.query_one("#filter", Input)
        field.disabled = False
        field.add_class("shown")
        field.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            event.stop()
            table = self.filter_table()
            if table is not None:
                table.filter(event.value)
                self.filtered()

    def filtered(self) -> None:
        """Called after the filter changed what the table shows."""

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            event.stop()
            table = self.filter_table()
            if table is not None:
                table.focus()

    def action_back(self) -> None:
        field = self.query_one("#filter", Input)
        if field.has_class("shown"):
            field.value = ""
            field.remove_class("shown")
            field.disabled = True
            table = self.filter_table()
            if table is not None:
                table.filter("")
                self.filtered()
                table.focus()
            return
        self.go_back()

    def go_back(self) -> None:
        """esc with no filter open: close a detail view, or return focus to the main table."""
        table = self.filter_table()
        if table is not None:
            table.focus()

    def palette_commands(self) -> Iterable[SystemCommand]:
        """Area commands offered in the command palette (ctrl+p)."""
        return ()

"""Help: every key of the app, grouped by where it works, straight from tui/keys.py."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.keys import KEYS, SCOPE_TITLES, display, key_for


def help_text(current_scope: str | None = None) -> Text:
    """Every key, one per line, grouped by scope; the current area's group comes first."""
    scopes = list(SCOPE_TITLES)
    if current_scope in scopes:
        scopes.remove(current_scope)
        scopes.insert(0, current_scope)
    text = Text()
    for scope in scopes:
        keys = [key for key in KEYS if key.scope == scope]
        if not keys:
            continue
        text.append(f"{SCOPE_TITLES[scope]}\n", style="bold underline")
        for key in keys:
            text.append(f"  {display(key):<10}", style="bold")
            text.append(f" {key.description}\n")
        text.append("\n")
    text.rstrip()
    return text


class HelpScreen(ModalScreen[None]):
    """Opened with f1 (works inside text fields too) or ?; esc or f1 closes it."""

    BINDINGS = [key_for("dialog.cancel").binding()]

    def __init__(self, current_scope: str | None = None) -> None:
        super().__init__(classes="dialog-screen")
        self.current_scope = current_scope

    def compose(self) -> ComposeResult:
        with Vertical(id="help", classes="dialog"):
            yield Static("Help · esc or f1 closes · ↑/↓ scroll", classes="dialog-title")
            with VerticalScroll(id="help-scroll"):
                yield Static(help_text(self.current_scope), id="help-keys")

    def on_mount(self) -> None:
        self.query_one("#help-scroll").focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

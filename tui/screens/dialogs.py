"""Modal dialogs: errors (title + hint), confirmations (focus on Cancel), typed-name confirmation,
and the approver's credentials for a two-person export. What they show is never read as markup,
and control characters in it are shown escaped (tui.text)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from tui.keys import bindings
from tui.text import safe_name


class ErrorDialog(ModalScreen[None]):
    """Shows a core error: what is wrong (title) and how to fix it (hint)."""

    BINDINGS = bindings("dialog")

    def __init__(self, title: str, hint: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self.error_title = title
        self.error_hint = hint

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog error-dialog"):
            yield Static(f"✗ Error: {safe_name(self.error_title)}", classes="dialog-title", markup=False)
            if self.error_hint:
                yield Static(f"Hint: {safe_name(self.error_hint)}", classes="dialog-body", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("OK", id="ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#ok", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmDialog(ModalScreen[bool]):
    """Asks before something irreversible. Focus starts on Cancel, so a stray enter is harmless."""

    BINDINGS = bindings("dialog")

    def __init__(self, title: str, body: str, confirm_label: str = "Confirm") -> None:
        super().__init__(classes="dialog-screen")
        self.dialog_title = title
        self.body = body
        self.confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"⚠ {safe_name(self.dialog_title)}", classes="dialog-title", markup=False)
            yield Static(safe_name(self.body), classes="dialog-body", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.confirm_label, id="confirm", variant="error")
                yield Button("Cancel", id="cancel", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm")

    def action_cancel(self) -> None:
        self.dismiss(False)


class TypedConfirmDialog(ModalScreen[bool]):
    """The gravest confirmation: the target's name must be typed before the action is allowed."""

    BINDINGS = bindings("dialog")

    def __init__(self, title: str, body: str, expected: str, confirm_label: str = "Delete") -> None:
        super().__init__(classes="dialog-screen")
        self.dialog_title = title
        self.body = body
        self.expected = expected
        self.confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"⚠ {safe_name(self.dialog_title)}", classes="dialog-title", markup=False)
            yield Static(safe_name(self.body), classes="dialog-body", markup=False)
            yield Label(f"Type {safe_name(self.expected)!r} to confirm:", markup=False)
            yield Input(placeholder=safe_name(self.expected), id="typed")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.confirm_label, id="confirm", variant="error", disabled=True)
                yield Button("Cancel", id="cancel", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#confirm", Button).disabled = event.value != self.expected

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value == self.expected:
            self.dismiss(True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm" and self.query_one("#typed", Input).value == self.expected)

    def action_cancel(self) -> None:
        self.dismiss(False)


class ApproverDialog(ModalScreen[tuple[str, bytes] | None]):
    """A second person signs off an export: their user name and passphrase (masked, never shown)."""

    BINDINGS = bindings("dialog")

    def __init__(self, model_id: str, reason: str) -> None:
        super().__init__(classes="dialog-screen")
        self.model_id = model_id
        self.reason = reason

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("⚠ Export needs a second person's approval", classes="dialog-title")
            yield Static(
                f"Model {safe_name(self.model_id)}: {safe_name(self.reason)}",
                classes="dialog-body",
                markup=False,
            )
            yield Input(placeholder="approver's user name", id="approver")
            yield Input(placeholder="approver's passphrase", password=True, id="approver-passphrase")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Approve export", id="confirm", variant="warning")
                yield Button("Cancel", id="cancel", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def _submit(self) -> None:
        name = self.query_one("#approver", Input).value.strip()
        secret_input = self.query_one("#approver-passphrase", Input)
        secret = secret_input.value.encode()
        secret_input.value = ""
        self.dismiss((name, secret) if name and secret else None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "approver":
            self.query_one("#approver-passphrase", Input).focus()
        else:
            self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "confirm":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class InputDialog(ModalScreen[str | None]):
    """Asks for one value (a folder to export to, a file to write a checkpoint to)."""

    BINDINGS = bindings("dialog")

    def __init__(self, title: str, body: str, value: str = "", confirm_label: str = "OK") -> None:
        super().__init__(classes="dialog-screen")
        self.dialog_title = title
        self.body = body
        self.value = value
        self.confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(safe_name(self.dialog_title), classes="dialog-title", markup=False)
            yield Static(safe_name(self.body), classes="dialog-body", markup=False)
            yield Input(self.value, id="value")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.confirm_label, id="confirm", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#value", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        value = self.query_one("#value", Input).value.strip()
        self.dismiss(value or None if event.button.id == "confirm" else None)

    def action_cancel(self) -> None:
        self.dismiss(None)

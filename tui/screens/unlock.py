"""Unlock: user name and a masked passphrase; the key derivation runs in a thread worker."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Static
from textual.worker import get_current_worker

from tui.keys import bindings


class Unlocked(Message):
    def __init__(self, backend: object) -> None:
        super().__init__()
        self.backend = backend


class UnlockFailed(Message):
    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


class UnlockScreen(Screen[None]):
    """The first screen. The passphrase is masked, cleared from the field at once, never shown."""

    BINDINGS = bindings("unlock")
    AUTO_FOCUS = "#passphrase"

    def __init__(self, vault_path: Path, user: str) -> None:
        super().__init__()
        self.vault_path = vault_path
        self.initial_user = user

    def compose(self) -> ComposeResult:
        with Vertical(id="unlock"):
            yield Static("▣ Strongroom", id="unlock-title")
            yield Static(f"vault: {self.vault_path}", id="unlock-vault", markup=False)
            yield Label("User")
            yield Input(self.initial_user, id="user")
            yield Label("Passphrase")
            yield Input(password=True, id="passphrase", placeholder="typed characters stay hidden")
            yield Button("Unlock", id="unlock-button", variant="primary")
            yield Static("", id="unlock-status")
            yield Static("f1 help · ctrl+q quit · tab next field", id="unlock-hint")
        yield Footer()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "user":
            self.query_one("#passphrase", Input).focus()
        else:
            self.action_unlock()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_unlock()

    def action_unlock(self) -> None:
        user = self.query_one("#user", Input).value.strip()
        secret_field = self.query_one("#passphrase", Input)
        passphrase = secret_field.value.encode()
        secret_field.value = ""
        if not user or not passphrase:
            self.query_one("#unlock-status", Static).update("✗ enter a user name and the passphrase")
            return
        self.set_busy(True)
        self.derive_and_open(user, passphrase)

    def set_busy(self, busy: bool) -> None:
        self.query_one("#unlock-button", Button).disabled = busy
        self.query_one("#user", Input).disabled = busy
        self.query_one("#passphrase", Input).disabled = busy
        self.query_one("#unlock-status", Static).update("… deriving the key (Argon2id)" if busy else "")

    @work(thread=True, exclusive=True, group="unlock", exit_on_error=False)
    def derive_and_open(self, user: str, passphrase: bytes) -> None:
        from tui.backend import Backend

        try:
            backend = Backend.unlock(self.vault_path, user=user, passphrase=passphrase)
        except Exception as error:  # shown in a dialog; the app keeps running
            self.post_message(UnlockFailed(error))
            return
        if get_current_worker().is_cancelled:
            backend.close()
            return
        del passphrase  # the session holds the slot's keys; the passphrase is not kept
        self.post_message(Unlocked(backend))

    def on_unlocked(self, message: Unlocked) -> None:
        self.query_one("#unlock-status", Static).update("✓ unlocked")
        self.app.unlocked_with(message.backend)

    def on_unlock_failed(self, message: UnlockFailed) -> None:
        self.set_busy(False)
        self.query_one("#unlock-status", Static).update("✗ not unlocked")
        self.query_one("#passphrase", Input).focus()
        self.app.show_error(message.error)

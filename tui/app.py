"""StrongroomApp: the unlock screen, then six areas switched with 1-6 (or only Audit for an auditor).

Areas are Textual modes whose screens are imported on first use, so the unlock screen
appears quickly; the vault is reached only through `tui.backend`.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from textual.app import App, SystemCommand
from textual.screen import Screen

from tui.keys import bindings
from tui.theme import DEFAULT_THEME, HIGH_CONTRAST
from vault.audit.sealing import ROTATE_AFTER as SEAL_EPOCH_SECONDS

AREAS: dict[str, tuple[str, str]] = {
    "datasets": ("1", "Datasets"),
    "train": ("2", "Train"),
    "models": ("3", "Models"),
    "privacy": ("4", "Privacy"),
    "audit": ("5", "Audit"),
    "policy": ("6", "Policy"),
}


def _area_screen(area: str) -> Callable[[], Screen]:
    def make() -> Screen:
        module = importlib.import_module(f"tui.screens.{area}")
        return module.SCREEN()

    return make


class StrongroomApp(App[None]):
    """The appliance from the keyboard. `auditor=True` opens only the Audit area, read-only."""

    CSS_PATH = "strongroom.tcss"
    TITLE = "Strongroom"
    BINDINGS = bindings("app")

    def __init__(
        self,
        vault_path: Path,
        *,
        user: str | None = None,
        auditor: bool = False,
        high_contrast: bool = False,
    ) -> None:
        super().__init__()
        self.vault_path = Path(vault_path)
        self.initial_user = user or os.environ.get("STRONGROOM_USER", "admin")
        self.auditor = auditor
        self.backend: Any = None
        self.audit_reader: Any = None
        self.training_run: Any = None
        self._high_contrast = high_contrast
        for area in self.areas:
            self.add_mode(area, _area_screen(area))

    @property
    def areas(self) -> list[str]:
        return ["audit"] if self.auditor else list(AREAS)

    @property
    def unlocked(self) -> bool:
        return self.backend is not None or self.auditor

    def on_mount(self) -> None:
        self.register_theme(HIGH_CONTRAST)
        self.theme = HIGH_CONTRAST.name if self._high_contrast else DEFAULT_THEME
        from tui.backend import AuditReader

        self.audit_reader = AuditReader(self.vault_path)
        if self.auditor:
            self.sub_title = f"auditor (read-only) · {self.vault_path}"
            self.switch_mode("audit")
        else:
            from tui.screens.unlock import UnlockScreen

            self.push_screen(UnlockScreen(self.vault_path, self.initial_user))

    # Unlocking and the session.
    def unlocked_with(self, backend: Any) -> None:
        """Called by the unlock screen on the UI thread once the vault is open."""
        self.backend = backend
        self.sub_title = f"{backend.user} ({backend.role}) · {self.vault_path}"
        self.switch_mode("datasets")
        self.set_interval(SEAL_EPOCH_SECONDS, self.move_sealing_on)

    def move_sealing_on(self) -> None:
        """Every 15 minutes while the vault stays open: the audit log's sealing keys move to a new
        epoch and the old ones are destroyed (in a thread: it writes and fsyncs)."""
        if self.backend is not None:
            self.run_worker(self.backend.move_sealing_on, thread=True, group="sealing", exit_on_error=False)

    def training_secret(self) -> bytes:
        """The session's slot secrets, handed through a pipe (never argv or disk) to the training
        process, which resumes the session with them: no passphrase is kept or passed on."""
        if self.backend is None:
            raise RuntimeError("the vault is locked")
        return bytes(self.backend.slot_secrets())

    @property
    def run_active(self) -> bool:
        return self.training_run is not None and self.training_run.active

    # Errors.
    def show_error(self, error: BaseException) -> None:
        from tui.screens.dialogs import ErrorDialog

        title = getattr(error, "title", None)
        hint = getattr(error, "hint", "")
        if title is None:
            title = f"Unexpected {type(error).__name__}"
            hint = "This is a bug in Strongroom; the vault is unchanged. " + str(error)[:200]
        self.push_screen(ErrorDialog(str(title), str(hint)))

    # Actions bound in tui/keys.py.
    def action_area(self, area: str) -> None:
        if not self.unlocked:
            self.bell()
            return
        if area not in self.areas:
            self.notify("Auditor mode shows only the Audit area.", title="Not available", severity="warning")
            return
        self.switch_mode(area)

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss(None)
            return
        self.push_screen(HelpScreen(self.current_mode if self.current_mode in AREAS else None))

    def action_toggle_contrast(self) -> None:
        self.theme = DEFAULT_THEME if self.theme == HIGH_CONTRAST.name else HIGH_CONTRAST.name

    def action_request_quit(self) -> None:
        if not self.run_active:
            self.exit()
            return
        from tui.screens.dialogs import ConfirmDialog

        def decided(quit_now: bool | None) -> None:
            if quit_now:
                self.training_run.cancel()
                self.exit()

        self.push_screen(
            ConfirmDialog(
                "Quit while a training run is active?",
                "The run will be cancelled: no model is written and the ledger is charged "
                "for the steps already taken.",
                "Cancel run and quit",
            ),
            decided,
        )

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        if self.unlocked:
            for area in self.areas:
                number, title = AREAS[area]
                yield SystemCommand(
                    f"Go to {title}",
                    f"Area {number} (key {number})",
                    lambda area=area: self.action_area(area),
                )
        yield SystemCommand("Help: keys", "Every key of the app (f1)", self.action_help)
        yield SystemCommand(
            "High-contrast theme", "Toggle the high-contrast theme (f2)", self.action_toggle_contrast
        )
        screen_commands = getattr(screen, "palette_commands", None)
        if callable(screen_commands):
            yield from screen_commands()
        yield SystemCommand("Quit", "Leave Strongroom (ctrl+q)", self.action_request_quit)

    def on_unmount(self) -> None:
        if self.training_run is not None:
            self.training_run.cancel()
        if self.backend is not None:
            self.backend.close()

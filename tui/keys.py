"""Every key binding of the TUI, declared once with an id and a description.

Screens and widgets take their BINDINGS from here (`bindings(scope)`), and the help
screen lists this table, so what the help says is what the keys do.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True)
class Key:
    """One binding: `scope` names where it works (app, an area, a widget, a dialog)."""

    id: str
    key: str
    action: str
    description: str
    scope: str
    show: bool = True
    priority: bool = False
    key_display: str | None = None
    short: str = ""
    """The footer's label at 80 columns; the help shows `description`."""

    def binding(self) -> Binding:
        return Binding(
            self.key,
            self.action,
            self.short or self.description,
            show=self.show,
            priority=self.priority,
            key_display=self.key_display,
            tooltip=self.description,
            id=self.id,
        )


SCOPE_TITLES: dict[str, str] = {
    "app": "Everywhere",
    "area": "In every area",
    "table": "Tables and lists",
    "datasets": "1 Datasets",
    "train": "2 Train",
    "models": "3 Models",
    "privacy": "4 Privacy",
    "audit": "5 Audit",
    "policy": "6 Policy",
    "unlock": "Unlock",
    "picker": "Import: file picker",
    "report": "Audit: access report",
    "dialog": "Dialogs",
}

KEYS: tuple[Key, ...] = (
    # Everywhere.
    Key("app.help", "f1", "app.help", "Help: every key", "app", priority=True, short="help"),
    Key(
        "app.help-alt",
        "question_mark",
        "app.help",
        "Help (outside text fields)",
        "app",
        show=False,
        key_display="?",
    ),
    Key(
        "app.palette",
        "ctrl+p",
        "app.command_palette",
        "Command palette",
        "app",
        priority=True,
        show=False,
        short="palette",
    ),
    Key(
        "app.quit",
        "ctrl+q",
        "app.request_quit",
        "Quit (asks first while a run is active)",
        "app",
        priority=True,
        short="quit",
    ),
    Key("app.contrast", "f2", "app.toggle_contrast", "High-contrast theme on/off", "app", show=False),
    Key("app.area-datasets", "1", "app.area('datasets')", "Area 1: Datasets", "app", show=False),
    Key("app.area-train", "2", "app.area('train')", "Area 2: Train", "app", show=False),
    Key("app.area-models", "3", "app.area('models')", "Area 3: Models", "app", show=False),
    Key("app.area-privacy", "4", "app.area('privacy')", "Area 4: Privacy", "app", show=False),
    Key("app.area-audit", "5", "app.area('audit')", "Area 5: Audit", "app", show=False),
    Key("app.area-policy", "6", "app.area('policy')", "Area 6: Policy", "app", show=False),
    # Tables and lists (every table in every area).
    Key("table.down", "j", "cursor_down", "Move down", "table", show=False),
    Key("table.up", "k", "cursor_up", "Move up", "table", show=False),
    Key("table.top", "g", "scroll_top", "First row", "table", show=False),
    Key("table.bottom", "G", "scroll_bottom", "Last row", "table", show=False),
    Key("area.filter", "slash", "filter", "Filter the table", "area", key_display="/", short="filter"),
    Key(
        "area.back",
        "escape",
        "back",
        "Back: clear filter, close detail",
        "area",
        key_display="esc",
        show=False,
    ),
    # Unlock.
    Key("unlock.submit", "enter", "unlock", "Unlock the vault", "unlock", show=False),
    # Datasets.
    Key("datasets.import", "i", "import_dataset", "Import", "datasets"),
    Key(
        "datasets.samples", "s", "show_samples", "Show samples (an audited read)", "datasets", short="samples"
    ),
    Key("datasets.delete", "d", "delete_dataset", "Delete", "datasets"),
    Key("datasets.refresh", "r", "refresh", "Refresh", "datasets", show=False),
    # Train.
    Key("train.start", "ctrl+r", "start_run", "Start run", "train", priority=True),
    Key("train.cancel", "ctrl+x", "cancel_run", "Cancel run", "train", priority=True),
    # Models.
    Key("models.evaluate", "e", "evaluate", "Evaluate", "models"),
    Key("models.export", "x", "export", "Export", "models"),
    Key("models.refresh", "r", "refresh", "Refresh", "models", show=False),
    # Privacy.
    Key("privacy.refresh", "r", "refresh", "Refresh", "privacy"),
    # Audit.
    Key("audit.verify", "v", "verify", "Re-verify", "audit", short="verify"),
    Key("audit.checkpoint", "c", "save_checkpoint", "Save checkpoint", "audit", short="checkpoint"),
    Key("audit.cosign", "w", "cosign", "Cosign as a witness (a witness key file)", "audit", show=False),
    Key("audit.reload", "r", "reload", "Reload log", "audit", show=False),
    Key("audit.report", "p", "report", "Access report: by period, dataset, person", "audit", short="report"),
    # The access report (from the Audit area).
    Key("report.build", "ctrl+r", "build", "Build the report", "report", priority=True, short="build"),
    Key(
        "report.save",
        "ctrl+s",
        "save",
        "Save it (.md, .html or .json)",
        "report",
        priority=True,
        short="save",
    ),
    Key("report.close", "escape", "close", "Back to the log", "report", key_display="esc", short="back"),
    # Policy.
    Key("policy.check", "ctrl+r", "check", "Run what-if check", "policy", priority=True),
    # Import file picker.
    Key("picker.detect", "p", "preview", "Preview the selection", "picker"),
    Key("picker.import", "ctrl+r", "run_import", "Import", "picker", priority=True),
    Key("picker.close", "escape", "close", "Close", "picker", key_display="esc"),
    # Dialogs.
    Key("dialog.cancel", "escape", "cancel", "Cancel", "dialog", key_display="esc"),
)

_BY_ID = {key.id: key for key in KEYS}


def bindings(*scopes: str) -> list[Binding]:
    """The Textual bindings for the given scopes, in declaration order."""
    return [key.binding() for key in KEYS if key.scope in scopes]


def key_for(key_id: str) -> Key:
    return _BY_ID[key_id]


def display(key: Key) -> str:
    """The key as a person types it ("ctrl+p", "/", "esc")."""
    return key.key_display or key.key

"""Area 3, Models: the list, the model card (Markdown, with the DP statement and the leakage
check), evaluation, and export (with a second person's approval when policy asks)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual.app import ComposeResult, SystemCommand
from textual.containers import VerticalScroll
from textual.widgets import Markdown, Static

from tui.keys import bindings
from tui.screens.area import AreaScreen
from tui.text import literal, safe_name_lines
from tui.widgets.tables import KeyTable

COLUMNS = (("id", 12), ("dataset", 12), ("model", 9), ("ε", 9), ("accuracy", 8), ("created", 16))


def fmt_epsilon(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "✗ ∞ no DP"


def fmt_accuracy(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) else "-"


def card_markdown(card: Any) -> str:
    """The card's own Markdown when the core gives it, else one built from its JSON fields; control
    characters escaped either way (names in a card come from imported files)."""
    return safe_name_lines(_card_markdown(card))


def _card_markdown(card: Any) -> str:
    if isinstance(card, str):
        return card
    if isinstance(card, dict):
        for key in ("markdown", "card_md", "md"):
            if isinstance(card.get(key), str):
                return str(card[key])
        lines = [f"# Model {card.get('id', card.get('model', ''))}", ""]
        for key, value in card.items():
            if isinstance(value, dict):
                lines += [f"## {key}", ""] + [f"- **{k}**: {v}" for k, v in value.items()] + [""]
            else:
                lines.append(f"- **{key}**: {value}")
        return "\n".join(lines)
    return str(card)


def evaluation_line(result: dict[str, Any]) -> str:
    parts = [
        f"✓ evaluated on {literal(result.get('dataset', '?'))}: accuracy {fmt_accuracy(result.get('accuracy'))}"
    ]
    if isinstance(result.get("macro_f1"), (int, float)):
        parts.append(f"macro-F1 {result['macro_f1']:.3f}")
    return " · ".join(parts)


class ModelsScreen(AreaScreen):
    AREA = "models"
    BINDINGS = bindings("models")

    def __init__(self) -> None:
        super().__init__()
        self.models: dict[str, dict[str, Any]] = {}

    def compose_area(self) -> ComposeResult:
        yield KeyTable(COLUMNS, id="models-table")
        yield Static("", id="models-status", classes="status-line")
        with VerticalScroll(id="model-card", classes="detail"):
            yield Markdown("", id="model-card-md")

    def refresh_area(self) -> None:
        self.call_core("models", self.backend.models, done=self.show_models)

    def show_models(self, models: list[dict[str, Any]]) -> None:
        self.models = {str(m.get("id")): m for m in models}
        rows = [
            (
                mid,
                (
                    mid[:12],
                    str(m.get("dataset", "")),
                    str(m.get("model", m.get("architecture", ""))),
                    fmt_epsilon(m.get("epsilon")),
                    fmt_accuracy(m.get("accuracy")),
                    str(m.get("created", ""))[:16].replace("T", " "),
                ),
            )
            for mid, m in self.models.items()
        ]
        table = self.query_one("#models-table", KeyTable)
        table.set_rows(rows)
        if not rows:
            self.query_one("#model-card-md", Markdown).update(
                "No models yet. Train one in area **2 Train** (key 2)."
            )
        else:
            self.show_card(table.selected_key)

    def on_data_table_row_highlighted(self, event: KeyTable.RowHighlighted) -> None:
        self.show_card(event.row_key.value if event.row_key else None)

    def show_card(self, model_id: str | None) -> None:
        if model_id is None:
            return
        self.call_core(
            "card",
            self.backend.model_card,
            model_id,
            done=lambda card: self.query_one("#model-card-md", Markdown).update(card_markdown(card)),
        )

    @property
    def selected(self) -> str | None:
        return self.query_one("#models-table", KeyTable).selected_key

    def action_refresh(self) -> None:
        self.refresh_area()

    def action_evaluate(self) -> None:
        model_id = self.selected
        if model_id is None:
            return
        dataset = str(self.models[model_id].get("dataset", ""))
        status = self.query_one("#models-status", Static)
        status.update(f"… evaluating {literal(model_id[:12])} on {literal(dataset)} (an audited read)")
        self.call_core(
            "evaluate",
            self.backend.evaluate,
            model_id,
            dataset,
            done=lambda result: status.update(evaluation_line({"dataset": dataset, **result})),
            failed=lambda error: status.update("✗ evaluation failed"),
        )

    def action_export(self) -> None:
        model_id = self.selected
        if model_id is None:
            return
        from tui.screens.dialogs import InputDialog

        default = str(Path.cwd() / f"export-{model_id[:12]}")

        def chosen(folder: str | None) -> None:
            if folder:
                self.export_to(model_id, Path(folder).expanduser())

        self.app.push_screen(
            InputDialog(
                f"Export model {model_id[:12]}",
                "Writes the model (safetensors and ONNX), preprocess.json, predict.py, its card and a "
                "signed manifest to this folder. Records never leave the vault.",
                default,
                "Export",
            ),
            chosen,
        )

    def export_to(self, model_id: str, folder: Path, approver: tuple[str, bytes] | None = None) -> None:
        status = self.query_one("#models-status", Static)
        status.update(f"… exporting {literal(model_id[:12])} to {literal(folder)}")

        def needs_approval(error: BaseException) -> bool:
            rule = str(getattr(error, "detail", {}).get("rule", "")) + str(getattr(error, "title", ""))
            status.update(f"✗ export refused: {literal(getattr(error, 'title', error))}")
            if approver is None and "approv" in rule.lower():
                from tui.screens.dialogs import ApproverDialog

                def approved(credentials: tuple[str, bytes] | None) -> None:
                    if credentials is not None:
                        self.export_to(model_id, folder, credentials)

                self.app.push_screen(
                    ApproverDialog(model_id[:12], str(getattr(error, "title", ""))), approved
                )
                return True
            return False

        self.call_core(
            "export",
            self.backend.export,
            model_id,
            folder,
            approver=approver[0] if approver else None,
            approver_passphrase=approver[1] if approver else None,
            done=lambda _: status.update(f"✓ exported {literal(model_id[:12])} to {literal(folder)}"),
            failed=needs_approval,
        )

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand(
            "Evaluate model", "Evaluate the selected model on its dataset (e)", self.action_evaluate
        )
        yield SystemCommand("Export model", "Export the selected model with its card (x)", self.action_export)


SCREEN = ModelsScreen

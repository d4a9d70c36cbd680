"""Area 1, Datasets: the table, a detail with class balance, samples on request (an audited
read), import through a file picker, and delete with a typed-name confirmation."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual.app import ComposeResult, SystemCommand
from textual.containers import VerticalScroll
from textual.widgets import Static

from tui.keys import bindings
from tui.screens.area import AreaScreen
from tui.text import literal, safe_name, shown
from tui.widgets.halfblock import image_row
from tui.widgets.ledger_bar import remaining
from tui.widgets.tables import KeyTable

COLUMNS = (
    ("name", 16),
    ("kind", 5),
    ("samples", 7),
    ("classes", 7),
    ("sensitivity", 11),
    ("ver", 3),
    ("budget left", 12),
)
BAR_WIDTH = 20
SAMPLES_SHOWN = 3


def budget_by_dataset(budget: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(row.get("dataset")): row for row in budget}


def budget_cell(row: dict[str, Any] | None) -> str:
    if row is None or not (row.get("runs") or row.get("epsilon_carried") or row.get("unbounded")):
        cap = None if row is None else row.get("epsilon_cap")
        return f"✓ {cap:.2f} ε" if cap is not None else "○ no cap"
    return remaining(row.get("epsilon_spent"), row.get("epsilon_cap"), bool(row.get("unbounded")))


def class_balance(info: dict[str, Any]) -> Text:
    counts: dict[str, int] = {safe_name(k): int(v) for k, v in (info.get("counts") or {}).items()}
    total = sum(counts.values()) or 1
    widest = max((len(name) for name in counts), default=4)
    text = Text()
    for name, count in counts.items():
        filled = round(BAR_WIDTH * count / max(counts.values() or [1]))
        text.append(f"{name[:16]:<{min(widest, 16)}} ")
        text.append("█" * filled + "░" * (BAR_WIDTH - filled))
        text.append(f" {count:>6}  {count / total:6.1%}\n")
    text.rstrip()
    return text


def describe(info: dict[str, Any]) -> Text:
    shape = info.get("shape")
    shape_text = " × ".join(str(s) for s in shape) if shape else "text"
    text = Text()
    text.append_text(shown(info.get("name"), "bold"))
    text.append(
        f"  v{info.get('version')} of {info.get('versions', 1)}  ·  {info.get('kind')}  ·  {shape_text}"
        f"  ·  {info.get('format', '')}\n"
    )
    text.append(
        f"digest {str(info.get('digest', ''))[:23]}…  ·  created {str(info.get('created', ''))[:19]}"
        f"  ·  source {safe_name(info.get('source_name', ''))}\n"
    )
    return text


def overlap_lines(row: dict[str, Any] | None) -> Text:
    """The datasets whose records this one shares, and the spend each carries over."""
    text = Text()
    for overlap in (row or {}).get("overlaps") or []:
        text.append("⇄ ", style="bold")
        text.append(str(overlap.get("message", "")) + "\n")
    text.rstrip()
    return text


def render_samples(sample: dict[str, Any], width: int) -> Text:
    records = list(sample.get("records") or [])
    if sample.get("kind") == "image":
        per_image = max(8, min(28, (width - 4) // max(1, min(len(records), SAMPLES_SHOWN)) - 2))
        images = [(f"#{r['index']} {safe_name(r['label'])}", r["pixels"]) for r in records[:SAMPLES_SHOWN]]
        return image_row(images, max_width=per_image)
    text = Text()
    for record in records:
        snippet = safe_name(" ".join(str(record.get("text", "")).split()))
        text.append(f"#{record['index']} [{safe_name(record['label'])}] ", style="bold")
        text.append(snippet[: max(20, width - 20)] + ("…" if len(snippet) > width - 20 else "") + "\n")
    text.rstrip()
    return text


class DatasetsScreen(AreaScreen):
    AREA = "datasets"
    BINDINGS = bindings("datasets")

    def __init__(self) -> None:
        super().__init__()
        self.infos: dict[str, dict[str, Any]] = {}
        self.budgets: dict[str, dict[str, Any]] = {}

    def compose_area(self) -> ComposeResult:
        yield KeyTable(COLUMNS, id="datasets-table")
        with VerticalScroll(id="dataset-detail", classes="detail"):
            yield Static("", id="dataset-summary")
            yield Static("", id="dataset-samples")
            yield Static("", id="dataset-balance")

    def refresh_area(self) -> None:
        # The table comes first; the budget column follows (composing the ledger can take a while
        # the first time, while the accountants load).
        self.call_core("datasets", self.backend.datasets, done=self.show_datasets_then_budget)

    def show_datasets_then_budget(self, datasets: list[dict[str, Any]]) -> None:
        self.show_datasets((datasets, None), pending=True)

        def budget() -> list[dict[str, Any]] | None:
            try:
                return self.backend.budget()
            except Exception:  # the table still lists the datasets; the column says what is missing
                return None

        self.call_core("budget", budget, done=lambda rows: self.show_datasets((datasets, rows)))

    def show_datasets(
        self, loaded: tuple[list[dict[str, Any]], list[dict[str, Any]] | None], *, pending: bool = False
    ) -> None:
        datasets, budget = loaded
        budgets = budget_by_dataset(budget or [])
        self.budgets = budgets
        self.infos = {str(info["name"]): info for info in datasets}
        rows = []
        for info in datasets:
            name = str(info["name"])
            rows.append(
                (
                    name,
                    (
                        name,
                        str(info.get("kind", "")),
                        f"{int(info.get('samples', 0)):,}",
                        str(len(info.get("classes") or [])),
                        str(info.get("sensitivity", "")),
                        str(info.get("version", "")),
                        budget_cell(budgets.get(name))
                        if budget is not None
                        else ("… reading" if pending else "? unreadable"),
                    ),
                )
            )
        table = self.query_one("#datasets-table", KeyTable)
        table.set_rows(rows)
        if not rows:
            self.query_one("#dataset-summary", Static).update(
                Text("No datasets yet. Press i to import one (image folder, IDX, CSV/TSV/JSONL).")
            )
            self.query_one("#dataset-balance", Static).update("")
        self.show_detail(table.selected_key)

    def on_data_table_row_highlighted(self, event: KeyTable.RowHighlighted) -> None:
        self.show_detail(event.row_key.value if event.row_key else None)

    def show_detail(self, name: str | None) -> None:
        info = self.infos.get(name or "")
        if info is None:
            return
        summary = describe(info)
        overlaps = overlap_lines(self.budgets.get(name or ""))
        if overlaps.plain:
            summary.append_text(overlaps)
        self.query_one("#dataset-summary", Static).update(summary)
        self.query_one("#dataset-balance", Static).update(class_balance(info))
        self.query_one("#dataset-samples", Static).update(
            Text("s shows a few records (an audited read; policy may refuse it)", style="italic")
        )

    @property
    def selected(self) -> str | None:
        return self.query_one("#datasets-table", KeyTable).selected_key

    def action_refresh(self) -> None:
        self.refresh_area()

    def action_show_samples(self) -> None:
        name = self.selected
        if name is None:
            return
        self.query_one("#dataset-samples", Static).update("… decrypting a few records (audited)")
        width = self.query_one("#dataset-detail").size.width
        self.call_core(
            "sample",
            self.backend.sample,
            name,
            SAMPLES_SHOWN,
            done=lambda sample: self.query_one("#dataset-samples", Static).update(
                render_samples(sample, width)
            ),
        )

    def action_import_dataset(self) -> None:
        from tui.screens.import_picker import ImportScreen

        self.app.push_screen(ImportScreen(), lambda imported: self.refresh_area())

    def action_delete_dataset(self) -> None:
        name = self.selected
        if name is None:
            return
        from tui.screens.dialogs import TypedConfirmDialog

        def decided(confirmed: bool | None) -> None:
            if confirmed:
                self.call_core("delete", self.backend.delete_dataset, name, done=lambda _: self.deleted(name))

        self.app.push_screen(
            TypedConfirmDialog(
                f"Delete dataset {safe_name(name)}?",
                "Every version's data key is destroyed: the records cannot be recovered. Models trained on "
                "it stay, and so does its privacy ledger.",
                name,
            ),
            decided,
        )

    def deleted(self, name: str) -> None:
        self.notify(f"✓ deleted {literal(name)}: its keys are destroyed", title="Dataset deleted")
        self.refresh_area()

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand(
            "Import a dataset", "Pick a file or folder, preview, import (i)", self.action_import_dataset
        )
        yield SystemCommand(
            "Show samples", "Decrypt a few records of the selected dataset (s)", self.action_show_samples
        )
        yield SystemCommand(
            "Delete dataset", "Delete the selected dataset; asks for its name (d)", self.action_delete_dataset
        )


SCREEN = DatasetsScreen

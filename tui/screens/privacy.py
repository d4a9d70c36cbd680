"""Area 4, Privacy: each dataset's ledger (epsilon spent against the cap, as a bar with the
numbers, a glyph and a word) and the runs that spent it."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from tui.keys import bindings
from tui.screens.area import AreaScreen
from tui.text import safe_name
from tui.widgets.ledger_bar import ledger_bar
from tui.widgets.tables import KeyTable

RUN_COLUMNS = (("dataset", 10), ("run", 14), ("DP", 7), ("ε", 6), ("steps", 5), ("outcome", 11), ("when", 11))


def ledger_lines(budget: list[dict[str, Any]], width: int) -> Text:
    text = Text()
    if not budget:
        return Text("No ledgers yet: a dataset's ledger starts with its first training run.", style="italic")
    name_width = min(18, max(len(str(row.get("dataset", ""))) for row in budget))
    bar_width = max(8, min(24, width - name_width - 46))
    for row in budget:
        text.append(f"{safe_name(row.get('dataset', ''))[:name_width]:<{name_width}} ", style="bold")
        text.append_text(
            ledger_bar(
                row.get("epsilon_spent"),
                row.get("epsilon_cap"),
                unbounded=bool(row.get("unbounded")),
                width=bar_width,
            )
        )
        text.append("\n")
    text.rstrip()
    return text


OUTCOMES = {
    "ok": "✓ ok",
    "cancelled": "■ cancelled",
    "failed": "✗ failed",
    "running": "▶ running",
    "interrupted": "◆ interrupted",
}


def run_rows(budget: list[dict[str, Any]]) -> list[tuple[str, tuple[str, ...]]]:
    """One row per charge on each ledger: the run, DP or not, its own epsilon, steps taken, outcome.
    A card's noised figures are their own charge beside their run's: DP column "✓ card"."""
    rows = []
    for row in budget:
        for index, run in enumerate(row.get("runs") or []):
            eps = run.get("epsilon")
            steps = sum(int(entry[2]) for entry in run.get("history") or [] if len(entry) == 3)
            outcome = str(run.get("outcome", ""))
            rows.append(
                (
                    f"{row.get('dataset')}/{run.get('run', index)}/{index}",
                    (
                        str(row.get("dataset", "")),
                        str(run.get("run", "")),
                        "✓ card" if run.get("metrics_of") else "✓ DP" if run.get("dp") else "✗ no DP",
                        f"{eps:.2f}" if isinstance(eps, (int, float)) else "∞",
                        str(steps),
                        OUTCOMES.get(outcome, outcome),
                        str(run.get("created", ""))[5:16].replace("T", " "),
                    ),
                )
            )
    return rows


class PrivacyScreen(AreaScreen):
    AREA = "privacy"
    BINDINGS = bindings("privacy")

    def compose_area(self) -> ComposeResult:
        yield Static("Privacy budget per dataset (runs composed by the accountant)", classes="section-title")
        yield Static("", id="privacy-ledgers", classes="detail")
        yield Static("Runs charged to these ledgers", classes="section-title")
        yield KeyTable(RUN_COLUMNS, id="privacy-runs")

    def refresh_area(self) -> None:
        self.call_core("budget", self.backend.budget, done=self.show_budget)

    def show_budget(self, budget: list[dict[str, Any]]) -> None:
        width = self.size.width or 80
        ledgers = self.query_one("#privacy-ledgers", Static)
        ledgers.update(ledger_lines(budget, width))
        self.query_one("#privacy-runs", KeyTable).set_rows(run_rows(budget))

    def action_refresh(self) -> None:
        self.refresh_area()


SCREEN = PrivacyScreen

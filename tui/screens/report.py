"""The access report, from the Audit area (p): pick a period, a dataset and a person, see the same
summary `strongroom audit report` gives, and save it to a file (.md, .html or .json). Built from
the log alone, in a worker, so it works in `strongroom tui --auditor` without a passphrase."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, Input, Label, Static

from tui.keys import bindings
from tui.screens.area import CoreScreen
from tui.text import literal, safe_name

FIELDS = (
    ("since", "since", "YYYY-MM-DD"),
    ("until", "until", "YYYY-MM-DD"),
    ("dataset", "dataset", "all"),
    ("user", "person", "everyone"),
)


def summary(report: dict[str, Any]) -> Text:
    """What the report says, in a few lines: the verdict first, then each part with its numbers."""
    from vault.audit.report.collect import finite
    from vault.audit.report.render import verdict

    ok = report["verification"]["ok"]
    text = Text(verdict(report), style="bold green" if ok else "bold red")
    text.append(f"\n{report['entries']:,} entries in scope")
    if report["first"]:
        text.append(f" ({safe_name(str(report['first'])[:19])} to {safe_name(str(report['last'])[:19])})")
    text.append("\n\nDatasets", style="bold")
    for d in report["datasets"]:
        spent = d["epsilon_spent"]
        number = finite(spent)  # a hand-written line may hold anything there
        shown = (
            "unbounded"
            if spent is None and d["privacy_spent"]
            else (f"{number:.3g}" if number is not None else safe_name(spent if spent is not None else "-"))
        )
        text.append(
            f"\n  {safe_name(d['name'])}: {len(d['reads'])} reads ({d['records_read']:,} records) by "
            f"{safe_name(', '.join(d['readers'])) or 'nobody'}; {len(d['trainings'])} runs; ε spent {shown}"
        )
    if not report["datasets"]:
        text.append("\n  none")
    text.append("\n\nPeople", style="bold")
    for p in report["people"]:
        text.append(
            f"\n  {safe_name(p['name'])} ({safe_name(', '.join(p['roles'])) or '-'}): {p['sessions']} sessions, "
            f"{sum(p['actions'].values()):,} actions, {len(p['refusals'])} refusals, "
            f"{len(p['role_changes'])} role changes"
        )
    text.append("\n\nWhat left the room", style="bold")
    for e in report["exports"]:
        approvals = e["approvals"] if isinstance(e["approvals"], list) else [e["approvals"]]
        approvers = ", ".join(
            str(a.get("user", "?")) if isinstance(a, dict) else str(a) for a in approvals if a
        )
        text.append(
            f"\n  seq {safe_name(e['seq'])}: {safe_name(e['model'])} by {safe_name(e['actor'])}, approved by "
            f"{safe_name(approvers) or 'no approver'}; ε {safe_name(e['epsilon'])}"
        )
    if not report["exports"]:
        text.append("\n  nothing")
    text.append(
        f"\n\n{len(report['refusals'])} refusals by policy · {len(report['network_blocked'])} blocked network "
        f"attempts · {len(report['sessions_below_isolation'])} sessions below the policy's isolation"
    )
    return text


class ReportScreen(CoreScreen):
    BINDINGS = bindings("report")
    AUTO_FOCUS = "#report-since"

    def __init__(self) -> None:
        super().__init__()
        self.report: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        yield Static("Access report · from the log alone", classes="section-title")
        with Horizontal(classes="form-row"):
            for name, label, hint in FIELDS:
                yield Label(label)
                yield Input(placeholder=hint, id=f"report-{name}", compact=True)
        yield Static("ctrl+r builds the report for this scope", id="report-status", classes="status-line")
        with VerticalScroll(classes="detail"):
            yield Static("", id="report-summary")
        yield Footer()

    def on_mount(self) -> None:
        self.action_build()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_build()

    def scope(self) -> dict[str, str]:
        return {name: self.query_one(f"#report-{name}", Input).value.strip() for name, _, _ in FIELDS}

    def action_build(self) -> None:
        self.query_one("#report-status", Static).update("… verifying the log and gathering the report")
        self.call_core(
            "audit-report",
            self.app.audit_reader.report,
            **self.scope(),
            done=self.show,
            failed=self.failed,
        )

    def failed(self, error: BaseException) -> bool:
        self.query_one("#report-status", Static).update(
            Text(f"✗ {safe_name(getattr(error, 'title', error))}", style="bold")
        )
        return True

    def show(self, report: dict[str, Any]) -> None:
        self.report = report
        self.query_one("#report-summary", Static).update(summary(report))
        self.query_one("#report-status", Static).update("ctrl+s saves it (.md, .html or .json) · esc back")

    def action_save(self) -> None:
        from tui.screens.dialogs import InputDialog

        report = self.report
        if report is None:
            self.notify("Build the report first (ctrl+r).")
            return
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")

        def chosen(target: str | None) -> None:
            if target:
                self.call_core(
                    "audit-report-save",
                    self.app.audit_reader.save_report,
                    report,
                    Path(target).expanduser(),
                    done=lambda path: self.notify(
                        f"✓ report written to {literal(path)}", title="Report saved"
                    ),
                )

        self.app.push_screen(
            InputDialog(
                "Save the access report",
                "A new file: .md for the record, .html to print (A4, no outside resources), .json for tools.",
                str(Path.cwd() / f"strongroom-access-report-{stamp}.md"),
                "Save",
            ),
            chosen,
        )

    def action_close(self) -> None:
        self.app.pop_screen()

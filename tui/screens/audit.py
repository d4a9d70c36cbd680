"""Area 5, Audit: the whole log in a virtual table (fast at 100,000 entries), filters by
actor/action/time, background verification shown in words and glyphs, re-verify, and saving
the signed checkpoint to a file. The only area of `strongroom tui --auditor`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult, SystemCommand
from textual.widgets import Input, Static

from tui.keys import bindings
from tui.screens.area import AreaScreen
from tui.text import literal, safe_name
from tui.widgets.log_view import AuditLogView

FILTER_HELP = "filter: actor:NAME action:WORD since:2025-01-31 until:2025-02 outcome:denied words…"


def finding_text(finding: dict[str, Any]) -> str:
    where = f"seq {finding['seq']}" if finding.get("seq") is not None else "log"
    return safe_name(
        f"{where}: {finding.get('kind')}: expected {finding.get('expected')}; "
        f"found {finding.get('found')} ({finding.get('message')})"
    )


def verification_text(report: dict[str, Any]) -> Text:
    """`✓ verified: N entries, signed checkpoint at M` or one `✗ ...` line per finding."""
    findings = list(report.get("findings") or [])
    text = Text()
    if report.get("ok") and not findings:
        text.append("✓ verified", style="bold green")
        text.append(f": {int(report.get('entries', 0)):,} entries")
        signed = int(report.get("signed_size") or 0)
        if signed:
            text.append(f", signed checkpoint at {signed:,}")
            unsigned = int(report.get("unsigned") or 0)
            if unsigned:
                text.append(f" ({unsigned:,} after it)")
        else:
            text.append(", no signed checkpoint yet")
        if not report.get("truncation_ruled_out"):
            text.append("\n▲ truncation cannot be ruled out without a saved checkpoint (c saves one)")
        text.append(witness_text(report.get("witness")))
        return text
    text.append(
        f"✗ NOT verified: {len(findings)} problem{'s' if len(findings) != 1 else ''}", style="bold red"
    )
    for finding in findings[:20]:
        text.append(f"\n✗ {finding_text(finding)}")
    if len(findings) > 20:
        text.append(f"\n… {len(findings) - 20} more")
    return text


def witness_text(witness: dict[str, Any] | None) -> str:
    if not witness:
        return "\n▲ no witness has cosigned this log (w cosigns with a witness key)"
    return f"\n◆ witness {witness['witness']} cosigned {int(witness['size']):,} entries on {witness['time']}"


def entry_detail(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return ""
    detail = entry.get("detail")
    fields = detail if isinstance(detail, dict) else {}
    extra = ", ".join(f"{k}={v}" for k, v in fields.items())
    return safe_name(
        f"#{entry.get('seq')} {entry.get('actor')} ({entry.get('role')}) {entry.get('action')}: {extra}"
    )


class AuditScreen(AreaScreen):
    AREA = "audit"
    BINDINGS = bindings("audit")

    def __init__(self) -> None:
        super().__init__()
        self.verified: dict[str, Any] | None = None
        self._verify_after_load = False

    def compose_area(self) -> ComposeResult:
        yield Static("… verifying the log in the background", id="audit-verdict")
        yield Static("", id="audit-count", classes="status-line")
        yield AuditLogView(id="audit-log")
        yield Static("", id="audit-detail", classes="status-line")

    def on_mount(self) -> None:
        self.query_one("#filter", Input).placeholder = FILTER_HELP
        self.query_one("#audit-log").focus()
        self._verify_after_load = True
        self.action_reload()

    def refresh_area(self) -> None:
        """The log is loaded on mount and with r; switching areas keeps it as it was."""

    @property
    def reader(self) -> Any:
        return self.app.audit_reader

    def filter_table(self) -> Any:
        return self.query_one("#audit-log", AuditLogView)

    def action_reload(self) -> None:
        self.query_one("#audit-count", Static).update("… reading the log")
        self.call_core(
            "audit-entries", self.reader.entries, done=self.show_entries, failed=self.entries_failed
        )

    def entries_failed(self, error: BaseException) -> bool:
        """An unreadable log is exactly what verification explains: run it, and show the error too."""
        self.query_one("#audit-count", Static).update(
            f"✗ the log could not be read: {getattr(error, 'title', error)}"
        )
        if self._verify_after_load:
            self._verify_after_load = False
            self.action_verify()
        return False

    def show_entries(self, entries: list[dict[str, Any]]) -> None:
        log = self.query_one("#audit-log", AuditLogView)
        log.set_entries(entries)
        self.show_count()
        if self._verify_after_load:  # after the table is up, so the two reads do not compete
            self._verify_after_load = False
            self.action_verify()

    def show_count(self) -> None:
        log = self.query_one("#audit-log", AuditLogView)
        shown = f"{log.shown:,} of {log.total:,} entries" if log.filter_text else f"{log.total:,} entries"
        self.query_one("#audit-count", Static).update(
            shown
            + (f" · filter: {log.filter_text}" if log.filter_text else "")
            + " · / filters · v re-verifies"
        )

    def filtered(self) -> None:
        self.show_count()

    def on_audit_log_view_highlighted(self, message: AuditLogView.Highlighted) -> None:
        self.query_one("#audit-detail", Static).update(
            Text(entry_detail(message.entry), no_wrap=True, overflow="ellipsis")
        )

    def action_verify(self) -> None:
        self.query_one("#audit-verdict", Static).update("… verifying the log in the background")
        self.call_core("audit-verify", self.reader.verify, done=self.show_verdict, failed=self.verify_failed)

    def verify_failed(self, error: BaseException) -> bool:
        self.query_one("#audit-verdict", Static).update(
            Text(f"✗ verification failed: {safe_name(getattr(error, 'title', error))}", style="bold")
        )
        return False

    def show_verdict(self, report: dict[str, Any]) -> None:
        self.verified = report
        self.query_one("#audit-verdict", Static).update(verification_text(report))
        self.query_one("#audit-log", AuditLogView).mark_unsealed(report.get("unsealed_seqs") or ())

    def action_save_checkpoint(self) -> None:
        from tui.screens.dialogs import InputDialog

        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        default = str(Path.cwd() / f"strongroom-checkpoint-{stamp}.txt")

        def chosen(target: str | None) -> None:
            if target:
                self.call_core(
                    "audit-checkpoint",
                    self.reader.save_checkpoint,
                    Path(target).expanduser(),
                    done=lambda path: self.notify(
                        f"✓ checkpoint written to {literal(path)}", title="Checkpoint saved"
                    ),
                )

        self.app.push_screen(
            InputDialog(
                "Save the signed checkpoint",
                "Writes the log's latest signed checkpoint (a few lines of text) to this file. Keep it on "
                "write-once media: `strongroom audit verify --checkpoint FILE` later proves the log only grew.",
                default,
                "Save",
            ),
            chosen,
        )

    def action_cosign(self) -> None:
        from tui.screens.dialogs import InputDialog

        def chosen(target: str | None) -> None:
            if target:
                self.call_core(
                    "audit-cosign",
                    self.reader.cosign,
                    Path(target).expanduser(),
                    done=self.cosigned,
                )

        self.app.push_screen(
            InputDialog(
                "Cosign as a witness",
                "The witness's private key file (from `strongroom audit keygen`, e.g. on removable media). "
                "The log must extend the checkpoint this witness cosigned last (kept beside the key).",
                "",
                "Cosign",
            ),
            chosen,
        )

    def cosigned(self, done: dict[str, Any]) -> None:
        self.notify(
            f"✓ {done['witness']} cosigned {done['size']:,} entries; its copy: {done['memory']}",
            title="Cosigned",
        )
        self.action_verify()

    def action_report(self) -> None:
        from tui.screens.report import ReportScreen

        self.app.push_screen(ReportScreen())

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand(
            "Verify audit log", "Check every entry and the signed checkpoint (v)", self.action_verify
        )
        yield SystemCommand(
            "Save audit checkpoint", "Write the signed checkpoint to a file (c)", self.action_save_checkpoint
        )
        yield SystemCommand(
            "Cosign as a witness", "Cosign the checkpoint with a witness key (w)", self.action_cosign
        )
        yield SystemCommand("Reload audit log", "Read the log again (r)", self.action_reload)
        yield SystemCommand(
            "Access report",
            "Who touched which records, by period, dataset and person (p)",
            self.action_report,
        )


SCREEN = AuditScreen

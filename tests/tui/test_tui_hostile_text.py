"""Names and records from an imported file are shown, never obeyed: markup such as `[bold]` or
`[link=...]` in a class name is shown literally, and control characters (OSC 0 window title, CSI 2J,
OSC 52 clipboard, C1 CSI, bidi overrides) are shown escaped, in every widget that shows them."""

from __future__ import annotations

import html
from pathlib import Path

import pytest

pytest.importorskip("textual")

from tests.support import PASSPHRASE, SIZE, fresh_vault, settle, text_of, unlock  # noqa: E402
from tui.app import StrongroomApp  # noqa: E402
from tui.widgets.tables import KeyTable  # noqa: E402

TITLE = "\x1b]0;owned\x07"
CLIPBOARD = "\x1b]52;c;cm0gLXJmIH4=\x07"
CLASS_A = f"[bold]{TITLE}spam[/bold]"
CLASS_B = "[link=https://evil.example]ham[/link]\u202e"
NAME = "[b]mail"
RAW = ("\x1b", "\x07", "\x9b", "\u202e")


@pytest.fixture
def hostile_vault(tmp_path: Path) -> Path:
    from vault.door import Vault
    from vault.ingest import ImportOptions

    path = fresh_vault(tmp_path)
    source = tmp_path / "mail.tsv"
    rows = [f"text\x9b2J {i} {CLIPBOARD}\t{CLASS_A if i % 2 else CLASS_B}" for i in range(20)]
    source.write_text("text\tlabel\n" + "\n".join(rows) + "\n", encoding="utf-8")
    with Vault.open(path, user="admin", passphrase=PASSPHRASE.encode()) as vault:
        vault.import_dataset(source, name=NAME, options=ImportOptions(fmt="tsv", quoting=False))
    return path


def screen_text(app) -> str:
    """What the screen shows, as text (from Textual's own SVG export of the screen)."""
    svg = app.export_screenshot()
    return html.unescape(svg).replace("\u00a0", " ")


def clean(text: str) -> None:
    leaked = [repr(c) for c in RAW if c in text]
    assert not leaked, f"raw {leaked} shown: {text[:300]!r}"


async def test_dataset_names_classes_and_samples_are_shown_escaped_and_literal(hostile_vault: Path) -> None:
    app = StrongroomApp(hostile_vault)
    async with app.run_test(size=SIZE) as pilot:
        await unlock(pilot)
        table = app.screen.query_one("#datasets-table", KeyTable)
        assert table.selected_key == NAME  # the key keeps the exact name for calls to the door
        cells = [str(cell) for cell in table.get_row_at(0)]
        assert cells[0] == NAME
        summary = text_of(app, "#dataset-summary")
        assert summary.startswith(NAME)
        balance = text_of(app, "#dataset-balance")
        clean(summary + balance)
        assert "[bold]\\x1b]0;own" in balance and "[link=https://ev" in balance
        await pilot.press("s")
        await settle(pilot)
        samples = text_of(app, "#dataset-samples")
        clean(samples)
        assert "text\\x9b2J" in samples and "\\x1b]52;c;" in samples and "\\u202e" in samples
        shown = screen_text(app)
        clean(shown)
        assert NAME in shown


async def test_the_audit_area_shows_escaped_names(hostile_vault: Path, tmp_path: Path) -> None:
    from vault.audit import AuditLog

    log = AuditLog(hostile_vault / "audit")
    log.append("[bold]ann", "operator", "dataset.read", f"x{TITLE}", "ok", {"source": f"[i]{CLIPBOARD}"})
    app = StrongroomApp(hostile_vault, auditor=True)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        shown = screen_text(app)
        clean(shown)
        assert "[bold]ann" in shown
        detail = text_of(app, "#audit-detail")
        clean(detail)
        assert "[i]\\x1b]52;c;" in detail


def test_the_escape_helpers_keep_markup_literal() -> None:
    from tui.text import shown

    text = shown(f"[bold]x[/bold]{TITLE}")
    assert text.plain == "[bold]x[/bold]\\x1b]0;owned\\x07" and not text.spans


def test_the_report_summary_shows_hand_written_log_values_without_failing_or_obeying_them() -> None:
    """A line appended to the log by hand may hold text where the report expects a number, a string
    where it expects a list of approvers, and control sequences anywhere: the Report view's summary
    shows each of them escaped, and counts only numbers."""
    from tui.screens.report import summary
    from vault.audit.report.collect import Collector, Scope

    collector = Collector(Scope())
    lines = [
        ("dataset.read", "scans", {"purpose": "train", "samples": "many"}),
        ("dataset.read", "scans", {"purpose": "train", "samples": 7}),
        ("train.start", "scans", {"run": "r", "model": "cnn", "dp": True, "epsilon": "x"}),
        ("train.end", "scans", {"run": "r", "model": "m", "epsilon": TITLE, "ledger_epsilon": CLIPBOARD}),
        ("model.export", "m", {"approvals": "admin"}),
        ("model.export", "m", {"approvals": [1, {"user": ["bo"]}, None]}),
    ]
    for seq, (action, subject, detail) in enumerate(lines):
        collector.add(
            {
                "seq": seq,
                "time": "2026-11-30T10:00:00Z",
                "actor": "ana",
                "role": "operator",
                "action": action,
                "subject": subject,
                "outcome": "ok",
                "detail": detail,
            }
        )
    report = {
        "verification": {"ok": False, "entries": 6, "signed_size": 0, "message": "", "findings": []},
        **collector.result().to_json(),
    }
    text = summary(report).plain
    assert not any(raw in text for raw in RAW)
    assert "2 reads (7 records)" in text and "ε spent \\x1b]52;c;cm0gLXJmIH4=\\x07" in text
    assert "approved by admin; ε \\x1b]0;owned\\x07" in text and "approved by 1, ['bo']" in text

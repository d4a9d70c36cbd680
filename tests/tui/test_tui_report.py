"""The access report in the auditor's TUI: p from the Audit area builds it from the log alone, a
scope narrows it, ctrl+s saves it as Markdown, HTML or JSON; no passphrase anywhere."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("textual")

from textual.widgets import Input  # noqa: E402

from tests.support import SIZE, settle, text_of  # noqa: E402
from tui.app import StrongroomApp  # noqa: E402
from tui.screens.dialogs import InputDialog  # noqa: E402
from tui.screens.report import ReportScreen  # noqa: E402

FIXTURE = Path(__file__).resolve().parent / "snapshots" / "fixture-vault"


@pytest.fixture
def vault_copy(tmp_path: Path) -> Path:
    return shutil.copytree(FIXTURE, tmp_path / "vault")


async def test_the_auditor_builds_narrows_and_saves_the_report(vault_copy: Path, tmp_path: Path) -> None:
    app = StrongroomApp(vault_copy, auditor=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        assert isinstance(app.screen, ReportScreen)
        shown = text_of(app, "#report-summary")
        assert shown.startswith("✓ The audit log verifies")
        assert "digits:" in shown and "sms:" in shown and "admin (admin)" in shown
        app.screen.query_one("#report-dataset", Input).value = "sms"
        await pilot.press("ctrl+r")
        await settle(pilot)
        narrowed = text_of(app, "#report-summary")
        assert "sms:" in narrowed and "digits:" not in narrowed
        for suffix in (".md", ".html", ".json"):
            target = tmp_path / f"report{suffix}"
            await pilot.press("ctrl+s")
            await settle(pilot)
            assert isinstance(app.screen, InputDialog)
            app.screen.query_one("#value", Input).value = str(target)
            await pilot.press("enter")
            await settle(pilot)
            assert target.exists(), suffix
        assert (tmp_path / "report.md").read_text().startswith("✓ The audit log verifies")
        assert json.loads((tmp_path / "report.json").read_text())["scope"]["dataset"] == "sms"
        assert "<svg" in (tmp_path / "report.html").read_text()
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, ReportScreen)

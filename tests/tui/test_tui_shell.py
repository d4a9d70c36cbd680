"""The TUI's shell on a real vault: unlock (and a refused unlock), help, palette, area keys,
quit, and the auditor's read-only mode. Pilot tests at 80x24."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("textual")

from textual.widgets import Input  # noqa: E402

from tests.support import PASSPHRASE, REPO, SIZE, fresh_vault, unlock  # noqa: E402
from tui.app import StrongroomApp  # noqa: E402
from tui.keys import KEYS  # noqa: E402
from tui.screens.dialogs import ConfirmDialog, ErrorDialog  # noqa: E402
from tui.screens.help import HelpScreen, help_text  # noqa: E402
from tui.screens.unlock import UnlockScreen  # noqa: E402


@pytest.fixture
def vault_dir(tmp_path: Path) -> Path:
    return fresh_vault(tmp_path)


async def dismiss_errors(pilot) -> None:
    while isinstance(pilot.app.screen, ErrorDialog):
        await pilot.press("escape")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


def test_every_key_has_a_unique_id_and_a_description() -> None:
    ids = [key.id for key in KEYS]
    assert len(ids) == len(set(ids))
    assert all(key.description for key in KEYS)
    text = help_text().plain
    for key in KEYS:
        assert key.description in text


async def test_unlock_opens_the_datasets_area(vault_dir: Path) -> None:
    app = StrongroomApp(vault_dir)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, UnlockScreen)
        assert app.screen.query_one("#passphrase", Input).password
        await unlock(pilot)
        assert app.current_mode == "datasets"
        assert app.backend is not None and app.backend.role == "admin"
        assert PASSPHRASE not in app.export_screenshot()


async def test_wrong_passphrase_shows_title_and_hint_and_stays_locked(vault_dir: Path) -> None:
    app = StrongroomApp(vault_dir)
    async with app.run_test(size=SIZE) as pilot:
        await unlock(pilot, "not the passphrase")
        assert isinstance(app.screen, ErrorDialog)
        assert app.screen.error_title and app.screen.error_hint
        assert "not the passphrase" not in app.export_screenshot()
        assert app.backend is None
        await pilot.press("escape")
        assert isinstance(app.screen, UnlockScreen)
        field = app.screen.query_one("#passphrase", Input)
        assert field.value == "" and field.has_focus
        await pilot.press("2")  # a digit in a text field is typed, not an area switch
        assert isinstance(app.screen, UnlockScreen) and field.value == "2"


async def test_number_keys_switch_areas_and_help_lists_every_key(vault_dir: Path) -> None:
    app = StrongroomApp(vault_dir)
    async with app.run_test(size=SIZE) as pilot:
        await unlock(pilot)
        for key, area in zip(
            "234561", ("train", "models", "privacy", "audit", "policy", "datasets"), strict=True
        ):
            await dismiss_errors(pilot)  # an area whose core part is absent says so in a dialog
            await pilot.press(key)
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert app.current_mode == area
        await dismiss_errors(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("f1")
        assert not isinstance(app.screen, HelpScreen)


async def test_f1_works_inside_a_text_field_and_question_mark_types(vault_dir: Path) -> None:
    app = StrongroomApp(vault_dir)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.screen.query_one("#user", Input).focus()
        await pilot.press("question_mark")
        assert app.screen.query_one("#user", Input).value.endswith("?")
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)


async def test_palette_offers_area_commands(vault_dir: Path) -> None:
    app = StrongroomApp(vault_dir)
    async with app.run_test(size=SIZE) as pilot:
        await unlock(pilot)
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert {"Go to Datasets", "Go to Audit", "Help: keys", "Quit", "Import a dataset"} <= set(titles)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Go to Policy", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.current_mode == "policy"


async def test_quit_asks_first_while_a_run_is_active(vault_dir: Path) -> None:
    class ActiveRun:
        active = True
        cancelled = False

        def cancel(self) -> None:
            self.cancelled = True

    app = StrongroomApp(vault_dir)
    async with app.run_test(size=SIZE) as pilot:
        await unlock(pilot)
        run = ActiveRun()
        app.training_run = run
        await pilot.press("ctrl+q")
        assert isinstance(app.screen, ConfirmDialog)
        assert app.screen.focused is not None and app.screen.focused.id == "cancel"
        await pilot.press("enter")  # Cancel has the focus: nothing happens
        assert not run.cancelled and app.is_running
        app.training_run = None
        await pilot.press("ctrl+q")
    assert app.return_code == 0


async def test_auditor_mode_shows_only_the_audit_area_without_a_passphrase(vault_dir: Path) -> None:
    app = StrongroomApp(vault_dir, auditor=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.current_mode == "audit"
        assert app.backend is None
        await pilot.press("1")
        await pilot.pause()
        assert app.current_mode == "audit"
        shown = app.export_screenshot()
        assert "verified" in shown


def test_starting_the_tui_imports_neither_torch_nor_numpy() -> None:
    """The unlock screen must appear within a second: heavy libraries load only when needed."""
    import subprocess
    import sys

    code = (
        "import sys, vault.cli; vault.cli.build_parser(); import tui.app, tui.screens.unlock, tui.backend; "
        "print(sorted(m for m in ('torch', 'numpy', 'opacus', 'textual_plotext') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert done.stdout.strip() == "[]"


async def test_no_color_draws_in_greys_only(vault_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    monkeypatch.setenv("NO_COLOR", "1")
    app = StrongroomApp(vault_dir)
    async with app.run_test(size=SIZE) as pilot:
        await unlock(pilot)
        await pilot.press("5")
        await app.workers.wait_for_complete()
        await pilot.pause()
        svg = app.export_screenshot()
    assert app.no_color
    colours = set(re.findall(r"#([0-9a-fA-F]{6})\b", svg))
    window_chrome = {"ff5f57", "febc2e", "28c840", "c5c8c6"}  # the SVG's window buttons and default text
    chromatic = {c for c in colours if len({c[0:2], c[2:4], c[4:6]}) > 1} - window_chrome
    assert "verified" in svg and not chromatic


async def test_wide_terminals_get_plotext_curves_and_80_columns_sparklines(vault_dir: Path) -> None:
    from textual.widgets import Sparkline
    from textual_plotext import PlotextPlot

    for size, wide in (((80, 24), False), ((120, 40), True)):
        app = StrongroomApp(vault_dir)
        async with app.run_test(size=size) as pilot:
            await unlock(pilot)
            await pilot.press("2")
            await app.workers.wait_for_complete()
            await pilot.pause()
            curves = app.screen.query_one("#train-curves")
            curves.update([2.3, 1.9, 1.2, 0.8], [0.4, 0.7])
            await pilot.pause()
            assert bool(curves.query(PlotextPlot)) == wide
            assert curves.query_one("#loss-spark", Sparkline).display == (not wide)
            assert "0.8000" in str(curves.query_one("#loss-label").render())

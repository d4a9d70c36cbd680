"""SVG snapshots of each area at 80x24, from the checked-in fixture vault (tests/tui/snapshots).

Snapshots live in tests/tui/snapshots/test_tui_snapshots/. After a deliberate change: run
`pytest tests/tui/test_tui_snapshots.py --snapshot-update`, then look at every changed SVG before
committing it. The fixture vault is rebuilt with tests/tui/snapshots/make_fixture_vault.py.
"""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

pytest.importorskip("pytest_textual_snapshot")

from pytest_textual_snapshot import SVGImageExtension  # noqa: E402
from textual._doc import take_svg_screenshot  # noqa: E402
from textual.pilot import Pilot  # noqa: E402
from textual.widgets import Input  # noqa: E402

from tests.support import settle, unlock  # noqa: E402
from tui.app import StrongroomApp  # noqa: E402

FIXTURE = Path(__file__).resolve().parent / "snapshots" / "fixture-vault"


class StoredSVG(SVGImageExtension):
    """pytest-textual-snapshot's SVG files, kept under tests/tui/snapshots/ with the fixture vault."""

    @classmethod
    def dirname(cls, *, test_location) -> str:
        return str(Path(__file__).resolve().parent / "snapshots" / test_location.basename)


@pytest.fixture
def vault_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the fixture vault, named relative to the working directory so the path on
    screen is the same on every run."""
    if not (FIXTURE / "vault.json").exists():
        pytest.skip("tests/tui/snapshots/fixture-vault is absent (make_fixture_vault.py builds it)")
    shutil.copytree(FIXTURE, tmp_path / "vault")
    monkeypatch.chdir(tmp_path)
    return Path("vault")


def unlocked_then(*keys: str) -> Callable[[Pilot], Awaitable[None]]:
    async def run_before(pilot: Pilot) -> None:
        await unlock(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    return run_before


def shot(app: StrongroomApp, run_before: Callable[[Pilot], Awaitable[None]] | None = None) -> str:
    return take_svg_screenshot(app=app, terminal_size=(80, 24), run_before=run_before)


def test_unlock_screen(snapshot, vault_copy: Path) -> None:
    async def run_before(pilot: Pilot) -> None:
        await pilot.pause()
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False  # a blinking cursor would make the picture change with time
        await pilot.pause()

    assert snapshot.use_extension(StoredSVG) == shot(StrongroomApp(vault_copy), run_before)


def test_help_screen(snapshot, vault_copy: Path) -> None:
    async def run_before(pilot: Pilot) -> None:
        await pilot.press("f1")
        await pilot.pause()

    assert snapshot.use_extension(StoredSVG) == shot(StrongroomApp(vault_copy), run_before)


def test_datasets_area_with_samples(snapshot, vault_copy: Path) -> None:
    assert snapshot.use_extension(StoredSVG) == shot(StrongroomApp(vault_copy), unlocked_then("s"))


def test_audit_area_for_an_auditor(snapshot, vault_copy: Path) -> None:
    async def run_before(pilot: Pilot) -> None:
        await settle(pilot)

    assert snapshot.use_extension(StoredSVG) == shot(StrongroomApp(vault_copy, auditor=True), run_before)


def test_policy_area(snapshot, vault_copy: Path) -> None:
    assert snapshot.use_extension(StoredSVG) == shot(StrongroomApp(vault_copy), unlocked_then("6"))


def test_train_area_form(snapshot, vault_copy: Path) -> None:
    assert snapshot.use_extension(StoredSVG) == shot(StrongroomApp(vault_copy), unlocked_then("2"))


def test_models_area_with_card(snapshot, vault_copy: Path) -> None:
    assert snapshot.use_extension(StoredSVG) == shot(StrongroomApp(vault_copy), unlocked_then("3"))


def test_privacy_area(snapshot, vault_copy: Path) -> None:
    assert snapshot.use_extension(StoredSVG) == shot(StrongroomApp(vault_copy), unlocked_then("4"))


def test_high_contrast_datasets_area(snapshot, vault_copy: Path) -> None:
    app = StrongroomApp(vault_copy, high_contrast=True)
    assert snapshot.use_extension(StoredSVG) == shot(app, unlocked_then())

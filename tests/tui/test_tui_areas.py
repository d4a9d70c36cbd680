"""Pilot tests of the areas at 80x24 on real vaults: import with preview, samples, typed-name
delete, table filters, the audit log (verification, tampering, checkpoint, virtual rendering)
and the policy's what-if check."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

pytest.importorskip("textual")

from textual.widgets import Button, Input, ProgressBar  # noqa: E402
from textual.worker import WorkerFailed  # noqa: E402

from tests.support import DEMO, PASSPHRASE, SIZE, fresh_vault, settle, text_of, unlock  # noqa: E402
from tui.app import StrongroomApp  # noqa: E402
from tui.screens.dialogs import ErrorDialog, TypedConfirmDialog  # noqa: E402
from tui.screens.import_picker import ImportScreen  # noqa: E402
from tui.widgets.tables import KeyTable  # noqa: E402

IDX_IMAGES = DEMO / "mnist-1000-images-idx3-ubyte.gz"
IDX_LABELS = DEMO / "mnist-1000-labels-idx1-ubyte.gz"
SMS = DEMO / "sms-600.tsv"


@pytest.fixture
def vault_dir(tmp_path: Path) -> Path:
    if not IDX_IMAGES.exists():
        pytest.skip("vault/demo_data is absent")
    return fresh_vault(tmp_path)


@pytest.fixture
def stocked_vault(vault_dir: Path) -> Path:
    """A vault holding the bundled MNIST subset (IDX) and SMS subset (TSV)."""
    from vault.door import Vault
    from vault.ingest import ImportOptions

    with Vault.open(vault_dir, user="admin", passphrase=PASSPHRASE.encode()) as vault:
        vault.import_dataset(
            IDX_IMAGES, name="digits", sensitivity="medium", options=ImportOptions(labels=IDX_LABELS)
        )
        vault.import_dataset(
            SMS,
            name="sms",
            sensitivity="high",
            options=ImportOptions(fmt="tsv", header=False, text_column=1, label_column=0),
        )
    return vault_dir


async def finished(pilot, worker) -> None:
    """Wait for one worker (the import screen's file tree keeps a worker alive, so not all)."""
    with contextlib.suppress(WorkerFailed):
        await worker.wait()
    await pilot.pause()


async def test_import_shows_a_preview_before_anything_is_written(vault_dir: Path) -> None:
    app = StrongroomApp(vault_dir)
    async with app.run_test(size=SIZE) as pilot:
        await unlock(pilot)
        await pilot.press("i")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ImportScreen)
        screen.query_one("#picker-labels", Input).value = str(IDX_LABELS)
        path_field = screen.query_one("#picker-path", Input)
        path_field.focus()
        path_field.value = str(IDX_IMAGES)
        await pilot.press("enter")
        await finished(pilot, screen.detect_worker)
        preview = text_of(app, "#picker-preview")
        assert "✓ detected idx" in preview and "10 classes" in preview and "1000 records" in preview
        assert app.backend.datasets() == []  # a preview writes nothing
        screen.query_one("#picker-name", Input).value = "digits"
        await pilot.press("ctrl+r")
        await finished(pilot, screen.import_worker)
        bar = screen.query_one("#picker-progress", ProgressBar)
        assert bar.percentage == 1.0
        assert "✓ imported digits v1" in text_of(app, "#picker-status")
        await pilot.press("escape")
        await settle(pilot)
        table = app.screen.query_one("#datasets-table", KeyTable)
        assert table.row_count == 1 and table.selected_key == "digits"
        assert "1,000" in [str(cell) for cell in table.get_row("digits")]


async def test_a_bad_source_shows_the_core_error_and_writes_nothing(vault_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    app = StrongroomApp(vault_dir)
    async with app.run_test(size=SIZE) as pilot:
        await unlock(pilot)
        await pilot.press("i")
        await pilot.pause()
        screen = app.screen
        field = screen.query_one("#picker-path", Input)
        field.focus()
        field.value = str(empty)
        await pilot.press("enter")
        await finished(pilot, screen.detect_worker)
        assert isinstance(app.screen, ErrorDialog)
        assert app.screen.error_title and app.screen.error_hint
        assert app.backend.datasets() == []


async def test_samples_are_drawn_on_request_and_audited(stocked_vault: Path) -> None:
    from vault.audit import AuditLog

    app = StrongroomApp(stocked_vault)
    async with app.run_test(size=SIZE) as pilot:
        await unlock(pilot)
        before = [e for e in AuditLog(stocked_vault / "audit").entries() if e["action"] == "dataset.read"]
        assert "▀" not in text_of(app, "#dataset-samples")
        await pilot.press("s")
        await settle(pilot)
        assert "▀" in text_of(app, "#dataset-samples")  # half-block pixels
        reads = [e for e in AuditLog(stocked_vault / "audit").entries() if e["action"] == "dataset.read"]
        assert len(reads) == len(before) + 1 and reads[-1]["detail"]["purpose"] == "sample"
        await pilot.press("j")
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot)
        samples = text_of(app, "#dataset-samples")
        assert "[ham]" in samples or "[spam]" in samples  # text snippets with their labels


async def test_delete_asks_for_the_typed_name_with_focus_on_cancel(stocked_vault: Path) -> None:
    app = StrongroomApp(stocked_vault)
    async with app.run_test(size=SIZE) as pilot:
        await unlock(pilot)
        await pilot.press("d")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, TypedConfirmDialog) and dialog.expected == "digits"
        assert dialog.focused is not None and dialog.focused.id == "cancel"
        await pilot.press("enter")  # Cancel
        await settle(pilot)
        assert [d["name"] for d in app.backend.datasets()] == ["digits", "sms"]
        await pilot.press("d")
        await pilot.pause()
        dialog = app.screen
        typed = dialog.query_one("#typed", Input)
        typed.focus()
        await pilot.press(*"digit")
        assert dialog.query_one("#confirm", Button).disabled
        await pilot.press("s")
        assert not dialog.query_one("#confirm", Button).disabled
        await pilot.press("enter")
        await settle(pilot)
        assert [d["name"] for d in app.backend.datasets()] == ["sms"]
        assert app.screen.query_one("#datasets-table", KeyTable).row_count == 1


async def test_slash_filters_the_table_and_escape_clears_it(stocked_vault: Path) -> None:
    app = StrongroomApp(stocked_vault)
    async with app.run_test(size=SIZE) as pilot:
        await unlock(pilot)
        table = app.screen.query_one("#datasets-table", KeyTable)
        assert table.row_count == 2
        await pilot.press("slash", *"sms")
        assert table.row_count == 1 and table.selected_key == "sms"
        await pilot.press("escape")
        assert table.row_count == 2 and table.has_focus


async def test_policy_area_shows_the_hash_and_answers_what_if(stocked_vault: Path) -> None:
    from textual.widgets import Select, Switch

    app = StrongroomApp(stocked_vault)
    async with app.run_test(size=SIZE) as pilot:
        await unlock(pilot)
        await pilot.press("6")
        await settle(pilot)
        shown = app.backend.policy_show()
        assert shown["sha256"] in text_of(app, "#policy-header")
        assert app.screen.query_one("#policy-rules", KeyTable).row_count == len(shown["rules"])
        app.screen.query_one("#whatif-dataset", Select).value = "sms"
        app.screen.query_one("#whatif-dp", Switch).value = False
        await pilot.press("ctrl+r")
        await settle(pilot)
        verdict = text_of(app, "#whatif-result")
        assert verdict.startswith("✗ refused") and "privacy.dp_required" in verdict
        app.screen.query_one("#whatif-dp", Switch).value = True
        await pilot.press("ctrl+r")
        await settle(pilot)
        verdict = text_of(app, "#whatif-result")
        assert "privacy.dp_required" not in verdict and " by rule " in verdict


def test_privacy_rows_name_a_running_charge() -> None:
    from tui.screens.privacy import run_rows

    budget = [
        {
            "dataset": "digits",
            "runs": [
                {"run": "run-1", "dp": True, "epsilon": 3.0, "history": [[1.1, 0.01, 300]], "outcome": "ok"},
                {
                    "run": "run-2",
                    "dp": True,
                    "epsilon": 2.0,
                    "history": [[1.3, 0.01, 200]],
                    "outcome": "running",
                },
                {"run": "run-3", "dp": False, "epsilon": None, "history": [], "outcome": "cancelled"},
            ],
        }
    ]
    rows = [cells for _, cells in run_rows(budget)]
    assert [r[5] for r in rows] == ["✓ ok", "▶ running", "■ cancelled"]
    assert rows[1][3:5] == ("2.00", "200") and rows[2][2:4] == ("✗ no DP", "∞")


async def test_train_form_offers_the_registry_and_the_recipe_default_follows_dp(stocked_vault: Path) -> None:
    from textual.widgets import Select, Switch

    app = StrongroomApp(stocked_vault)
    async with app.run_test(size=SIZE) as pilot:
        await unlock(pilot)
        await pilot.press("2")
        await settle(pilot)
        screen = app.screen
        dataset = screen.query_one("#train-dataset", Select)
        model = screen.query_one("#train-model", Select)
        dp = screen.query_one("#train-dp", Switch)
        dataset.value = "digits"
        await settle(pilot)
        assert [value for _, value in model._options if isinstance(value, str)] == [
            "scatternet",
            "cnn",
            "resnet18",
        ]
        assert dp.value and model.value == "scatternet"
        dp.value = False
        await settle(pilot)
        assert model.value == "cnn", "without DP the image default is the CNN"
        model.value = "resnet18"
        dp.value = True
        await settle(pilot)
        assert model.value == "resnet18", "a model the user picked stays picked"
        dataset.value = "sms"
        await settle(pilot)
        assert model.value == "bow"


async def test_datasets_area_says_which_records_a_dataset_shares(stocked_vault: Path) -> None:
    from vault.door import Vault
    from vault.ingest import ImportOptions

    with Vault.open(stocked_vault, user="admin", passphrase=PASSPHRASE.encode()) as vault:
        vault.import_dataset(
            SMS,
            name="sms-copy",
            sensitivity="high",
            options=ImportOptions(fmt="tsv", header=False, text_column=1, label_column=0),
        )
        shared = vault.budget("sms-copy")[0]["overlaps"][0]
    app = StrongroomApp(stocked_vault)
    async with app.run_test(size=SIZE) as pilot:
        await unlock(pilot)
        await settle(pilot)
        for _ in range(2):  # digits, sms, sms-copy
            await pilot.press("j")
            await settle(pilot)
        summary = " ".join(text_of(app, "#dataset-summary").split())
        assert "sms-copy" in summary
        assert (
            f"⇄ overlaps 'sms' ({shared['records']} of {shared['of']} records): ε 0.00 spent carries over"
            in summary
        )

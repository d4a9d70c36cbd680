"""The whole appliance from the keyboard: unlock -> import -> train a tiny DP model (in its own
process) -> see it in Models and Privacy -> evaluate and export it -> verify the audit log.
Also: cancelling a run asks first and charges the ledger for the steps taken."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

pytest.importorskip("textual")

from textual.widgets import Input, Select  # noqa: E402
from textual.worker import WorkerFailed  # noqa: E402

from tests.support import PASSPHRASE, REPO, SIZE, fresh_vault, settle, text_of, unlock  # noqa: E402
from tui.app import StrongroomApp  # noqa: E402
from tui.screens.dialogs import ConfirmDialog, InputDialog  # noqa: E402
from tui.widgets.tables import KeyTable  # noqa: E402

SMS = REPO / "vault" / "demo_data" / "sms-600.tsv"

pytestmark = pytest.mark.slow


@pytest.fixture
def vault_dir(tmp_path: Path) -> Path:
    if not SMS.exists():
        pytest.skip("vault/demo_data/sms-600.tsv is absent")
    return fresh_vault(tmp_path)


async def unlock_and_import_sms(pilot) -> None:
    app = pilot.app
    await unlock(pilot)
    await pilot.press("i")
    await pilot.pause()
    picker = app.screen
    picker.query_one("#picker-text-col", Input).value = "1"
    picker.query_one("#picker-label-col", Input).value = "0"
    path_field = picker.query_one("#picker-path", Input)
    path_field.focus()
    path_field.value = str(SMS)
    await pilot.press("enter")
    with contextlib.suppress(WorkerFailed):
        await picker.detect_worker.wait()
    await pilot.pause()
    assert "✓ detected tsv · text · 600 records · 2 classes" in text_of(app, "#picker-preview")
    picker.query_one("#picker-name", Input).value = "sms"
    await pilot.press("ctrl+r")
    with contextlib.suppress(WorkerFailed):
        await picker.import_worker.wait()
    await pilot.pause()
    await pilot.press("escape")
    await settle(pilot)


async def start_run(pilot, epsilon: str, epochs: str) -> None:
    app = pilot.app
    await pilot.press("2")
    await settle(pilot)
    form = app.screen
    form.query_one("#train-dataset", Select).value = "sms"
    await pilot.pause()
    form.query_one("#train-epsilon", Input).value = epsilon
    form.query_one("#train-epochs", Input).value = epochs
    form.run_check()
    await settle(pilot)
    assert " by rule " in text_of(app, "#train-check")
    await pilot.press("ctrl+r")
    await pilot.pause()
    assert app.run_active


async def test_unlock_import_train_models_privacy_audit(vault_dir: Path, tmp_path: Path) -> None:
    app = StrongroomApp(vault_dir)
    async with app.run_test(size=SIZE) as pilot:
        await unlock_and_import_sms(pilot)
        assert [d["name"] for d in app.backend.datasets()] == ["sms"]

        await start_run(pilot, "2", "2")
        await pilot.press("j")  # the UI answers keys while the run trains in its own process
        await app.training_run.wait()
        await settle(pilot)
        status = text_of(app, "#train-status")
        assert status.startswith("✓ finished: model "), status
        model_id = status.split("model ", 1)[1].strip()
        assert "ε" in text_of(app, "#train-epsilon-line")
        assert app.screen.query_one("#train-curves").losses
        assert "(exact, outside the DP guarantee)" in text_of(app, "#train-result")

        await pilot.press("3")
        await settle(pilot)
        table = app.screen.query_one("#models-table", KeyTable)
        assert table.row_count == 1 and table.selected_key == model_id
        card = app.screen.query_one("#model-card-md")
        assert "DP" in card.source or "differential" in card.source.lower()
        assert "exact, outside the DP guarantee" in card.source
        await pilot.press("e")
        await settle(pilot)
        assert text_of(app, "#models-status").startswith("✓ evaluated on sms: accuracy ")
        await pilot.press("x")
        await pilot.pause()
        assert isinstance(app.screen, InputDialog)
        out_dir = tmp_path / "exported"
        app.screen.query_one("#value", Input).value = str(out_dir)
        await pilot.press("enter")
        await settle(pilot)
        assert text_of(app, "#models-status").startswith("✓ exported")
        assert (out_dir / "model.safetensors").exists() and (out_dir / "MANIFEST.sig").exists()

        await pilot.press("4")
        await settle(pilot)
        ledgers = text_of(app, "#privacy-ledgers")
        assert ledgers.startswith("sms") and "/ 20.00 ε" in ledgers and "✓ within cap" in ledgers
        runs = app.screen.query_one("#privacy-runs", KeyTable)
        assert runs.row_count == 1
        assert [str(c) for c in runs.get_row_at(0)][2:6:3] == ["✓ DP", "✓ ok"]

        await pilot.press("5")
        await settle(pilot)
        assert text_of(app, "#audit-verdict").startswith("✓ verified: ")
        actions = {entry["action"] for entry in app.screen.query_one("#audit-log")._entries}
        assert {"dataset.import", "train.start", "session.unlock"} <= actions


async def test_the_train_area_checks_the_policy_for_the_dataset_it_shows(vault_dir: Path) -> None:
    """Opening Train shows the first dataset chosen, and the policy's verdict for it, untouched."""
    app = StrongroomApp(vault_dir)
    async with app.run_test(size=SIZE) as pilot:
        await unlock_and_import_sms(pilot)
        await pilot.press("2")
        await settle(pilot)
        await settle(pilot)
        assert app.screen.query_one("#train-dataset", Select).value == "sms"
        assert " by rule " in text_of(app, "#train-check"), text_of(app, "#train-check")


async def test_cancel_asks_first_then_stops_the_run(vault_dir: Path) -> None:
    app = StrongroomApp(vault_dir)
    async with app.run_test(size=SIZE) as pilot:
        await unlock_and_import_sms(pilot)
        await start_run(pilot, "2", "50")
        await pilot.press("ctrl+x")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        assert app.screen.focused.id == "cancel"
        await pilot.press("shift+tab", "enter")  # move to "Cancel run" and confirm
        await app.training_run.wait()
        await settle(pilot)
        assert text_of(app, "#train-status").startswith("■ cancelled")
        assert not app.run_active
        budget = app.backend.budget()
        assert [run["outcome"] for run in budget[0]["runs"]] == ["cancelled"]


async def test_export_under_a_two_person_policy_asks_for_the_approver(tmp_path: Path) -> None:
    from vault.door import Vault
    from vault.ingest import ImportOptions

    strict = REPO / "policies" / "strict.toml"
    if not strict.exists() or not SMS.exists():
        pytest.skip("policies/strict.toml or the demo data is absent")
    path = tmp_path / "vault"
    with Vault.create(path, passphrase=PASSPHRASE.encode(), policy_text=strict.read_text()) as vault:
        vault.keys_add("ann", "operator", b"ann approves exports")
        vault.import_dataset(
            SMS,
            name="sms",
            sensitivity="high",
            options=ImportOptions(fmt="tsv", header=False, text_column=1, label_column=0),
        )
        model_id = vault.train({"dataset": "sms", "model": "bow", "dp": True, "epsilon": 1.0, "epochs": 1})[
            "model"
        ]
    app = StrongroomApp(path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        field = app.screen.query_one("#passphrase", Input)
        field.focus()
        field.value = PASSPHRASE
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)
        await pilot.press("x")
        await pilot.pause()
        out_dir = tmp_path / "exported"
        app.screen.query_one("#value", Input).value = str(out_dir)
        await pilot.press("enter")
        await settle(pilot)
        from tui.screens.dialogs import ApproverDialog

        dialog = app.screen
        assert isinstance(dialog, ApproverDialog) and dialog.focused.id == "cancel"
        dialog.query_one("#approver", Input).value = "ann"
        dialog.query_one("#approver-passphrase", Input).value = "ann approves exports"
        assert "ann approves exports" not in app.export_screenshot()
        dialog.query_one("#approver-passphrase", Input).focus()
        await pilot.press("enter")
        await settle(pilot)
        assert text_of(app, "#models-status") == f"✓ exported {model_id[:12]} to {out_dir}"
        assert (out_dir / "card.md").exists()

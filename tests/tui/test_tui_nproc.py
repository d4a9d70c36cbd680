"""The Train form's processes field (the command line's --nproc), with Pilot on real vaults: the form
names the isolation level a run of several processes uses, refuses the run when the policy does not
allow that level, and a real run of two processes on tiny data reports its progress and epsilon
from the first process as a run of one does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("textual")

from textual.widgets import Input, Select  # noqa: E402

from tests.support import DEMO, PASSPHRASE, REPO, SIZE, settle, text_of, unlock, unshare_refused  # noqa: E402
from tui.app import StrongroomApp  # noqa: E402
from tui.screens.train import DEFAULTS, parse_processes, parse_request, processes_refusal  # noqa: E402
from vault.vocabulary import LOOPBACK_ISOLATION  # noqa: E402

IDX_IMAGES = DEMO / "mnist-1000-images-idx3-ubyte.gz"
IDX_LABELS = DEMO / "mnist-1000-labels-idx1-ubyte.gz"


def vault_with_digits(tmp_path: Path, required: str) -> Path:
    from vault.door import Vault
    from vault.ingest import ImportOptions

    if not IDX_IMAGES.exists():
        pytest.skip("vault/demo_data is absent")
    text = (REPO / "policies" / "default.toml").read_text()
    text = text.replace('required = "namespace+seccomp"', f'required = "{required}"')
    text = text.replace('allowed = ["cnn",', 'allowed = ["scatternet", "cnn",')
    path = tmp_path / "vault"
    with Vault.create(path, passphrase=PASSPHRASE.encode(), policy_text=text) as v:
        v.import_dataset(IDX_IMAGES, name="digits", options=ImportOptions(labels=IDX_LABELS))
    return path


def test_the_processes_field_reads_as_the_command_line_does() -> None:
    cores = max(os.cpu_count() or 1, 1)
    assert parse_processes("", True) == 1 and parse_processes(" 1 ", True) == 1
    assert parse_processes("auto", True) >= 1 and parse_processes(str(cores), True) == cores
    for bad in ("0", "-1", "1.5", "two"):
        with pytest.raises(ValueError, match="processes must be a whole number from 1 to"):
            parse_processes(bad, True)
    with pytest.raises(ValueError, match=f"processes: this host has {cores} CPU cores"):
        parse_processes(str(cores + 1), True)
    if cores > 1:
        with pytest.raises(ValueError, match="DP only"):
            parse_processes("2", False)
    assert parse_request("digits", "auto", True, dict(DEFAULTS))["nproc"] == 1


def test_the_refusal_names_the_level_the_policy_and_the_fix() -> None:
    assert processes_refusal(1, "namespace+seccomp", "namespace+seccomp") is None
    assert processes_refusal(2, LOOPBACK_ISOLATION, "none") is None
    assert processes_refusal(2, "guard", "none") is None
    by_policy = processes_refusal(2, "namespace+seccomp", "none")
    assert by_policy and LOOPBACK_ISOLATION in by_policy and "requires namespace+seccomp" in by_policy
    assert "use 1 process" in by_policy
    # the UI's own sandbox: its filter refuses internet sockets to every process it starts
    by_sandbox = processes_refusal(2, LOOPBACK_ISOLATION, "namespace+seccomp")
    assert by_sandbox and "strongroom train DATASET --nproc N" in by_sandbox
    assert "trainer launcher is not available (no trainer launcher)" in by_sandbox
    # the UI's trainer launcher holds the loopback level: the run goes through it
    assert processes_refusal(2, LOOPBACK_ISOLATION, "namespace+seccomp", None) is None
    # but never past the policy
    assert processes_refusal(2, "namespace+seccomp", "namespace+seccomp", None)


async def show_form(pilot, processes: str) -> None:
    app = pilot.app
    if app.screen.query("#passphrase"):
        await unlock(pilot)
    await pilot.press("2")
    await settle(pilot)
    form = app.screen
    form.query_one("#train-dataset", Select).value = "digits"
    await pilot.pause()
    form.query_one("#train-epochs", Input).value = "2"
    form.query_one("#train-nproc", Input).value = processes
    form.run_check()
    await settle(pilot)


@pytest.mark.slow
async def test_a_policy_without_the_loopback_level_refuses_several_processes(tmp_path: Path) -> None:
    vault = vault_with_digits(tmp_path, "namespace+seccomp")
    app = StrongroomApp(vault)
    async with app.run_test(size=SIZE) as pilot:
        await show_form(pilot, "1")
        assert not app.screen.query_one("#train-isolation").display  # one process: nothing to say
        await show_form(pilot, "2")
        line = text_of(app, "#train-isolation")
        assert "✗ refused" in line and LOOPBACK_ISOLATION in line and "namespace+seccomp" in line
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not app.run_active and app.training_run is None
    from vault.door import Vault

    with Vault.open(vault, user="admin", passphrase=PASSPHRASE.encode()) as v:
        assert v.budget("digits")[0]["runs"] == []


@pytest.mark.slow
async def test_two_processes_train_from_the_form_with_progress_and_epsilon(tmp_path: Path) -> None:
    refused = unshare_refused()
    if refused:
        pytest.skip(f"this host forbids network namespaces, so no loopback level: {refused}")
    vault = vault_with_digits(tmp_path, LOOPBACK_ISOLATION)
    app = StrongroomApp(vault)
    async with app.run_test(size=SIZE) as pilot:
        await show_form(pilot, "2")
        line = text_of(app, "#train-isolation")
        assert f"2 processes · isolation {LOOPBACK_ISOLATION}: ✓ allowed" in line, line
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert app.run_active
        assert "2 processes" in text_of(app, "#train-status")
        await app.training_run.wait()
        await settle(pilot)
        status = text_of(app, "#train-status")
        assert "✓ finished" in status, status
        assert "run ε" in text_of(app, "#train-epsilon-line")
        assert app.screen.query_one("#train-curves").losses  # rank 0's step progress arrived
        result = text_of(app, "#train-result")
        assert "held-out accuracy" in result and " · ε " in result, result
    from vault.door import Vault

    with Vault.open(vault, user="admin", passphrase=PASSPHRASE.encode()) as v:
        (model,) = v.models()
        card = v.model_card(model["id"])
        (row,) = v.budget("digits")
    assert card["distributed"]["world_size"] == 2
    assert [c["interfaces_seen"] for c in card["distributed"]["interface_checks"]] == [["lo"], ["lo"]]
    (charge,) = row["runs"]
    assert charge["outcome"] == "ok"

"""Training through the vault's one door: policy first, ledger charged (cancelled runs too),
weights and cards sealed, budget shared by identical records."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.peers import mnist_idx
from tests.support import PASSPHRASE, REPO, shared_path
from vault.door import Vault
from vault.errors import Cancelled, PolicyDenied
from vault.train.events import StepProgress

DEFAULT_POLICY = REPO / "policies" / "default.toml"

TrainingVault = Vault


def test_the_vault_carries_the_training_methods() -> None:
    for method in ("train", "models", "model_card", "evaluate", "budget"):
        assert callable(getattr(Vault, method))


def policy(lifetime: float = 20.0) -> str:
    text = DEFAULT_POLICY.read_text()
    text = text.replace(
        'allowed = ["cnn", "resnet18", "bow", "transformer"]',
        'allowed = ["scatternet", "cnn", "resnet18", "bow", "transformer"]',
    )
    text = text.replace("max_epsilon_per_run = 10.0", f"max_epsilon_per_run = {min(10.0, lifetime)}")
    return text.replace("max_lifetime_epsilon = 20.0", f"max_lifetime_epsilon = {lifetime}")


@pytest.fixture
def digits(tmp_path: Path):
    from vault.ingest import ImportOptions

    v = TrainingVault.create(
        tmp_path / "vault", passphrase=PASSPHRASE.encode(), policy_text=policy(lifetime=8.0)
    )
    shared_path("datasets", "mnist")
    images, labels = mnist_idx(tmp_path, 600, "digits")
    v.import_dataset(images, name="digits", options=ImportOptions(labels=labels))
    v.import_dataset(images, name="digits-copy", options=ImportOptions(labels=labels))
    yield v
    v.close()


def test_train_seals_a_model_and_charges_the_shared_ledger(digits) -> None:
    result = digits.train({"dataset": "digits", "epsilon": 3.0, "seed": 1, "name": "first"})
    for key in (
        "model",
        "dataset",
        "dp",
        "epsilon",
        "delta",
        "noise_multiplier",
        "sample_rate",
        "steps",
        "accountant",
        "accuracy",
    ):
        assert key in result
    assert result["dp"] and result["accountant"] == "prv" and result["epsilon"] <= 3.0
    assert result["accuracy"] > 0.4, "600 digits at epsilon 3; chance is 0.1"
    models = digits.models()
    assert [m["id"] for m in models] == [result["model"]]
    assert set(models[0]) >= {"id", "dataset", "epsilon", "accuracy", "created"}
    card = digits.model_card(result["model"])
    assert card["privacy"]["noise_multiplier"] == result["noise_multiplier"]
    assert card["dataset"]["name"] == "digits" and "digits" in digits.model_card(
        result["model"], markdown=True
    )
    evaluation = digits.evaluate(result["model"], "digits-copy")
    assert (
        evaluation["samples"] == 600 and evaluation["accuracy"] > 0.4 and len(evaluation["confusion"]) == 10
    )
    budgets = {row["dataset"]: row for row in digits.budget()}
    assert budgets["digits"]["epsilon_spent"] == pytest.approx(result["epsilon"], rel=1e-6)
    assert budgets["digits-copy"]["epsilon_spent"] == budgets["digits"]["epsilon_spent"], (
        "same records, one ledger"
    )
    assert budgets["digits"]["epsilon_cap"] == 8.0 and len(budgets["digits"]["runs"]) == 1
    actions = [e["action"] for e in digits.audit.entries()]
    assert actions.index("policy.decision") < actions.index("train.start") < actions.index("train.end")
    # The records and the weights never sit on disk in plaintext.
    weights = digits._session.get_object(
        digits._session.read_catalog()["models"][result["model"]]["objects"]["model.safetensors"]
    )
    needle = weights[8:40]
    for path in (digits.path).rglob("*"):
        if path.is_file():
            assert needle not in path.read_bytes()


def test_lifetime_cap_refuses_before_reading_records_and_cancel_is_charged(digits) -> None:
    cancel = threading.Event()

    def stop_at_two(event: object) -> None:
        if isinstance(event, StepProgress) and event.step == 2:
            cancel.set()

    with pytest.raises(Cancelled):
        digits.train(
            {"dataset": "digits-copy", "epsilon": 5.0, "seed": 2}, on_event=stop_at_two, cancel=cancel
        )
    assert digits.models() == [], "a cancelled run writes no model"
    budget = digits.budget("digits")[0]
    assert budget["runs"][0]["outcome"] == "cancelled" and 0 < budget["epsilon_spent"] < 5.0
    ends = digits.audit.entries(action="train.end")
    assert ends[-1]["outcome"] == "cancelled"
    reads_before = len(digits.audit.entries(action="dataset.read"))
    with pytest.raises(PolicyDenied) as denied:
        digits.train({"dataset": "digits", "epsilon": 8.0, "seed": 3})
    assert denied.value.detail["rule"] == "privacy.max_lifetime_epsilon"
    assert len(digits.audit.entries(action="dataset.read")) == reads_before, (
        "refused before any record was read"
    )


def test_runs_started_together_cannot_both_pass_the_lifetime_cap(digits) -> None:
    """The cap check and a full-plan charge are one step under the writer lock: while one run
    trains, a second handle on the same vault sees the first run's whole planned cost. (Alone,
    epsilon 7 fits under the cap of 8; composed with the running 5 it does not.)"""
    other = TrainingVault.open(digits.path, user=digits.user, passphrase=PASSPHRASE.encode())
    seen: dict[str, object] = {}

    def race(event: object) -> None:
        if isinstance(event, StepProgress) and event.step == 1 and not seen:
            budget = other.budget("digits-copy")[0]
            seen["running"] = budget["runs"][0]["outcome"]
            seen["spent"] = budget["epsilon_spent"]
            with pytest.raises(PolicyDenied) as denied:
                other.train({"dataset": "digits", "epsilon": 7.0, "seed": 4})
            seen["rule"] = denied.value.detail["rule"]

    try:
        digits.train({"dataset": "digits-copy", "epsilon": 5.0, "epochs": 2, "seed": 2}, on_event=race)
    finally:
        other.close()
    assert seen["running"] == "running" and 4.9 < seen["spent"] <= 5.0 + 1e-9
    assert seen["rule"] == "privacy.max_lifetime_epsilon"
    budget = digits.budget("digits")[0]
    assert [r["outcome"] for r in budget["runs"]] == ["ok"], "the reservation was settled, not added to"
    assert budget["epsilon_spent"] <= 5.0 + 1e-9

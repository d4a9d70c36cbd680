"""`train --tune K` through the door: the policy sees the whole tuned run's projection, the ledger is
charged once with its total, and the card says how the rate was chosen."""

from __future__ import annotations

import pytest

from tests.integration.test_train_service import policy
from tests.peers import mnist_idx
from tests.support import PASSPHRASE, shared_path
from vault.door import Vault
from vault.errors import PolicyDenied, UsageError
from vault.privacy import ledger, tuning


def open_vault(tmp_path, lifetime: float) -> Vault:
    from vault.ingest import ImportOptions

    v = Vault.create(
        tmp_path / "vault", passphrase=PASSPHRASE.encode(), policy_text=policy(lifetime=lifetime)
    )
    shared_path("datasets", "mnist")
    images, labels = mnist_idx(tmp_path, 600, "digits")
    v.import_dataset(images, name="digits", options=ImportOptions(labels=labels))
    return v


def test_a_tuned_run_is_charged_once_with_its_total_and_the_card_says_how(tmp_path) -> None:
    v = open_vault(tmp_path, lifetime=8.0)
    try:
        request = {
            "dataset": "digits",
            "epsilon": 3.0,
            "epochs": 2,
            "tune": 2,
            "seed": 5,
            "reproducible": True,
        }
        result = v.train(request)
        tuned = result["tuning"]
        assert (
            tuned["mean"] == 2 and tuned["runs"] >= 1 and tuned["chosen"]["lr"] in tuned["candidates"]["lr"]
        )
        assert tuned["distribution"].startswith("geometric") and "Papernot" in tuned["method"]
        assert result["accountant"] == "rdp" and 2.99 <= result["epsilon"] == tuned["epsilon"] <= 3.0
        # one charge, the whole run's RDP curve, whatever the number of candidates
        section = v._session.read_catalog()["ledger"]
        charges = [c for entry in section.values() for c in entry["charges"]]
        assert (
            len(charges) == 1
            and charges[0]["outcome"] == "ok"
            and len(charges[0]["rdp"]) == len(tuning.orders())
        )
        budget = v.budget("digits")[0]
        assert budget["epsilon_spent"] == pytest.approx(tuned["epsilon"], rel=1e-9)
        assert budget["epsilon_spent"] > ledger.compose([charges[0]["history"]], budget["delta"], "rdp"), (
            "the ledger holds the selection's cost, not one candidate's"
        )
        card = v.model_card(result["model"])
        assert card["tuning"]["chosen"] == tuned["chosen"] and card["privacy"]["epsilon"] == tuned["epsilon"]
        assert "chosen privately" in v.model_card(result["model"], markdown=True)
        decisions = [e for e in v.audit.entries() if e["action"] == "train.start"]
        assert decisions[-1]["detail"]["tune"] == 2
    finally:
        v.close()


def test_the_cap_refuses_a_tuned_run_it_cannot_hold_before_any_charge(tmp_path) -> None:
    v = open_vault(tmp_path, lifetime=3.0)
    try:
        v.train({"dataset": "digits", "epsilon": 2.5, "epochs": 2, "seed": 1})
        with pytest.raises(PolicyDenied) as denied:
            v.train({"dataset": "digits", "epsilon": 2.0, "epochs": 2, "tune": 3})
        assert "lifetime epsilon" in str(denied.value.title) + str(denied.value.hint)
        assert len(v.budget("digits")[0]["runs"]) == 1, "nothing charged for the refused run"
        with pytest.raises(UsageError, match="--tune needs DP"):
            v.train({"dataset": "digits", "dp": False, "tune": 2})
    finally:
        v.close()

"""What leaves the room is accounted: a card's held-out figures are DP-noised and charged to the
ledger (strict policy), or exact and marked as outside the guarantee (default policy), and a run
whose metrics charge would pass the lifetime cap is refused before it starts."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_train_service import policy as default_policy
from tests.peers import mnist_idx
from tests.support import PASSPHRASE, REPO, google_epsilon, shared_path
from vault.door import Vault, card_release
from vault.errors import Cancelled, PolicyDenied
from vault.privacy import ledger, release, tuning
from vault.privacy.release import plan_release as release_plan
from vault.train.events import StepProgress

STRICT = (REPO / "policies" / "strict.toml").read_text("utf-8")


def open_vault(tmp_path: Path, policy_text: str) -> Vault:
    from vault.ingest import ImportOptions

    v = Vault.create(tmp_path / "vault", passphrase=PASSPHRASE.encode(), policy_text=policy_text)
    shared_path("datasets", "mnist")
    images, labels = mnist_idx(tmp_path, 600, "digits")
    v.import_dataset(images, name="digits", options=ImportOptions(labels=labels))
    return v


def exact_held_out(v: Vault, card: dict[str, Any]) -> dict[str, Any]:
    """The model's exact figures on its held-out records, recomputed from the records themselves."""
    from vault.door.training import _train_data
    from vault.train.data import TrainData, select, split
    from vault.train.evaluate import evaluate
    from vault.train.weights import weights_from_bytes

    data = _train_data(v._datasets.load("digits", purpose="evaluate"))
    held = split(data.y, card["dataset"]["split"]["val_fraction"], card["dataset"]["split"]["seed"])
    model = v._session.read_catalog()["models"][card["model"]["id"]]
    weights = weights_from_bytes(v._session.get_object(model["objects"]["model.safetensors"]))
    subset = TrainData(data.kind, data.classes, select(data.x, held.val), data.y[held.val])
    return evaluate(weights, model["config"], subset, model_classes=model["classes"], device="cpu")


def test_a_strict_card_carries_noised_figures_and_the_ledger_holds_their_charge(tmp_path) -> None:
    v = open_vault(tmp_path, STRICT)
    try:
        result = v.train({"dataset": "digits", "epsilon": 3.0, "epochs": 2, "seed": 3})
        card = v.model_card(result["model"])
        block = card["metrics_privacy"]
        held_out = card["dataset"]["split"]["val"]
        assert block["mode"] == "noised" and block["covered_by_dp"] is True
        assert block["epsilon"] == 0.5 and block["records"] == held_out
        assert block["delta"] < 1 / held_out
        assert block["sigma"] == pytest.approx(release.gaussian_sigma(0.5, block["delta"]), rel=1e-9)
        assert result["metrics_privacy"] == block

        exact = exact_held_out(v, card)
        assert exact["samples"] == held_out
        assert card["metrics"]["confusion"] != exact["confusion"], "noised, not the exact counts"
        assert all(v >= 0 for row in card["metrics"]["confusion"] for v in row)
        assert 0.0 <= card["metrics"]["accuracy"] <= 1.0
        assert result["accuracy"] == card["metrics"]["accuracy"]
        assert v.models()[0]["accuracy"] == card["metrics"]["accuracy"], (
            "the catalog keeps the released figure"
        )
        # the membership check and the per-epoch figures read records exactly: not on a noised card
        assert card["leakage"]["auc"] is None and card["leakage"]["tpr_at_1pct_fpr"] is None
        assert "withheld" in card["leakage"]
        assert all(
            e["val_acc"] is None and e["train_acc"] is None and e["loss"] is None for e in card["epochs"]
        )
        markdown = v.model_card(result["model"], markdown=True)
        assert "noised" in markdown and f"{block['sigma']:.4g}" in markdown
        assert "withheld" in markdown.lower()

        # the ledger: the training's charge and the metrics' own, composed by the ledger's accountant
        budget = v.budget("digits")[0]
        runs = budget["runs"]
        assert len(runs) == 2
        metrics_charge = next(c for c in runs if c.get("metrics_of"))
        training_charge = next(c for c in runs if not c.get("metrics_of"))
        assert metrics_charge["metrics_of"] == training_charge["run"] == result["run"]
        assert metrics_charge["history"] == [[block["sigma"], 1.0, 1]] and metrics_charge["outcome"] == "ok"
        assert metrics_charge["epsilon"] == 0.5
        delta = budget["delta"]
        total = ledger.compose([training_charge["history"], metrics_charge["history"]], delta, "prv")
        assert budget["epsilon_spent"] == pytest.approx(total, rel=1e-9)
        assert budget["epsilon_spent"] > ledger.compose([training_charge["history"]], delta, "prv")
        independent = google_epsilon(
            [tuple(h) for h in training_charge["history"] + metrics_charge["history"]], delta, "pld"
        )
        assert budget["epsilon_spent"] == pytest.approx(independent, rel=0.01)
        ends = [e for e in v.audit.entries() if e["action"] == "train.end"]
        assert ends[-1]["detail"]["accuracy"] == card["metrics"]["accuracy"]
    finally:
        v.close()


def test_a_default_card_keeps_exact_figures_marked_outside_the_guarantee(tmp_path) -> None:
    v = open_vault(tmp_path, default_policy(lifetime=8.0))
    try:
        result = v.train({"dataset": "digits", "epsilon": 3.0, "epochs": 2, "seed": 3})
        card = v.model_card(result["model"])
        block = card["metrics_privacy"]
        assert block["mode"] == "marked" and block["covered_by_dp"] is False
        assert {"metrics.accuracy", "metrics.confusion", "leakage.auc", "epochs.val_acc"} <= set(
            block["figures"]
        )
        exact = exact_held_out(v, card)
        assert card["metrics"]["confusion"] == exact["confusion"]
        assert card["metrics"]["accuracy"] == pytest.approx(exact["accuracy"])
        assert card["leakage"]["auc"] is not None
        markdown = v.model_card(result["model"], markdown=True)
        assert "exact, outside the DP guarantee" in markdown
        runs = v.budget("digits")[0]["runs"]
        assert len(runs) == 1 and not runs[0].get("metrics_of"), "nothing released under DP, nothing charged"
    finally:
        v.close()


def test_a_run_whose_metrics_charge_would_pass_the_cap_is_refused_before_it_starts(tmp_path) -> None:
    text = STRICT.replace("max_lifetime_epsilon = 6.0", "max_lifetime_epsilon = 3.01")
    assert text != STRICT
    v = open_vault(tmp_path, text)
    try:
        with pytest.raises(PolicyDenied) as denied:
            v.train({"dataset": "digits", "epsilon": 3.0, "epochs": 2})
        message = f"{denied.value.title} {denied.value.hint}"
        assert "lifetime epsilon" in message and "noised metrics" in message and "3.01" in message
        assert v.budget("digits")[0]["runs"] == [], "nothing charged for the refused run"
        assert v.models() == []
        assert not [e for e in v.audit.entries() if e["action"] == "train.start"]
    finally:
        v.close()


def test_a_cancelled_noised_run_releases_nothing_and_its_metrics_charge_is_zero(tmp_path) -> None:
    v = open_vault(tmp_path, STRICT)
    try:
        cancel = threading.Event()

        def stop_at_two(event: Any) -> None:
            if isinstance(event, StepProgress) and event.step >= 2:
                cancel.set()

        with pytest.raises(Cancelled):
            v.train({"dataset": "digits", "epsilon": 3.0, "epochs": 2}, on_event=stop_at_two, cancel=cancel)
        runs = v.budget("digits")[0]["runs"]
        metrics_charge = next(c for c in runs if c.get("metrics_of"))
        assert metrics_charge["outcome"] == "cancelled" and metrics_charge["history"] == []
        training = next(c for c in runs if not c.get("metrics_of"))
        assert training["outcome"] == "cancelled" and training["history"]
    finally:
        v.close()


def test_a_dead_run_leaves_its_metrics_charge_in_full_as_interrupted(tmp_path) -> None:
    """A run whose process died keeps both charges in full, settled as interrupted at the next open;
    the metrics charge goes by its run's mark and adds no run of its own."""
    v = open_vault(tmp_path, STRICT)
    info = v._datasets.info("digits", None, decide=False)
    base = {"run": "run-dead", "dataset_digest": info["ledger_id"], "dataset": "digits", "version": 1}
    release = card_release.CardRelease("noised", release_plan(0.5, 1e-5, 120))
    with v._session.writing() as catalog:
        history = ((1.2, 0.05, 40),)
        training = ledger.Charge(**base, history=history, dp=True, outcome="running", epsilon=1.0)
        ledger.add_charge(catalog["ledger"], training, delta=1e-5)
        metrics = release.charge(base, outcome="running", created="")
        ledger.add_charge(catalog["ledger"], metrics, delta=1e-5)
    v.close()
    with Vault.open(tmp_path / "vault", user="admin", passphrase=PASSPHRASE.encode()) as reopened:
        runs = reopened.budget("digits")[0]["runs"]
        assert [c["outcome"] for c in runs] == ["interrupted", "interrupted"]
        assert next(c for c in runs if c.get("metrics_of"))["history"] == [list(metrics.history[0])]
        assert list(reopened._session.read_catalog()["runs"]) == ["run-dead"]


def test_the_cli_says_which_figures_a_card_carries_and_budget_json_shows_the_charge(cli, tmp_path) -> None:
    strict = tmp_path / "strict.toml"
    strict.write_text(STRICT)
    assert cli("init", "--policy", str(strict)).code == 0
    shown = cli("policy", "show")
    assert "card figures: noised (epsilon 0.5 a run, charged to the ledger)" in shown.out, shown.err
    images, labels = mnist_idx(tmp_path, 600, "digits")
    imported = cli("import", str(images), "--labels", str(labels), "--name", "digits")
    assert imported.code == 0, imported.err
    trained = cli("train", "digits", "--dp", "--epsilon", "3", "--epochs", "2")
    assert trained.code == 0, trained.err
    assert "DP-noised: epsilon 0.5" in trained.out and "membership check: withheld" in trained.out
    budget = cli("budget", "digits", "--json")
    assert budget.code == 0, budget.err
    [row] = budget.json()
    assert [bool(c.get("metrics_of")) for c in row["runs"]] == [False, True]
    composed = ledger.compose([c["history"] for c in row["runs"]], row["delta"], "prv")
    assert row["epsilon_spent"] == pytest.approx(composed, rel=1e-9)


def test_a_tuned_noised_run_adds_the_release_to_its_rdp_curve(tmp_path) -> None:
    v = open_vault(tmp_path, STRICT)
    try:
        result = v.train({"dataset": "digits", "epsilon": 2.0, "epochs": 1, "tune": 2})
        block = result["metrics_privacy"]
        assert block["mode"] == "noised"
        budget = v.budget("digits")[0]
        tuned = next(c for c in budget["runs"] if c.get("rdp"))
        released = next(c for c in budget["runs"] if c.get("metrics_of"))
        expected = tuning.compose([released["history"]], [tuned["rdp"]], budget["delta"])
        assert budget["epsilon_spent"] == pytest.approx(expected, rel=1e-9)
        assert budget["epsilon_spent"] > tuning.curve_epsilon(tuning.orders(), tuned["rdp"], budget["delta"])
    finally:
        v.close()

"""The ledger's second kind of charge: a tuned run costs its RDP curve (vault/privacy/tuning.py), not a
Gaussian history. The curve must survive the catalog's JSON and count in the totals the CLI reads
(the projection before a run is in test_ledger_rules.py). Dropping it anywhere would understate what
a tuned run cost."""

from __future__ import annotations

import pytest

from vault.privacy import ledger, tuning

RUN_A = ((1.1, 0.01, 800),)
RUN_B = ((1.6, 1 / 16, 240),)
DELTA = 1e-5


def _curve() -> tuple[float, ...]:
    return tuning.tuned_curve(RUN_B, mean=4.0)


def _charges() -> list[ledger.Charge]:
    plain = ledger.Charge(
        "run-1", "sha256:aa", RUN_A, True, dataset="clinic", version=2, created="2026-11-01"
    )
    tuned = ledger.Charge(
        "run-2", "sha256:aa", RUN_B, True, dataset="clinic", version=2, created="2026-11-02", rdp=_curve()
    )
    return [plain, tuned]


def test_every_field_of_a_charge_survives_the_catalog_json() -> None:
    charge = ledger.Charge(
        "run-9",
        "sha256:aa",
        RUN_B,
        True,
        dataset="clinic",
        version=3,
        created="2026-11-02T10:00:00Z",
        outcome="cancelled",
        epsilon=1.25,
        rdp=_curve(),
        metrics_of="run-8",
    )
    data = charge.to_json()
    assert set(data) == {
        "run",
        "dataset_digest",
        "history",
        "dp",
        "dataset",
        "version",
        "created",
        "outcome",
        "epsilon",
        "rdp",
        "metrics_of",
    }
    assert data["rdp"] == list(_curve()) and data["metrics_of"] == "run-8"
    assert data["dataset"] == "clinic" and data["version"] == 3 and data["created"] == "2026-11-02T10:00:00Z"
    assert ledger.Charge.from_json(data) == charge
    plain = ledger.Charge("run-1", "sha256:aa", RUN_A, True)
    assert "rdp" not in plain.to_json() and "metrics_of" not in plain.to_json()
    assert ledger.Charge.from_json(plain.to_json()) == plain


def test_a_tuned_charge_is_composed_through_its_curve() -> None:
    charges = _charges()
    total = ledger.spent(charges, DELTA, "prv").epsilon
    assert total == pytest.approx(tuning.compose([RUN_A], [_curve()], DELTA), rel=1e-12)
    without_tuning = ledger.spent(charges[:1], DELTA, "prv").epsilon
    assert total is not None and without_tuning is not None and total > without_tuning + 0.1
    # read back from the catalog's JSON, the same total
    section: dict = {}
    for charge in charges:
        ledger.add_charge(section, charge, delta=DELTA)
    assert ledger.summary(section, "sha256:aa", default_delta=DELTA)["epsilon_spent"] == pytest.approx(total)


def test_a_run_without_dp_is_unbounded_and_says_at_which_delta_and_accountant() -> None:
    spent = ledger.spent([ledger.Charge("run-1", "sha256:aa", (), False)], DELTA, "rdp")
    assert spent.unbounded and spent.epsilon is None
    assert spent.delta == DELTA and spent.accountant == "rdp"


def test_the_default_accountant_is_prv_where_a_ledger_names_none() -> None:
    charges = _charges()[:1]
    assert ledger.spent(charges, DELTA).accountant == "prv"
    assert ledger.spent(charges, DELTA).epsilon == ledger.spent(charges, DELTA, "prv").epsilon
    assert ledger.compose([RUN_A], DELTA) == ledger.compose([RUN_A], DELTA, "prv")
    # a ledger written before the accountant was recorded composes with PRV
    section = {"sha256:aa": {"digest": "sha256:aa", "delta": DELTA, "charges": [charges[0].to_json()]}}
    summary = ledger.summary(section, "sha256:aa", default_delta=DELTA)
    assert summary["accountant"] == "prv"
    assert summary["epsilon_spent"] == pytest.approx(ledger.compose([RUN_A], DELTA, "prv"))


def test_a_ledger_entry_without_charges_has_none() -> None:
    assert ledger.charges_of({"sha256:aa": {"digest": "sha256:aa", "delta": DELTA}}, "sha256:aa") == []


def test_delta_outside_zero_and_one_is_refused_by_name() -> None:
    for delta in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"^delta must be in \(0, 1\)$"):
            ledger.compose([RUN_A], delta)

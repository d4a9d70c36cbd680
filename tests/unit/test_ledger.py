"""The privacy ledger: composition across runs agrees with dp-accounting; non-DP is unbounded."""

from __future__ import annotations

import pytest

from tests.support import google_epsilon
from vault.privacy import ledger
from vault.privacy.accounting import epsilon_of

RUN_A = [(1.1, 0.01, 800)]
RUN_B = [(1.6, 1 / 16, 240)]
RUN_C = [(0.9, 0.004, 500), (2.0, 0.02, 100)]


@pytest.mark.parametrize("accountant", ["prv", "rdp"])
def test_composition_agrees_with_dp_accounting(accountant: str) -> None:
    composed = ledger.compose([RUN_A, RUN_B, RUN_C], 1e-5, accountant)
    google = google_epsilon([*RUN_A, *RUN_B, *RUN_C], 1e-5, "pld" if accountant == "prv" else "rdp")
    assert composed == pytest.approx(google, rel=0.02)


def test_composition_is_tighter_than_adding_epsilons() -> None:
    separate = sum(epsilon_of(h, 1e-5, "prv") for h in (RUN_A, RUN_B))
    together = ledger.compose([RUN_A, RUN_B], 1e-5)
    assert max(epsilon_of(RUN_A, 1e-5), epsilon_of(RUN_B, 1e-5)) < together < separate


def test_ledger_is_keyed_by_digest_and_non_dp_makes_it_unbounded() -> None:
    section: dict = {}
    ledger.add_charge(
        section, ledger.Charge("run-1", "sha256:aa", ledger.normalise(RUN_A), True, dataset="x"), delta=1e-5
    )
    ledger.add_charge(
        section, ledger.Charge("run-2", "sha256:aa", ledger.normalise(RUN_B), True, dataset="y"), delta=1e-6
    )
    assert ledger.ledger_delta(section, "sha256:aa", 1e-7) == 1e-5, "the first charge fixes the delta"
    budget = ledger.summary(section, "sha256:aa", default_delta=1e-5, cap=8.0)
    assert budget["epsilon_spent"] == pytest.approx(ledger.compose([RUN_A, RUN_B], 1e-5))
    assert not budget["unbounded"] and budget["epsilon_cap"] == 8.0 and len(budget["runs"]) == 2
    charges = ledger.charges_of(section, "sha256:aa")
    assert ledger.projected(charges, RUN_C, 1e-5) == pytest.approx(
        ledger.compose([RUN_A, RUN_B, RUN_C], 1e-5)
    )
    ledger.add_charge(section, ledger.Charge("run-3", "sha256:aa", (), False), delta=1e-5)
    budget = ledger.summary(section, "sha256:aa", default_delta=1e-5)
    assert budget["epsilon_spent"] is None and budget["unbounded"] is True
    assert ledger.projected(ledger.charges_of(section, "sha256:aa"), RUN_C, 1e-5) is None
    fresh = ledger.summary(section, "sha256:bb", default_delta=1e-5)
    assert fresh["epsilon_spent"] == 0.0 and fresh["runs"] == []


def test_charges_round_trip_and_bad_histories_are_refused() -> None:
    charge = ledger.Charge("r", "d", ledger.normalise(RUN_C), True, outcome="cancelled", epsilon=1.0)
    assert ledger.Charge.from_json(charge.to_json()) == charge
    with pytest.raises(ValueError):
        ledger.normalise([(0.0, 0.1, 10)])
    for delta in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"^delta must be in \(0, 1\)$"):
            ledger.compose([RUN_A], delta)
    assert ledger.compose([[(1.0, 0.1, 0)]], 1e-5) == 0.0

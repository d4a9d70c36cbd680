"""Privacy figures checked against an independent accountant (Google's dp-accounting), and the
membership-inference bound."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.support import google_epsilon
from vault.privacy.accounting import RunningBound, calibrate, default_delta, epsilon_of, noise_multiplier_for
from vault.train import TrainConfig, TrainData
from vault.train.engine import train
from vault.train.metrics import dp_auc_bound, dp_tpr_bound, membership_check, roc_auc


def test_a_real_runs_reported_epsilon_agrees_with_dp_accounting() -> None:
    g = torch.Generator().manual_seed(0)
    data = TrainData(
        "image",
        ["a", "b"],
        torch.randint(0, 255, (400, 1, 16, 16), dtype=torch.uint8, generator=g),
        torch.arange(400) % 2,
    )
    outcome = train(
        data, TrainConfig(model="scatternet", epsilon=3.0, epochs=3, batch_size=36, val_split=0.1, seed=0)
    )
    facts = outcome.dp
    assert facts.accountant == "prv" and facts.delta == default_delta(400)
    assert facts.steps == 3 * int(1 / facts.sample_rate)
    pld = google_epsilon(facts.history, facts.delta, "pld")
    assert facts.epsilon == pytest.approx(pld, rel=0.02)
    assert facts.epsilon <= 3.0 + 1e-9
    rdp = epsilon_of(facts.history, facts.delta, "rdp")
    assert rdp == pytest.approx(google_epsilon(facts.history, facts.delta, "rdp"), rel=0.02)


@pytest.mark.parametrize(
    ("rate", "noise", "steps", "delta"),
    [(0.01, 1.1, 1000, 1e-5), (1 / 16, 1.6, 240, 1e-5), (0.2, 3.0, 50, 1e-6)],
)
def test_accountants_agree_with_dp_accounting(rate: float, noise: float, steps: int, delta: float) -> None:
    history = [(noise, rate, steps)]
    assert epsilon_of(history, delta, "prv") == pytest.approx(google_epsilon(history, delta, "pld"), rel=0.02)
    assert epsilon_of(history, delta, "rdp") == pytest.approx(google_epsilon(history, delta, "rdp"), rel=0.02)


def test_calibrated_noise_reaches_the_target_and_no_further() -> None:
    noise = noise_multiplier_for(2.0, 1e-5, 0.05, 4, "rdp")
    achieved = epsilon_of([(noise, 0.05, 80)], 1e-5, "rdp")
    assert 1.98 <= achieved <= 2.0
    assert epsilon_of([(noise * 0.97, 0.05, 80)], 1e-5, "rdp") > 2.0


def test_running_bound_is_an_upper_bound_below_the_ceiling() -> None:
    bound = RunningBound(1.2, 0.05, 1e-5, ceiling=2.5)
    for steps in (1, 10, 100, 400):
        exact = epsilon_of([(1.2, 0.05, steps)], 1e-5, "rdp")
        assert bound.epsilon(steps) == pytest.approx(min(exact, 2.5), rel=1e-6)
    assert bound.epsilon(0) == 0.0


def test_membership_bounds() -> None:
    assert dp_tpr_bound(0.0, 0.0, 0.01) == pytest.approx(0.01)
    assert dp_tpr_bound(3.0, 1e-5, 0.01) == pytest.approx(math.exp(3) * 0.01 + 1e-5)
    assert dp_auc_bound(0.0, 0.0) == pytest.approx(0.5, abs=1e-6)
    assert 0.5 < dp_auc_bound(1.0, 1e-5) < dp_auc_bound(3.0, 1e-5) < 1.0
    rng = np.random.default_rng(0)
    same = membership_check(rng.normal(size=3000), rng.normal(size=3000), 3.0, 1e-5)
    assert abs(same["auc"] - 0.5) < 0.03 and same["tpr_at_1pct_fpr"] < 0.03
    separated = roc_auc(np.array([3.0, 4.0, 5.0]), np.array([0.0, 1.0, 3.0]))
    assert separated == pytest.approx((3 + 3 + 2.5) / 9)


@pytest.mark.parametrize("accountant", ["prv", "rdp"])
@pytest.mark.parametrize(
    ("epsilon", "delta", "rate", "epochs"),
    [(3.0, 1e-5, 1 / 8, 20), (1.0, 1e-5, 1 / 15, 15), (8.0, 1e-6, 0.01, 30)],
)
def test_fast_calibration_is_exact_by_the_named_accountant(
    accountant: str, epsilon: float, delta: float, rate: float, epochs: int
) -> None:
    from opacus.accountants import create_accountant

    result = calibrate(epsilon, delta, rate, epochs, accountant)
    tracker = create_accountant(mechanism=accountant)
    tracker.history = [(result.noise_multiplier, rate, int(epochs / rate))]
    exact = tracker.get_epsilon(delta=delta)
    assert result.epsilon == exact, "the epsilon reported is the accountant's own"
    assert epsilon - 0.01 <= exact <= epsilon
    assert epsilon_of([(result.noise_multiplier, rate, int(epochs / rate))], delta, accountant) == exact
    assert 1 <= result.evaluations <= 6, "few evaluations of the named accountant"


def test_card_epsilon_after_fast_calibration_is_the_prv_accountants() -> None:
    from opacus.accountants import PRVAccountant

    from tests.support import blobs
    from vault.train import TrainConfig
    from vault.train.engine import train

    outcome = train(blobs(n=120), TrainConfig(model="scatternet", epochs=2, batch_size=20, seed=2))
    tracker = PRVAccountant()
    tracker.history = list(outcome.dp.history)
    assert outcome.dp.accountant == "prv"
    assert outcome.dp.epsilon == tracker.get_epsilon(delta=outcome.dp.delta)
    assert 2.99 <= outcome.dp.epsilon <= 3.0


def test_the_noise_search_lands_in_the_window_from_either_side() -> None:
    from vault.privacy.accounting import solve

    for start in (0.01, 1.0, 1000.0):  # far below, near, and where the epsilon reads 0
        sigma, value, evaluations = solve(lambda s: 0.0 if s > 100 else 50 / s, 3.0, start, 0.01)
        assert 2.99 <= value <= 3.0 and value == 50 / sigma and evaluations <= 12


@pytest.mark.parametrize("accountant", ["prv", "rdp"])
def test_the_calibrations_epsilon_is_remembered_for_the_same_history(accountant: str) -> None:
    """The card's epsilon of a run is the calibration's own evaluation, not a second one (a PRV
    evaluation takes a tenth of a second): the history it accounted is remembered, under its
    delta and accountant only."""
    from vault.privacy import accounting

    result = calibrate(2.5, 1e-5, 0.05, 3, accountant)
    key = ((result.noise_multiplier, 0.05, 60),)
    assert accounting._EPSILONS[(key, 1e-5, accountant)] == result.epsilon
    assert (key, 1e-6, accountant) not in accounting._EPSILONS
    assert epsilon_of(list(key), 1e-5, accountant) == result.epsilon


@pytest.mark.parametrize("target", [0.0, -1.0, math.nan, math.inf])
def test_a_target_epsilon_that_is_not_positive_and_finite_is_refused(target: float) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        calibrate(target, 1e-5, 0.05, 3, "rdp")


def test_an_epsilon_out_of_reach_is_refused_with_what_to_change() -> None:
    from vault.errors import UsageError

    with pytest.raises(UsageError, match="cannot be reached at delta 1e-05") as caught:
        noise_multiplier_for(1e-4, 1e-5, 1.0, 1000, "rdp")  # would need a noise multiplier over 1e6
    assert "raise --epsilon" in caught.value.hint
    with pytest.raises(UsageError, match="unknown accountant 'moments'") as caught:
        noise_multiplier_for(3.0, 1e-5, 0.05, 3, "moments")
    assert "prv" in caught.value.hint and "rdp" in caught.value.hint


def test_the_small_sums_delta_rate_and_steps() -> None:
    from vault.privacy.accounting import poisson_sample_rate, steps_per_epoch

    assert default_delta(0) == default_delta(1) == default_delta(10_000) == 1e-5
    assert default_delta(20_000) == pytest.approx(5e-6) and default_delta(10**6) == pytest.approx(1e-7)
    assert poisson_sample_rate(100, 30) == 0.25 and poisson_sample_rate(100, 25) == 0.25
    assert poisson_sample_rate(101, 25) == 0.2 and poisson_sample_rate(10, 50) == 1.0
    assert steps_per_epoch(0.25) == 4 and steps_per_epoch(0.2) == 5 and steps_per_epoch(1 / 3) == 3


def test_a_history_is_composed_without_its_empty_runs() -> None:
    one = epsilon_of([(1.1, 0.05, 100)], 1e-5, "rdp")
    assert epsilon_of([], 1e-5, "rdp") == 0.0 and epsilon_of([(1.1, 0.05, 0)], 1e-5, "prv") == 0.0
    assert epsilon_of([(1.1, 0.05, 100), (0.5, 0.5, 0)], 1e-5, "rdp") == one
    both = epsilon_of([(1.1, 0.05, 100), (1.1, 0.05, 100)], 1e-5, "rdp")
    assert both == pytest.approx(epsilon_of([(1.1, 0.05, 200)], 1e-5, "rdp"), rel=1e-9) and both > one
    assert epsilon_of([(1.1, 0.05, 100)], 1e-6, "rdp") > one, "delta is part of the answer"


def test_the_running_bound_grows_past_its_first_table_and_has_no_ceiling_unless_given() -> None:
    bound = RunningBound(1.2, 0.05, 1e-5)
    assert bound.epsilon(-3) == 0.0
    for steps in (1, 70, 500, 3000):  # each beyond the table the one before it filled
        assert bound.epsilon(steps) == pytest.approx(epsilon_of([(1.2, 0.05, steps)], 1e-5, "rdp"), rel=1e-9)
    assert bound.epsilon(3000) > 2.5, "no ceiling was given"
    assert RunningBound(0.0, 0.05, 1e-5).epsilon(10) == math.inf, "no noise is no privacy"


def test_the_noise_search_raises_when_no_noise_is_enough_and_stops_within_budget() -> None:
    from vault.privacy import accounting
    from vault.privacy.accounting import solve

    with pytest.raises(ValueError, match="budget is too low"):
        solve(lambda s: 5.0, 3.0, 1.0, 0.01)  # always over budget
    calls: list[float] = []

    def below(sigma: float) -> float:  # always within budget, never in the window
        calls.append(sigma)
        return 1.0 / sigma if sigma > 1 else 2.0

    sigma, value, evaluations = solve(below, 3.0, 5.0, 0.01)
    assert evaluations == len(calls) == accounting.MAX_EVALUATIONS
    assert value == below(sigma) <= 3.0 and sigma == min(calls), "the least noise found within budget"


def test_the_noise_search_crosses_flat_and_infinite_stretches() -> None:
    """An accountant's epsilon can be infinite for small noise and flat over a stretch (PRV's grid,
    RDP's order list); the search must neither crawl through the one nor divide by the other."""
    from vault.privacy.accounting import solve

    def infinite_then_flat(s: float) -> float:
        return math.inf if s < 3 else (5.0 if s < 6 else 50 / s)

    sigma, value, evaluations = solve(infinite_then_flat, 3.0, 1.0, 0.01)
    assert 2.99 <= value <= 3.0 and value == infinite_then_flat(sigma) and evaluations <= 8
    sigma, value, evaluations = solve(lambda s: 5.0 if s < 2 else 8.0 / s, 3.0, 1.0, 0.01)
    assert 2.99 <= value <= 3.0 and value == 8.0 / sigma and evaluations <= 8


def test_a_ledger_of_repeated_runs_is_accounted_as_their_steps_together() -> None:
    """Runs of one recipe compose as one entry with their steps added (the mechanism is the same,
    and PRV composes each entry with an FFT of its own: seconds for a long ledger). In any order."""
    a, b = (1.1, 0.1, 150), (0.9, 0.05, 300)
    for accountant in ("prv", "rdp"):
        together = epsilon_of([(1.1, 0.1, 450), b], 1e-5, accountant)
        assert epsilon_of([a, b, a, a], 1e-5, accountant) == together
        assert epsilon_of([a, a, b, a, (1.1, 0.1, 0)], 1e-5, accountant) == together
        assert epsilon_of([b, a, a, a], 1e-5, accountant) == epsilon_of(
            [b, (1.1, 0.1, 450)], 1e-5, accountant
        )
        assert together > epsilon_of([(1.1, 0.1, 300), b], 1e-5, accountant)


def test_a_history_is_accounted_by_prv_unless_another_accountant_is_named() -> None:
    from vault.errors import UsageError
    from vault.privacy.accounting import check_accountant

    history = [(1.1, 0.05, 120)]
    assert epsilon_of(history, 1e-5) == epsilon_of(history, 1e-5, "prv") < epsilon_of(history, 1e-5, "rdp")
    with pytest.raises(UsageError, match="unknown accountant 'PRV'") as caught:
        check_accountant("PRV")
    assert caught.value.hint == "choose one of: prv, rdp"


def test_an_accounted_history_is_remembered_under_its_own_key_and_reused() -> None:
    from vault.privacy import accounting

    history = [(1.3, 0.04, 77), (1.3, 0.04, 23)]
    epsilon = epsilon_of(history, 2e-6, "rdp")
    key = (((1.3, 0.04, 100),), 2e-6, "rdp")  # the runs merged, then delta and accountant
    assert accounting._EPSILONS[key] == epsilon
    accounting._EPSILONS[key] = 123.0  # what the process computed before is what it answers
    try:
        assert epsilon_of(history, 2e-6, "rdp") == 123.0
        assert epsilon_of(history, 2e-6, "prv") != 123.0 and epsilon_of(history, 3e-6, "rdp") != 123.0
    finally:
        del accounting._EPSILONS[key]


def test_the_running_bound_is_exact_at_every_step_in_order() -> None:
    from opacus.accountants.analysis import rdp
    from opacus.accountants.rdp import RDPAccountant

    orders = RDPAccountant.DEFAULT_ALPHAS
    per_step = rdp.compute_rdp(q=0.1, noise_multiplier=1.0, steps=1, orders=orders)
    bound = RunningBound(1.0, 0.1, 1e-5)  # step by step, as a run asks: across each table's end
    for steps in range(1, 301):
        exact, _ = rdp.get_privacy_spent(orders=orders, rdp=per_step * steps, delta=1e-5)
        assert bound.epsilon(steps) == pytest.approx(exact, rel=1e-9), steps

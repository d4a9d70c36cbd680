"""`train --tune K`: the random-stopping bound against Papernot and Steinke's closed form and Google's
dp-accounting, its calibration, the number of candidates, and the option's checks."""

from __future__ import annotations

import math
import random

import pytest

from vault.errors import UsageError
from vault.privacy import tuning


def test_random_stopping_matches_the_papers_closed_form() -> None:
    """Theorem 2, eta = 1, gamma = 1/K, on a pure Gaussian curve eps(l) = l / (2 s^2), by hand."""
    at = [1.5, 2.0, 4.0, 8.0, 16.0, 32.0]
    s, k = 2.0, 5
    rdp = [a / (2 * s * s) for a in at]
    constant = 2 * min((1 - 1 / a) * a / (2 * s * s) + math.log(k) / a for a in at)
    by_hand = [a / (2 * s * s) + math.log(k) / (a - 1) + constant for a in at]
    by_hand = [min(by_hand[j:]) for j in range(len(at))]  # non-decreasing in the order
    assert tuning.random_stopping_rdp(at, rdp, k) == pytest.approx(by_hand, rel=1e-12)


def test_random_stopping_matches_dp_accounting() -> None:
    dp_accounting = pytest.importorskip("dp_accounting")
    from dp_accounting import dp_event
    from dp_accounting.rdp import rdp_privacy_accountant

    at = tuning.orders()
    history, score_noise, mean = [(1.3, 0.05, 400)], 2.6, 6
    ours = tuning.random_stopping_rdp(at, tuning.candidate_rdp(history, score_noise, at), mean)
    theirs = rdp_privacy_accountant._compute_rdp_repeat_and_select(
        at, tuning.candidate_rdp(history, score_noise, at), mean, 1
    )
    assert ours == pytest.approx(list(theirs), rel=1e-12)
    # the whole event through dp-accounting's own accountant: training, score, random stopping
    candidate = dp_event.ComposedDpEvent(
        [
            dp_event.SelfComposedDpEvent(
                dp_event.PoissonSampledDpEvent(0.05, dp_event.GaussianDpEvent(1.3)), 400
            ),
            dp_event.GaussianDpEvent(score_noise),
        ]
    )
    accountant = dp_accounting.rdp.RdpAccountant(orders=list(at))
    accountant.compose(dp_event.RepeatAndSelectDpEvent(candidate, mean, 1))
    assert tuning.curve_epsilon(at, ours, 1e-5) == pytest.approx(accountant.get_epsilon(1e-5), rel=1e-3)


def test_tuned_calibration_reaches_the_target_total() -> None:
    sigma, epsilon = tuning.calibrate(3.0, 1e-5, 0.1, 150, 4)
    curve = tuning.tuned_curve([(sigma, 0.1, 150)], 4)
    assert epsilon == tuning.curve_epsilon(tuning.orders(), curve, 1e-5)
    assert 2.99 <= epsilon <= 3.0
    # the choice costs: one run at the same noise is cheaper than the tuned total
    single = tuning.curve_epsilon(
        tuning.orders(), tuning.gaussian_history_rdp([(sigma, 0.1, 150)], tuning.orders()), 1e-5
    )
    assert single < epsilon - 0.3


def test_a_target_below_the_selections_own_cost_is_refused() -> None:
    with pytest.raises(ValueError, match="costs epsilon"):
        tuning.calibrate(0.1, 1e-5, 0.1, 150, 64)


def test_the_number_of_candidates_is_geometric_with_mean_k() -> None:
    from vault.train.tuning import draw_candidates

    rng = random.Random(7)
    draws = [draw_candidates(4, rng) for _ in range(20000)]
    assert min(draws) == 1
    assert sum(draws) / len(draws) == pytest.approx(4.0, rel=0.04)
    assert draws.count(1) / len(draws) == pytest.approx(0.25, abs=0.015), "P(K = 1) = 1/K"


@pytest.mark.parametrize("value", [1, 0, 65, True, 2.5, "4"])
def test_tune_is_a_whole_number_from_two(value: object) -> None:
    from vault.train.tuning import check_tune

    with pytest.raises(UsageError, match="--tune"):
        check_tune(value)
    assert check_tune(2) == 2

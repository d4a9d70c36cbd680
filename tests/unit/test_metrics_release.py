"""The DP release of held-out figures: the analytic Gaussian calibration against an independent one
and a brute-force integral, the noise it draws, the figures derived from noisy counts, and its cost
as the ledger composes it."""

from __future__ import annotations

import math
import random
import statistics

import numpy as np
import pytest

from tests.support import google_epsilon
from vault.privacy import ledger, release, tuning
from vault.train.metrics import metrics_from_confusion

TARGETS = [(0.5, 1e-5), (1.0, 1e-6), (0.1, 1e-3), (3.0, 1e-5), (8.0, 1e-7)]


def brute_force_delta(sigma: float, epsilon: float) -> float:
    """The hockey-stick divergence of N(1, sigma^2) from N(0, sigma^2), integrated on a grid."""
    x = np.linspace(-40 * sigma - 20, 40 * sigma + 20, 2_000_001)
    p = np.exp(-((x - 1) ** 2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
    q = np.exp(-(x**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
    return float(np.trapezoid(np.maximum(0.0, p - math.exp(epsilon) * q), x))


@pytest.mark.parametrize(("epsilon", "delta"), TARGETS)
def test_sigma_matches_google_dp_accounting(epsilon: float, delta: float) -> None:
    import dp_accounting

    ours = release.gaussian_sigma(epsilon, delta)
    theirs = dp_accounting.get_sigma_gaussian(epsilon, delta)
    assert ours == pytest.approx(theirs, rel=1e-3)
    assert release.gaussian_delta(ours, epsilon) <= delta, "rounded towards more noise, never less"


@pytest.mark.parametrize(("sigma", "epsilon"), [(0.8, 1.0), (2.0, 1.0), (5.0, 0.5), (10.0, 0.3)])
def test_the_closed_form_delta_matches_a_brute_force_integral(sigma: float, epsilon: float) -> None:
    exact = release.gaussian_delta(sigma, epsilon)
    assert exact == pytest.approx(brute_force_delta(sigma, epsilon), rel=1e-4, abs=1e-12)


def test_the_calibrated_sigma_is_the_least_that_holds() -> None:
    sigma = release.gaussian_sigma(0.5, 1e-5)
    assert release.gaussian_delta(sigma, 0.5) <= 1e-5 < release.gaussian_delta(sigma * 0.999, 0.5)


@pytest.mark.parametrize(
    ("epsilon", "delta"), [(0.0, 1e-5), (-1.0, 1e-5), (math.nan, 1e-5), (1.0, 0.0), (1.0, 1.0)]
)
def test_a_target_that_cannot_be_met_is_refused(epsilon: float, delta: float) -> None:
    with pytest.raises(ValueError, match="metrics"):
        release.gaussian_sigma(epsilon, delta)


def test_the_noise_has_the_calibrated_spread() -> None:
    """A factor-of-2 error in the noise's scale in either direction fails (the sample std of 20,000
    draws lies within 3% of sigma with overwhelming probability)."""
    plan = release.plan_release(0.5, 1e-5, 1000)
    draws = release.gaussian_noise(20_000, plan.sigma)
    assert abs(statistics.fmean(draws)) < 0.05 * plan.sigma
    assert statistics.pstdev(draws) == pytest.approx(plan.sigma, rel=0.03)


def test_noisy_counts_move_each_cell_by_the_calibrated_noise() -> None:
    sigma = release.gaussian_sigma(1.0, 1e-5)
    exact = [[10_000] * 30 for _ in range(30)]  # far from 0: no clamping
    noisy = release.noisy_counts(exact, sigma)
    errors = [
        n - e for row_n, row_e in zip(noisy, exact, strict=True) for n, e in zip(row_n, row_e, strict=True)
    ]
    assert statistics.pstdev(errors) == pytest.approx(math.sqrt(sigma**2 + 1 / 12), rel=0.15)
    assert noisy != exact


def test_the_noise_does_not_follow_any_seed() -> None:
    random.seed(7)
    first = release.gaussian_noise(8, 3.0)
    random.seed(7)
    assert release.gaussian_noise(8, 3.0) != first, "the OS CSPRNG, not the random module's state"


@pytest.mark.parametrize("sigma", [0.5, 5.0, 500.0])
def test_figures_from_noisy_counts_are_consistent(sigma: float) -> None:
    exact = [[12, 1, 0], [3, 9, 2], [0, 0, 0]]
    for _ in range(50):
        counts = release.noisy_counts(exact, sigma)
        figures = metrics_from_confusion(counts, ["a", "b", "c"])
        assert all(v >= 0 and isinstance(v, int) for row in counts for v in row)
        assert figures["samples"] == sum(map(sum, counts))
        assert figures["accuracy"] is None or 0.0 <= figures["accuracy"] <= 1.0
        assert figures["macro_f1"] is None or 0.0 <= figures["macro_f1"] <= 1.0
        for row, per_class in zip(counts, figures["per_class"], strict=True):
            assert per_class["support"] == sum(row)
            assert all(0.0 <= per_class[k] <= 1.0 for k in ("precision", "recall", "f1"))


def test_the_exact_figures_come_back_from_exact_counts() -> None:
    import torch

    from vault.train.metrics import classification_metrics

    truth = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    predicted = torch.tensor([0, 1, 1, 1, 2, 0, 2])
    exact = classification_metrics(predicted, truth, ["a", "b", "c"])
    assert metrics_from_confusion(exact["confusion"], ["a", "b", "c"]) == exact
    assert exact["accuracy"] == pytest.approx(5 / 7)


def test_the_release_is_the_gaussian_mechanism_in_the_ledger() -> None:
    """As a history entry (sigma, 1, 1) the release has the Gaussian mechanism's exact RDP curve,
    and the ledger composes it with a training run as dp-accounting does."""
    plan = release.plan_release(0.5, 1e-5, 400)
    orders = tuning.orders()
    assert tuning.gaussian_history_rdp(plan.history, orders) == pytest.approx(
        release.gaussian_rdp(plan.sigma, orders), rel=1e-12
    )
    alone = ledger.compose([plan.history], 1e-5, "prv")
    assert 0.5 <= alone <= 0.515, "PRV bounds the exact epsilon from above, within its error"
    training = [(1.1, 0.01, 500)]
    composed = ledger.compose([training, plan.history], 1e-5, "prv")
    independent = google_epsilon([*training, plan.history[0]], 1e-5, "pld")
    assert composed == pytest.approx(independent, rel=0.01)
    assert composed > ledger.compose([training], 1e-5, "prv")


def test_the_faces_name_the_mode_beside_a_figure() -> None:
    plan = release.plan_release(0.5, 1e-5, 200)
    noised = {"mode": "noised", **plan.to_json()}
    assert release.text_marker({"mode": "marked"}) == "exact, outside the DP guarantee"
    assert release.text_marker(noised) == f"DP-noised: epsilon 0.5 at delta 1e-05, sigma {plan.sigma:.4g}"
    assert release.text_marker({"mode": "noised", "sigma": None}) == "noised card: no held-out records"
    assert release.text_marker(None) == ""

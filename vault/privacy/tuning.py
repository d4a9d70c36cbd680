"""What choosing among tuning runs costs: Papernot and Steinke's random stopping ("Hyperparameter
Tuning with Renyi Differential Privacy", ICLR 2022, Theorem 2), in Renyi DP.

A tuned run repeats one private candidate K times, K drawn from a geometric distribution (the
truncated negative binomial with eta = 1) of mean `mean`, and keeps the best by a noisy score. One
candidate draws a learning rate at random from the grid, trains with DP-SGD (an accountant history
of the subsampled Gaussian mechanism) and scores itself on held-out records: the count of correct
predictions (sensitivity 1: adding or removing a record changes it by at most 1) plus Gaussian noise
of standard deviation `score_noise`. The held-out records are private records too; the score's
Gaussian mechanism is composed with the training's (RDP adds up), with no assumption on how the
records were split. If a candidate is (lambda, eps(lambda))-RDP at every order, the tuned run is

    eps'(lambda) = eps(lambda) + log(mean) / (lambda - 1)
                   + (1 + eta) * min over orders l of [ (1 - 1/l) eps(l) + log(1/gamma) / l ]

with gamma = 1/mean for the geometric distribution, and RDP grows with the order, so each order also
takes the smallest bound of the orders above it. The (epsilon, delta) figure is Opacus' conversion
of the curve. Curves are kept at Opacus' RDP orders; the ledger composes them by adding.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence

from vault.privacy import opacus_parts

ETA = 1.0  # geometric: P(K = k) = gamma (1 - gamma)^(k - 1), E[K] = 1 / gamma
DISTRIBUTION = "geometric (truncated negative binomial, eta 1)"
METHOD = "random stopping (Papernot and Steinke, ICLR 2022, Theorem 2)"
SCORE_NOISE_RATIO = 2.0  # the score's noise, in records, per unit of the training's noise multiplier
MIN_SCORE_NOISE = 1.0


def orders() -> tuple[float, ...]:
    """Opacus' RDP orders, the ones every curve is kept at."""
    return tuple(float(a) for a in opacus_parts.module("opacus.accountants.rdp").RDPAccountant.DEFAULT_ALPHAS)


def score_noise(noise_multiplier: float) -> float:
    """The standard deviation, in records, of the Gaussian noise on a candidate's correct count."""
    return max(MIN_SCORE_NOISE, SCORE_NOISE_RATIO * noise_multiplier)


def gaussian_history_rdp(history: Iterable[Sequence[float]], at: Sequence[float]) -> list[float]:
    """RDP at the orders `at` of an accountant history (subsampled Gaussian steps), composed."""
    rdp = opacus_parts.module("opacus.accountants.analysis.rdp")
    total = [0.0] * len(at)
    for noise, rate, steps in history:
        if int(steps) <= 0:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            part = rdp.compute_rdp(q=float(rate), noise_multiplier=float(noise), steps=int(steps), orders=at)
        total = [a + float(b) for a, b in zip(total, part, strict=True)]
    return total


def candidate_rdp(history: Iterable[Sequence[float]], noise: float, at: Sequence[float]) -> list[float]:
    """One candidate: its training's history and the Gaussian score (sensitivity 1, `noise`)."""
    train = gaussian_history_rdp(history, at)
    return [t + a / (2 * noise * noise) for t, a in zip(train, at, strict=True)]


def random_stopping_rdp(at: Sequence[float], rdp: Sequence[float], mean: float) -> list[float]:
    """Theorem 2 with the geometric distribution of mean `mean` (>= 1): the tuned run's RDP curve."""
    if not mean >= 1:
        raise ValueError(f"the mean number of candidates must be at least 1, got {mean}")
    gamma = 1.0 / mean
    constant = (1 + ETA) * min(
        (1 - 1 / a) * e + math.log(1 / gamma) / a for a, e in zip(at, rdp, strict=True)
    )
    raw = [
        e + math.log(mean) / (a - 1) + constant if a > 1 else math.inf for a, e in zip(at, rdp, strict=True)
    ]
    out = list(raw)
    for i, a in enumerate(at):  # RDP is non-decreasing in the order
        out[i] = min(raw[j] for j, b in enumerate(at) if b >= a)
    return out


def curve_epsilon(at: Sequence[float], rdp: Sequence[float], delta: float) -> float:
    """Epsilon at `delta` of an RDP curve (Opacus' conversion)."""
    analysis = opacus_parts.module("opacus.accountants.analysis.rdp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        epsilon, _ = analysis.get_privacy_spent(orders=list(at), rdp=list(rdp), delta=delta)
    return float(epsilon)


def tuned_curve(history: Iterable[Sequence[float]], mean: float) -> tuple[float, ...]:
    """The tuned run's RDP curve at `orders()` for candidates with this training history."""
    history = list(history)
    at = orders()
    noise = score_noise(float(history[0][0])) if history else MIN_SCORE_NOISE
    return tuple(random_stopping_rdp(at, candidate_rdp(history, noise, at), mean))


def compose(
    histories: Iterable[Iterable[Sequence[float]]], curves: Iterable[Sequence[float]], delta: float
) -> float:
    """Epsilon at `delta` of Gaussian histories and tuned runs' curves run on the same records."""
    at = orders()
    total = gaussian_history_rdp([entry for history in histories for entry in history], at)
    for curve in curves:
        if len(curve) != len(at):
            raise ValueError("a tuned charge's RDP curve is not at Opacus' orders")
        total = [t + float(c) for t, c in zip(total, curve, strict=True)]
    return curve_epsilon(at, total, delta)


def calibrate(
    epsilon: float, delta: float, sample_rate: float, steps: int, mean: float
) -> tuple[float, float]:
    """(noise multiplier, tuned epsilon): the noise whose tuned run's epsilon lies within 0.01 below
    `epsilon`. Raises ValueError when no noise reaches it (the selection's own cost, log(mean) over
    the order, and the conversion's log(1/delta), do not shrink with noise)."""
    from vault.privacy.accounting import EPSILON_TOLERANCE, MAX_SIGMA, solve

    def tuned(sigma: float) -> float:
        return curve_epsilon(orders(), tuned_curve([(sigma, sample_rate, steps)], mean), delta)

    floor = tuned(MAX_SIGMA)
    if floor >= epsilon - EPSILON_TOLERANCE:
        raise ValueError(
            f"choosing among {mean:g} candidates costs epsilon {floor:.3g} even with no training"
        )
    sigma, value, _ = solve(tuned, epsilon, 1.0, EPSILON_TOLERANCE)
    return sigma, value

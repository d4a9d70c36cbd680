"""Held-out figures released under DP: the Gaussian mechanism on a confusion matrix's counts.

Neighbouring relation: add or remove one held-out record. One record falls in exactly one cell of
the confusion matrix (its true class, its predicted class), so the matrix moves by 1 in one cell:
L2 sensitivity 1. Each cell gets independent Gaussian noise of standard deviation `sigma`; accuracy,
per-class precision/recall/F1, support and macro-F1 are then computed from the noisy counts
(clamped at 0 and rounded), which is post-processing and costs nothing more.

Calibration is exact for the Gaussian mechanism (Balle and Wang, "Improving the Gaussian Mechanism
for Differential Privacy", ICML 2018, Theorem 8): the mechanism is (epsilon, delta)-DP if and only if

    Phi(1 / (2 sigma) - epsilon sigma) - e^epsilon Phi(-1 / (2 sigma) - epsilon sigma) <= delta,

and `gaussian_sigma` finds the least such sigma by bisection. The ledger keeps the release as one
accountant history entry, (sigma, sample rate 1, 1 step): Opacus' accountants take a sample rate of
1 as the plain Gaussian mechanism (its RDP curve is exactly alpha / (2 sigma^2)), so the release
composes with training runs by the ledger's own accountant, PRV or RDP.

The noise comes from the operating system's CSPRNG (`random.SystemRandom`), never from the run's
seed, so a reproducible run does not make it predictable.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SENSITIVITY = 1.0  # L2, add/remove one held-out record: one cell of the matrix moves by 1
DEFAULT_EPSILON = 0.5  # the policy's card_metrics_epsilon when it names none
NEIGHBOURING = "add or remove one held-out record"
MECHANISM = "Gaussian mechanism on the confusion-matrix counts (L2 sensitivity 1)"
CALIBRATION = "analytic Gaussian mechanism (Balle and Wang, ICML 2018, Theorem 8), exact"
NOISE_SOURCE = "os-csprng (random.SystemRandom), never the run's seed"


def _phi(x: float) -> float:
    """The standard normal CDF."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def gaussian_delta(sigma: float, epsilon: float, sensitivity: float = SENSITIVITY) -> float:
    """The least delta at which the Gaussian mechanism with noise `sigma` is epsilon-DP (exact)."""
    if not sigma > 0:
        return 1.0
    a = sensitivity / (2.0 * sigma)
    b = epsilon * sigma / sensitivity
    return max(0.0, _phi(a - b) - math.exp(epsilon) * _phi(-a - b))


def gaussian_sigma(epsilon: float, delta: float, sensitivity: float = SENSITIVITY) -> float:
    """The least noise (to a relative 1e-12, rounded up) that makes the Gaussian mechanism
    (epsilon, delta)-DP. Raises ValueError for a target outside (0, inf) x (0, 1)."""
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"the metrics epsilon must be a positive number, got {epsilon}")
    if not 0 < delta < 1:
        raise ValueError(f"the metrics delta must lie in (0, 1), got {delta}")
    low, high = 1e-6 * sensitivity, sensitivity
    while gaussian_delta(high, epsilon, sensitivity) > delta:  # delta falls as sigma grows
        low, high = high, 2.0 * high
    while high - low > 1e-12 * high:
        middle = (low + high) / 2
        if gaussian_delta(middle, epsilon, sensitivity) > delta:
            low = middle
        else:
            high = middle
    return high


def gaussian_rdp(sigma: float, orders: Sequence[float]) -> list[float]:
    """The Gaussian mechanism's RDP curve (sensitivity 1): alpha / (2 sigma^2) at each order."""
    return [float(a) / (2.0 * sigma * sigma) for a in orders]


@dataclass(frozen=True)
class MetricsRelease:
    """One run's release of its held-out figures: the budget, the noise it implies, the records."""

    epsilon: float
    delta: float
    sigma: float
    records: int  # held-out records the figures are computed from

    @property
    def history(self) -> tuple[tuple[float, float, int], ...]:
        """The release as the ledger composes it: the Gaussian mechanism, sample rate 1, one step."""
        return ((self.sigma, 1.0, 1),)

    def to_json(self) -> dict[str, Any]:
        return {
            "epsilon": self.epsilon,
            "delta": self.delta,
            "sigma": self.sigma,
            "records": self.records,
            "sensitivity_l2": SENSITIVITY,
            "neighbouring": NEIGHBOURING,
            "mechanism": MECHANISM,
            "calibration": CALIBRATION,
            "noise_source": NOISE_SOURCE,
        }


def plan_release(epsilon: float, delta: float, records: int) -> MetricsRelease:
    """The release of figures over `records` held-out records at (epsilon, delta)."""
    return MetricsRelease(float(epsilon), float(delta), gaussian_sigma(epsilon, delta), int(records))


def gaussian_noise(count: int, sigma: float, rng: random.Random | None = None) -> list[float]:
    """`count` independent draws of N(0, sigma^2) from the OS CSPRNG (or `rng`, for tests)."""
    source = rng if rng is not None else random.SystemRandom()
    return [source.gauss(0.0, sigma) for _ in range(count)]


def noisy_counts(
    matrix: Sequence[Sequence[int]], sigma: float, rng: random.Random | None = None
) -> list[list[int]]:
    """The matrix with Gaussian noise of std `sigma` added to every cell, then clamped at 0 and
    rounded (post-processing)."""
    rows = [list(row) for row in matrix]
    noise = iter(gaussian_noise(sum(len(r) for r in rows), sigma, rng))
    return [[max(0, round(float(v) + next(noise))) for v in row] for row in rows]


def text_marker(block: dict[str, Any] | None) -> str:
    """How a face says which figures it shows: a few words after a figure."""
    if not block:
        return ""
    if block["mode"] == "marked":
        return "exact, outside the DP guarantee"
    if block.get("sigma") is None:
        return "noised card: no held-out records"
    return (
        f"DP-noised: epsilon {block['epsilon']:g} at delta {block['delta']:.3g}, sigma {block['sigma']:.4g}"
    )

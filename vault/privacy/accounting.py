"""Privacy arithmetic for one run, all through Opacus' accountants: noise calibration, epsilon of
an accountant history, and a cheap running bound for progress reports.

A history is Opacus' own: a list of (noise_multiplier, sample_rate, steps) for the Poisson-sampled
Gaussian mechanism, the form the ledger composes across runs.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from vault.errors import UsageError
from vault.vocabulary import ACCOUNTANTS

History = list[tuple[float, float, int]]


def default_delta(records: int) -> float:
    """min(1e-5, 1/(10 n)): well below 1/n, the point where leaking one record outright fits."""
    return min(1e-5, 1.0 / (10 * max(records, 1)))


def check_accountant(name: str) -> str:
    if name not in ACCOUNTANTS:
        raise UsageError(f"unknown accountant {name!r}", f"choose one of: {', '.join(ACCOUNTANTS)}")
    return name


def poisson_sample_rate(records: int, batch_size: int) -> float:
    """The sample rate Opacus' DPDataLoader uses for a logical batch size: 1 / ceil(n / B)."""
    return 1.0 / math.ceil(records / batch_size)


def steps_per_epoch(sample_rate: float) -> int:
    return int(1 / sample_rate)


EPSILON_TOLERANCE = 0.01  # the calibrated epsilon lies in [target - this, target], as in Opacus
MAX_SIGMA = 1e6


@dataclass(frozen=True)
class Calibration:
    noise_multiplier: float
    epsilon: float  # the named accountant's epsilon at the noise multiplier, the one the card shows
    evaluations: int  # of the named accountant (the RDP bracket costs milliseconds)


def _accountant_epsilon(accountant: str, delta: float, sample_rate: float, steps: int) -> Callable:
    from opacus.accountants import create_accountant

    tracker = create_accountant(mechanism=accountant)

    def epsilon(sigma: float) -> float:
        tracker.history = [(sigma, sample_rate, steps)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(tracker.get_epsilon(delta=delta))

    return epsilon


def calibrate(epsilon: float, delta: float, sample_rate: float, epochs: int, accountant: str) -> Calibration:
    """The noise multiplier whose epsilon, by the named accountant, is within EPSILON_TOLERANCE
    below `epsilon` after `epochs` of Poisson-sampled steps (Opacus' step count, int(epochs / q)).

    RDP is cheap and never below PRV's epsilon, so the RDP calibration is an upper end of the
    bracket; for PRV, false position (Illinois) on that bracket needs a handful of PRV evaluations
    where Opacus' bisection from [0, 20] needs a dozen or more. Raises ValueError when no noise
    below MAX_SIGMA reaches the target."""
    steps = int(epochs / sample_rate)
    if not math.isfinite(epsilon) or epsilon <= 0:
        raise ValueError(f"the target epsilon must be positive, got {epsilon}")
    rdp = _accountant_epsilon("rdp", delta, sample_rate, steps)
    low, high = 0.0, 1.0  # bisection on RDP (each evaluation well under a millisecond)
    while rdp(high) > epsilon:
        low, high = high, 2 * high
        if high > MAX_SIGMA:
            raise ValueError("the privacy budget is too low")
    while high - low > 1e-4 * high:
        middle = (low + high) / 2
        low, high = (middle, high) if rdp(middle) > epsilon else (low, middle)
    if accountant == "rdp":
        return Calibration(high, rdp(high), 0)
    named = _accountant_epsilon(accountant, delta, sample_rate, steps)
    evaluations = 0

    def gap(sigma: float) -> float:  # positive: over budget
        nonlocal evaluations
        evaluations += 1
        return named(sigma) - epsilon

    hi_gap = gap(high)
    while hi_gap > 0:  # PRV above RDP (its error bound): widen upwards
        high *= 1.25
        hi_gap = gap(high)
    low = 0.5 * high
    lo_gap = gap(low)
    while lo_gap <= 0:
        high, hi_gap, low = low, lo_gap, low / 2
        lo_gap = gap(low)
    side, true_gap = 0, hi_gap  # Illinois halves the kept end's gap; the true one is kept here
    while -true_gap > EPSILON_TOLERANCE:
        if evaluations >= 40:
            middle = (low + high) / 2
        else:
            middle = high - hi_gap * (high - low) / (hi_gap - lo_gap)
            middle = min(max(middle, low + 1e-9 * high), high - 1e-9 * high)
        value = gap(middle)
        if value > 0:
            low, lo_gap = middle, value
            if side == -1:
                hi_gap /= 2
            side = -1
        else:
            high, hi_gap, true_gap = middle, value, value
            if side == 1:
                lo_gap /= 2
            side = 1
    return Calibration(high, epsilon + true_gap, evaluations)


@functools.lru_cache(maxsize=64)
def noise_multiplier_for(
    epsilon: float, delta: float, sample_rate: float, epochs: int, accountant: str
) -> float:
    """The calibrated noise multiplier (cached: the policy's projection and the run itself ask
    for the same value). The run's epsilon is then computed by the accountant, exactly."""
    check_accountant(accountant)
    try:
        return float(calibrate(epsilon, delta, sample_rate, epochs, accountant).noise_multiplier)
    except ValueError as error:
        raise UsageError(
            f"epsilon {epsilon} cannot be reached at delta {delta:g}: {error}",
            "raise --epsilon, or lower --epochs or --batch-size",
        ) from error


def epsilon_of(history: Iterable[Sequence[float]], delta: float, accountant: str = "prv") -> float:
    """Epsilon at `delta` of a whole history (one run or many), composed by the named accountant."""
    from opacus.accountants import create_accountant

    entries = [(float(s), float(q), int(k)) for s, q, k in history if int(k) > 0]
    if not entries:
        return 0.0
    tracker = create_accountant(mechanism=check_accountant(accountant))
    tracker.history = entries
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(tracker.get_epsilon(delta=delta))


class RunningBound:
    """Epsilon after k steps of one (noise, rate) pair, from RDP computed once and scaled by k.

    A valid upper bound, cheap enough to report after every step (a PRV evaluation takes ~0.1 s);
    the run's final epsilon comes from the chosen accountant (PRV by default, which is tighter).
    """

    def __init__(
        self, noise_multiplier: float, sample_rate: float, delta: float, ceiling: float | None = None
    ) -> None:
        import numpy as np
        from opacus.accountants.analysis import rdp
        from opacus.accountants.rdp import RDPAccountant

        self.orders = np.asarray(RDPAccountant.DEFAULT_ALPHAS, dtype=np.float64)
        self.per_step = np.asarray(
            rdp.compute_rdp(q=sample_rate, noise_multiplier=noise_multiplier, steps=1, orders=self.orders)
        )
        self.delta = delta
        self.ceiling = ceiling
        # Opacus' RDP-to-(epsilon, delta) conversion (rdp.get_privacy_spent) is
        # min over orders of  k * rdp_1 - (log delta + log a) / (a - 1) + log((a - 1) / a);
        # the part without k is fixed, so each step costs one multiply-add and a minimum.
        a = self.orders
        self._offset = -(math.log(delta) + np.log(a)) / (a - 1) + np.log((a - 1) / a)
        self._np = np
        self._table = np.zeros(0)  # epsilon after k steps, at index k, filled as steps come

    def epsilon(self, steps: int) -> float:
        """Epsilon after `steps`; never above `ceiling`, the accountant's epsilon for the whole
        planned run, which bounds every prefix of it (epsilon grows with steps)."""
        if steps <= 0:
            return 0.0
        if steps >= len(self._table):  # epsilons for the next block of steps, in one array operation
            counts = self._np.arange(len(self._table), 2 * steps + 64, dtype=self._np.float64)
            values = counts[:, None] * self.per_step[None, :] + self._offset[None, :]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # all-NaN rows (no privacy) become inf below
                block = self._np.nanmin(values, axis=1)
            self._table = self._np.concatenate(
                [self._table, self._np.where(self._np.isnan(block), math.inf, block)]
            )
        eps = self._table[steps]
        return float(eps) if self.ceiling is None else min(float(eps), self.ceiling)

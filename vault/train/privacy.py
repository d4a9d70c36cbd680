"""Privacy arithmetic for one run, all through Opacus' accountants: noise calibration, epsilon of
an accountant history, and a cheap running bound for progress reports.

A history is Opacus' own: a list of (noise_multiplier, sample_rate, steps) for the Poisson-sampled
Gaussian mechanism, the form the ledger composes across runs.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Iterable, Sequence

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


@functools.lru_cache(maxsize=64)
def noise_multiplier_for(
    epsilon: float, delta: float, sample_rate: float, epochs: int, accountant: str
) -> float:
    """Opacus' get_noise_multiplier, exactly as make_private_with_epsilon calls it (cached: the
    policy's projection and the run itself ask for the same value)."""
    from opacus.accountants.utils import get_noise_multiplier

    check_accountant(accountant)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            noise = get_noise_multiplier(
                target_epsilon=epsilon,
                target_delta=delta,
                sample_rate=sample_rate,
                epochs=epochs,
                accountant=accountant,
            )
    except ValueError as error:
        raise UsageError(
            f"epsilon {epsilon} cannot be reached at delta {delta:g}: {error}",
            "raise --epsilon, or lower --epochs or --batch-size",
        ) from error
    return float(noise)


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

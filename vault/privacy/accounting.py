"""Privacy arithmetic for one run, all through Opacus' accountants: noise calibration, epsilon of
an accountant history, and a cheap running bound for progress reports. Accountants are loaded one
by one (vault/privacy/opacus_parts.py): a PRV run never imports the Gaussian accountant's SciPy.

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
from vault.privacy import opacus_parts
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


def calibrated_steps(epochs: int, sample_rate: float) -> int:
    """The steps a calibration accounts for: Opacus' count for `epochs` at this rate, int(epochs / q)."""
    return int(epochs / sample_rate)


EPSILON_TOLERANCE = 0.01  # the calibrated epsilon lies in [target - this, target], as in Opacus
MAX_SIGMA = 1e6
MAX_EVALUATIONS = 60  # a search that has not reached the window by then keeps its best answer within budget


@dataclass(frozen=True)
class Calibration:
    noise_multiplier: float
    epsilon: float  # the named accountant's epsilon at the noise multiplier, the one the card shows
    evaluations: int  # of the named accountant (the integer-order RDP bracket costs milliseconds)


# Integer orders of Opacus' RDP accountant: their RDP is a finite sum, 3x cheaper than the whole
# list with its fractional orders; the minimum over fewer orders is never below the minimum over
# all of them, so the epsilon they give bounds both RDP's and PRV's from above.
BRACKET_ORDERS = tuple(float(a) for a in range(2, 64))

_EPSILONS: dict[tuple, float] = {}  # exact epsilons already computed: (history, delta, accountant)


def _remember(history: tuple, delta: float, accountant: str, epsilon: float) -> float:
    if len(_EPSILONS) > 256:
        _EPSILONS.clear()
    _EPSILONS[(history, delta, accountant)] = epsilon
    return epsilon


def _accountant_epsilon(accountant: str, delta: float, sample_rate: float, steps: int) -> Callable:
    tracker = opacus_parts.accountant(accountant)

    def epsilon(sigma: float) -> float:
        key = ((float(sigma), float(sample_rate), int(steps)),)
        if (key, delta, accountant) in _EPSILONS:
            return _EPSILONS[(key, delta, accountant)]
        tracker.history = list(key)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _remember(key, delta, accountant, float(tracker.get_epsilon(delta=delta)))

    return epsilon


def _bracket_epsilon(delta: float, sample_rate: float, steps: int) -> Callable:
    rdp = opacus_parts.module("opacus.accountants.analysis.rdp")

    def epsilon(sigma: float) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            per_order = rdp.compute_rdp(
                q=sample_rate, noise_multiplier=sigma, steps=steps, orders=BRACKET_ORDERS
            )
            return float(rdp.get_privacy_spent(orders=BRACKET_ORDERS, rdp=per_order, delta=delta)[0])

    return epsilon


def solve(
    epsilon_at: Callable,
    epsilon: float,
    start: float,
    tolerance: float,
    *,
    slope: float = -1.0,
    seen: list[tuple[float, float]] | None = None,
) -> tuple[float, float, int]:
    """(sigma, its epsilon, evaluations) with epsilon - tolerance <= epsilon_at(sigma) <= epsilon.

    Epsilon falls with sigma roughly as a power of it, so the solver takes secant steps on log
    epsilon against log sigma, aimed at the middle of the window, from `start` with slope -1; it
    keeps a bracket (a sigma over budget, one within) and bisects it when a step leaves it or after
    six steps. Two or three evaluations usually land in the window. `slope` is the first step's
    (d log epsilon / d log sigma); `seen`, when given, receives every (sigma, epsilon) evaluated.
    Raises ValueError when no sigma below MAX_SIGMA is within budget."""
    aim = epsilon - tolerance / 2
    low = high = None  # over budget at low; within budget at high
    sigma, evaluations = start, 0
    previous: tuple[float, float] | None = None
    within: tuple[float, float] | None = None  # the least noise found within budget, and its epsilon
    while True:
        value = epsilon_at(sigma)
        evaluations += 1
        if seen is not None:
            seen.append((sigma, value))
        if epsilon - tolerance <= value <= epsilon:
            return sigma, value, evaluations
        over = value > epsilon or not math.isfinite(value)
        if over:
            low = sigma
        else:
            high = sigma
            within = (sigma, value) if within is None or sigma < within[0] else within
        if evaluations >= MAX_EVALUATIONS and within is not None:
            return within[0], within[1], evaluations  # within budget, if above the window
        if high is None and sigma > MAX_SIGMA:
            raise ValueError("the privacy budget is too low")
        usable = math.isfinite(value) and value > 0
        if usable and previous is not None and previous[0] != sigma:
            rise = math.log(value) - math.log(previous[1])
            run = math.log(sigma) - math.log(previous[0])
            if rise < 0 and run != 0:
                slope = rise / run
        if usable:
            guess = sigma * math.exp((math.log(aim) - math.log(value)) / slope)
        else:
            guess = 2 * sigma if over else sigma / 2
        if low is not None and high is not None:
            if evaluations > 6 or not low < guess < high:
                guess = (low + high) / 2
        elif high is None:
            guess = max(guess, 1.01 * sigma)
        else:
            guess = min(guess, 0.99 * sigma)
        if usable:
            previous = (sigma, value)
        sigma = guess


def _local_slope(seen: list[tuple[float, float]]) -> float:
    """d log epsilon / d log sigma between the two last finite evaluations nearest the answer, or -1."""
    points = sorted(
        (p for p in seen if math.isfinite(p[1]) and p[1] > 0), key=lambda p: abs(p[0] - seen[-1][0])
    )[:2]
    if len(points) == 2 and points[0][0] != points[1][0]:
        slope = (math.log(points[0][1]) - math.log(points[1][1])) / (
            math.log(points[0][0]) - math.log(points[1][0])
        )
        if slope < 0:
            return slope
    return -1.0


_CALIBRATIONS: dict[tuple, Calibration] = {}  # (epsilon, delta, sample rate, epochs, accountant)


def known_calibration(args: tuple) -> Calibration | None:
    """The calibration of these arguments this process already has (its own or a worker's)."""
    return _CALIBRATIONS.get(args)


def remember_epsilon(
    history: Iterable[Sequence[float]], delta: float, accountant: str, epsilon: float
) -> None:
    """Keep an exact epsilon of a history computed elsewhere (vault/privacy/calibration.py's worker)."""
    _remember(merged(history), float(delta), check_accountant(accountant), float(epsilon))


def remember_calibration(args: tuple, found: Calibration) -> None:
    """Keep a calibration and its exact epsilon (vault/privacy/calibration.py's worker's, too)."""
    epsilon, delta, sample_rate, epochs, accountant = args
    if len(_CALIBRATIONS) > 64:
        _CALIBRATIONS.clear()
    _CALIBRATIONS[args] = found
    key = ((float(found.noise_multiplier), float(sample_rate), calibrated_steps(epochs, sample_rate)),)
    _remember(key, delta, accountant, found.epsilon)


def calibrate(epsilon: float, delta: float, sample_rate: float, epochs: int, accountant: str) -> Calibration:
    """The noise multiplier whose epsilon, by the named accountant, is within EPSILON_TOLERANCE
    below `epsilon` after `epochs` of Poisson-sampled steps (Opacus' step count, int(epochs / q)).

    First a bracket from RDP at its integer orders (milliseconds an evaluation, and never below
    the named accountant's epsilon, so its answer is an upper end); then the same secant search
    on the named accountant from there, usually two or three evaluations of it where Opacus'
    `get_noise_multiplier` bisects from [0, 20] with a dozen or more. Raises ValueError when no
    noise below MAX_SIGMA reaches the target."""
    args = (float(epsilon), float(delta), float(sample_rate), int(epochs), str(accountant))
    known = known_calibration(args)
    if known is not None:
        return known
    steps = calibrated_steps(epochs, sample_rate)
    if not math.isfinite(epsilon) or epsilon <= 0:
        raise ValueError(f"the target epsilon must be positive, got {epsilon}")
    bracket = _bracket_epsilon(delta, sample_rate, steps)
    seen: list[tuple[float, float]] = []
    start, _, _ = solve(bracket, epsilon, 1.0, max(EPSILON_TOLERANCE, 0.02 * epsilon), seen=seen)
    named = _accountant_epsilon(accountant, delta, sample_rate, steps)
    slope = _local_slope(seen)
    sigma, value, evaluations = solve(named, epsilon, start, EPSILON_TOLERANCE, slope=slope)
    found = Calibration(sigma, value, evaluations)
    remember_calibration(args, found)
    return found


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


def merged(history: Iterable[Sequence[float]]) -> tuple[tuple[float, float, int], ...]:
    """The same steps with each (noise, rate) pair's steps added up, in the order pairs first appear.

    Composition does not depend on order, and Opacus' accountants record consecutive steps of one
    pair as one entry in the same way, so the mechanism accounted is the same. It matters for PRV,
    which composes every entry with an FFT of its own: a ledger of k runs of one recipe costs one
    evaluation instead of a composition of k (seconds), and agrees with it to about 1e-9."""
    steps: dict[tuple[float, float], int] = {}
    for s, q, k in history:
        if int(k) > 0:
            pair = (float(s), float(q))
            steps[pair] = steps.get(pair, 0) + int(k)
    return tuple((s, q, k) for (s, q), k in steps.items())


def epsilon_of(history: Iterable[Sequence[float]], delta: float, accountant: str = "prv") -> float:
    """Epsilon at `delta` of a whole history (one run or many), composed by the named accountant."""
    entries = merged(history)
    if not entries:
        return 0.0
    known = _EPSILONS.get((entries, delta, check_accountant(accountant)))
    if known is not None:  # the same history was accounted in this process (e.g. by the calibration)
        return known
    tracker = opacus_parts.accountant(accountant)
    tracker.history = list(entries)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _remember(entries, delta, accountant, float(tracker.get_epsilon(delta=delta)))


class RunningBound:
    """Epsilon after k steps of one (noise, rate) pair, from RDP computed once and scaled by k.

    A valid upper bound, cheap enough to report after every step (a PRV evaluation takes ~0.1 s);
    the run's final epsilon comes from the chosen accountant (PRV by default, which is tighter).
    """

    def __init__(
        self, noise_multiplier: float, sample_rate: float, delta: float, ceiling: float | None = None
    ) -> None:
        import numpy as np

        rdp = opacus_parts.module("opacus.accountants.analysis.rdp")
        RDPAccountant = opacus_parts.module("opacus.accountants.rdp").RDPAccountant  # noqa: N806

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

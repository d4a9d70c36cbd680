"""`train --tune K`: private choice of the learning rate. Candidates are run one after another, each
with a learning rate drawn at random from a grid around the recipe's, K of them on average (a
geometric number, drawn before the first); the one with the best noisy held-out accuracy is kept.
What the choice costs, the held-out scores included, is accounted in vault/privacy/tuning.py: the
whole run's epsilon is the target, and each candidate's noise is calibrated for that.
"""

from __future__ import annotations

import random
import secrets
import threading
from dataclasses import dataclass, replace
from typing import Any

from vault.errors import UsageError
from vault.privacy import tuning as accounting
from vault.train.config import TUNE_RANGE, TrainConfig, TrainOutcome
from vault.train.plan import RunPlan, _derived_seed

RATE_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)  # the grid: multiples of the recipe's learning rate
MIN_TUNE, MAX_TUNE = TUNE_RANGE


def check_tune(tune: Any) -> int:
    """The number of candidates on average, checked: an integer from MIN_TUNE to MAX_TUNE."""
    if isinstance(tune, bool) or not isinstance(tune, int) or not MIN_TUNE <= tune <= MAX_TUNE:
        raise UsageError(
            f"--tune must be a whole number of candidates from {MIN_TUNE} to {MAX_TUNE}, got {tune!r}",
            "use e.g. --tune 4 (four candidate learning rates on average)",
        )
    return tune


@dataclass(frozen=True)
class TunePlan:
    """A tuned run's numbers, fixed before any record is read."""

    run: RunPlan  # every candidate's plan but its rate: noise calibrated for the whole tuned run
    mean: int
    rates: tuple[float, ...]
    score_noise: float  # standard deviation, in records, of the noise on a candidate's correct count
    curve: tuple[float, ...]  # the whole run's RDP curve at Opacus' orders: what the ledger is charged
    epsilon: float  # the whole run's epsilon at the run's delta, from the curve

    def to_json(self) -> dict[str, Any]:
        return {
            "method": accounting.METHOD,
            "distribution": accounting.DISTRIBUTION,
            "mean": self.mean,
            "candidates": {"lr": list(self.rates)},
            "score": "held-out accuracy: the correct count plus Gaussian noise (sensitivity 1), "
            "its privacy cost composed with each candidate's training",
            "score_noise": self.score_noise,
            "epsilon": self.epsilon,
            "delta": self.run.delta,
            "accountant": "rdp",
        }


def plan_tuned(run: RunPlan, config: TrainConfig, *, kind: str) -> TunePlan:
    """Turns a DP run's plan into a tuned one: noise for `config.epsilon` as the whole run's total."""
    from vault.train import models as registry
    from vault.train import recipes

    mean = check_tune(config.tune)
    if not run.dp or run.epsilon is None or run.delta is None:
        raise UsageError(
            "--tune needs DP training: a run without DP has no privacy account to choose within",
            "add --dp and --epsilon, or choose the rate yourself with --lr",
        )
    try:
        noise, epsilon = accounting.calibrate(run.epsilon, run.delta, run.sample_rate, run.total_steps, mean)
    except ValueError as error:
        raise UsageError(
            f"epsilon {run.epsilon:g} cannot hold --tune {mean}: {error}",
            "raise --epsilon, or lower --tune (each doubling of K costs about log 2 more at every order)",
        ) from error
    if config.lr is None:
        recipe = registry.spec_for(run.model, kind).dp_recipe
        base = recipes.learning_rate(recipe.lr, recipe.reference_snr, run.batch_size, noise)
    else:
        base = float(config.lr)
    candidate = replace(run, noise_multiplier=noise, lr=base, accountant="rdp")
    curve = accounting.tuned_curve(candidate.history(), mean)
    return TunePlan(
        run=candidate,
        mean=mean,
        rates=tuple(base * factor for factor in RATE_FACTORS),
        score_noise=accounting.score_noise(noise),
        curve=curve,
        epsilon=epsilon,
    )


def draw_candidates(mean: int, rng: random.Random) -> int:
    """K from the geometric distribution on 1, 2, ... with mean `mean`: P(K = k) = g (1 - g)^(k - 1)."""
    gamma, k = 1.0 / mean, 1
    while rng.random() >= gamma:
        k += 1
    return k


def train_tuned(
    data: Any,
    config: TrainConfig,
    tuned: TunePlan,
    *,
    on_event: Any = None,
    cancel: threading.Event | None = None,
) -> TrainOutcome:
    """Runs the candidates and returns the chosen one's outcome, its privacy facts those of the
    whole tuned run and `tuning` saying how it was chosen. Cancelled propagates from a candidate."""
    from vault.train import engine

    seed = config.seed if config.seed is not None else secrets.randbits(31)
    rng: random.Random = (
        random.Random(_derived_seed(seed, "tuning")) if config.reproducible else secrets.SystemRandom()
    )
    runs = draw_candidates(tuned.mean, rng)
    candidate_config = replace(config, seed=seed, tune=None)  # one split for every candidate
    best: tuple[float, float, TrainOutcome] | None = None
    for _ in range(runs):
        rate = rng.choice(tuned.rates)
        outcome = engine.train(
            data, candidate_config, on_event=on_event, cancel=cancel, run=replace(tuned.run, lr=rate)
        )
        held_out = int(outcome.metrics.get("samples") or tuned.run.val_records)
        correct = round(float(outcome.accuracy or 0.0) * held_out)
        score = (correct + rng.gauss(0.0, tuned.score_noise)) / max(held_out, 1)
        if best is None or score > best[0]:
            best = (score, rate, outcome)
    assert best is not None  # runs >= 1
    score, rate, chosen = best
    facts = chosen.dp
    dp = replace(facts, epsilon=tuned.epsilon, target_epsilon=tuned.run.epsilon or 0.0, accountant="rdp")
    leakage = dict(chosen.leakage)
    if leakage.get("bound_auc") is not None:  # the bound of the model released: the whole run's
        from vault.train.metrics import dp_auc_bound, dp_tpr_bound

        delta = tuned.run.delta or 0.0
        leakage["bound_auc"] = round(dp_auc_bound(tuned.epsilon, delta), 4)
        leakage["bound_tpr_at_1pct_fpr"] = round(dp_tpr_bound(tuned.epsilon, delta, 0.01), 4)
    tuning = {
        **tuned.to_json(),
        "runs": runs,
        "chosen": {"lr": rate, "noisy_score": round(score, 4)},
        "statement": statement(tuned, runs),
    }
    return replace(chosen, dp=dp, leakage=leakage, tuning=tuning)


def statement(tuned: TunePlan, runs: int) -> str:
    return (
        f"The learning rate was chosen privately: {runs} candidate run(s) (a geometric number with mean "
        f"{tuned.mean}), each with a rate drawn at random from the grid, each scored by its held-out "
        f"accuracy with Gaussian noise of {tuned.score_noise:.3g} records; only the best is kept. "
        f"The whole choice is (epsilon {tuned.epsilon:.3f}, delta {tuned.run.delta:.3g})-DP by "
        f"{accounting.METHOD}; no other candidate's model or score leaves the run."
    )

"""Recipes: the numbers a run starts from, and how they adapt to the records. Nothing here imports
torch, so a run's split, batches, steps and privacy cost are fixed (and its noise calibrated, in
another process) while torch is still loading (vault/door/training.py).

The learning rate follows the run's signal-to-noise ratio. Under DP-SGD each step's update is the
sum of B clipped gradients plus Gaussian noise of standard deviation sigma * C, so the noise in the
averaged gradient, relative to the signal, is sigma / B. A learning rate tuned where B / sigma was
large (a few thousand records) makes the noise dominate when records are few: the model's weights
random-walk and accuracy collapses (a small CNN fell to 25% on 1,800 digits at epsilon 3). The
variance a step adds grows with lr * (sigma / B)^2, so the rate is scaled by
(B / sigma / reference)^1.5 below the reference ratio it was tuned at, and never below
`MIN_LR_SCALE` of it (a run must still move). Without DP nothing is scaled.

The references and rates were chosen on development data only (MNIST's training side, the demo
set, the CIFAR-10 subset, SMS spam, AG News subsets); docs/TRAINING.md has the table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vault.errors import InputError, UsageError
from vault.privacy.accounting import default_delta, poisson_sample_rate, steps_per_epoch
from vault.train.config import default_model
from vault.train.text import HashingTokenizer

if TYPE_CHECKING:
    from vault.train.config import TrainConfig

MIN_LR_SCALE = 0.05
# Between the variance argument (2) and a linear rule (1): on the development digits set 1.5
# measured best (lr 0.31: 0.65, 0.18: 0.79, 0.08: 0.77).
EXPONENT = 1.5
AUTO = "auto"  # the model name that stands for the kind's default (vault.train.config.default_model)
MAX_VAL_SPLIT = 0.5
SCATTER_ORIENTATIONS = 8  # scatternet's default (the recipe's rule counts its paths)


@dataclass(frozen=True)
class Recipe:
    """Default hyperparameters of a model; the engine fills in what the user left unset."""

    epochs: int
    batch_size: int
    lr: float
    max_grad_norm: float
    momentum: float = 0.9
    optimizer: str = "sgd"
    min_batches_per_epoch: int = 8
    physical_batch_size: int = 512  # the most records computed at once (memory)
    # Per-sample clipping: "bookkeeping" (vault/train/bookkeeping.py: norms and the clipped sum
    # from one backward pass), or Opacus' own "ghost" (norms, then a second backward pass) or
    # "hooks" (every per-sample gradient materialised).
    grad_sample_mode: str = "bookkeeping"
    # Under DP, the batch / noise-multiplier ratio `lr` was tuned at; below it the rate shrinks
    # (`learning_rate`). None: the rate is used as is.
    reference_snr: float | None = None
    # The model options that override the model's defaults for runs of this recipe, from the
    # input shape (saved in the model's config, so the model rebuilds as trained).
    # (input shape, the dataset's record count) -> model config over the defaults
    model_options: Callable[[Sequence[int] | None, int], dict[str, Any]] | None = None
    # The model keeps an exponential moving average of its weights over the run's steps, with
    # this decay (warmed up as (1 + t) / (10 + t)), instead of the last step's: noisy steps
    # average out (De et al. 2022). Post-processing of the released iterates, so free under DP.
    weight_average: float | None = None


def scatter_paths(orientations: int, order: int) -> int:
    """Scattering coefficients per input channel: 1 + 2L at order 1, 1 + 2L + L*L at order 2 (L
    orientations; vault/train/scatter.py computes them)."""
    return 1 + 2 * orientations + (orientations * orientations if order == 2 else 0)


def scatter_inputs(input_shape: Sequence[int], order: int, orientations: int) -> int:
    """scatternet's linear layer's inputs: every channel's paths, sub-sampled by 4 each way."""
    channels, height, width = input_shape
    return channels * scatter_paths(orientations, order) * ((height + 3) // 4) * ((width + 3) // 4)


def _scatter_dp_options(input_shape: Sequence[int] | None, records: int = 0) -> dict[str, Any]:
    """scatternet under DP: second-order scattering (81 paths at 8 orientations instead of 17) where
    the dataset holds at least as many records as the linear layer then has inputs; with fewer, the
    noise spread over the larger layer costs more than the features bring (docs/TRAINING.md:
    MNIST 8k 0.959 -> 0.970, 16-pixel digits 0.923 -> 0.946, 1,800 28-pixel digits 0.934 -> 0.922).
    The second order's maps are normalised three at a time (as Tramer and Boneh's groups of 27
    for 81 maps), not each alone."""
    if not input_shape:
        return {}
    inputs = scatter_inputs(input_shape, order=2, orientations=SCATTER_ORIENTATIONS)
    if records < inputs:
        return {}
    return {"order": 2, "groups": input_shape[0] * scatter_paths(SCATTER_ORIENTATIONS, 2) // 3}


def _cnn_dp_options(input_shape: Sequence[int] | None, records: int = 0) -> dict[str, Any]:
    """cnn under DP: 8-16-32 channels, since the noise a step adds grows with the weights; on images
    of 24 pixels a side or more, a 5x5 first filter, ReLU and training images moved by up to one
    pixel (on 16-pixel digits the last two lost 5 points; docs/TRAINING.md has the measurements)."""
    side = min(input_shape[1:]) if input_shape else 0
    if side >= 24:
        return {"widths": [8, 16, 32], "first_kernel": 5, "activation": "relu", "shift": 1}
    return {"widths": [8, 16, 32], "first_kernel": 3}


def _cnn_plain_options(input_shape: Sequence[int] | None, records: int = 0) -> dict[str, Any]:
    """cnn without DP: ReLU, the last feature map kept whole up to 4x4 instead of averaged to 2x2,
    and every training image moved by up to 2 pixels each way (docs/TRAINING.md has the
    measurements; under DP only ReLU and 1-pixel shifts, from 24 pixels a side)."""
    side = min(input_shape[1:]) if input_shape else 0
    return {"activation": "relu", "pool": min(4, max(2, -(-side // 8))), "shift": 2}


def _bow_dp_options(input_shape: Sequence[int] | None, records: int = 0) -> dict[str, Any]:
    """bow under DP: word unigrams without English stop words, digits as 0, and a bias at 0.3
    scale. Bigrams and function words spread each record's unit-norm bag over n-grams too rare or
    too common to carry a class through the noise (docs/TRAINING.md has the measurements)."""
    tokenizer = HashingTokenizer(
        buckets=1 << 16, ngrams=1, max_tokens=256, stop_words="english", digits="zero"
    )
    return {"tokenizer": tokenizer.to_json(), "bias_scale": 0.3}


# Each registry model's (DP recipe, recipe without DP), by name (vault/train/models.py's MODELS).
RECIPES: dict[str, tuple[Recipe, Recipe]] = {
    "scatternet": (
        Recipe(
            epochs=25,
            batch_size=500,
            lr=1.0,
            max_grad_norm=0.1,
            physical_batch_size=640,
            model_options=_scatter_dp_options,
        ),
        Recipe(epochs=15, batch_size=250, lr=0.5, max_grad_norm=0.1),
    ),
    "cnn": (
        Recipe(
            epochs=20,
            batch_size=512,
            lr=5.0,
            max_grad_norm=0.1,
            physical_batch_size=640,
            reference_snr=280.0,
            model_options=_cnn_dp_options,
            weight_average=0.97,
        ),
        Recipe(
            epochs=8,
            batch_size=128,
            lr=0.1,
            max_grad_norm=1.0,
            model_options=_cnn_plain_options,
            weight_average=0.99,
        ),
    ),
    "resnet18": (
        Recipe(epochs=20, batch_size=1024, lr=2.0, max_grad_norm=1.0),
        Recipe(epochs=15, batch_size=128, lr=0.05, max_grad_norm=1.0),
    ),
    # Chosen on AG News' first 2,000 test records, SMS Spam and the docs set, never a benchmark's
    # held-out split (docs/TRAINING.md): 40 epochs at Adam 0.03 with C 0.3 over unigrams without
    # stop words, against 20 at 0.05 with C 1.0 over uni- and bigrams.
    "bow": (
        Recipe(
            epochs=40,
            batch_size=1024,
            lr=0.03,
            max_grad_norm=0.3,
            optimizer="adam",
            min_batches_per_epoch=4,
            model_options=_bow_dp_options,
        ),
        Recipe(epochs=10, batch_size=64, lr=0.05, max_grad_norm=1.0, optimizer="adam"),
    ),
    # Chosen on AG News' first 2,000 test records (4 classes; docs/TRAINING.md): at epsilon 3 Adam
    # 1e-3 for 10 epochs stayed near chance (0.305), 1e-2 for 20 reached 0.42 (3e-2: 0.34); without
    # DP 1e-3 for 5 epochs 0.62, 3e-3 for 10 0.71, 5e-3 for 15 0.74.
    "transformer": (
        Recipe(epochs=20, batch_size=512, lr=1e-2, max_grad_norm=1.0, optimizer="adam"),
        Recipe(epochs=15, batch_size=64, lr=5e-3, max_grad_norm=1.0, optimizer="adam"),
    ),
}


def signal_to_noise(batch_size: int, noise_multiplier: float | None) -> float | None:
    """B / sigma: the expected logical batch over the noise multiplier (None without noise)."""
    if not noise_multiplier:
        return None
    return batch_size / noise_multiplier


def learning_rate(
    base_lr: float, reference_snr: float | None, batch_size: int, noise_multiplier: float | None
) -> float:
    """The recipe's rate at this run's B / sigma: unchanged at or above the reference ratio (or
    when the recipe has none), scaled by the ratio to the power EXPONENT below it, floored at MIN_LR_SCALE."""
    snr = signal_to_noise(batch_size, noise_multiplier)
    if reference_snr is None or snr is None or snr >= reference_snr:
        return base_lr
    return base_lr * max(MIN_LR_SCALE, (snr / reference_snr) ** EXPONENT)


def split_sizes(counts: Sequence[int], fraction: float) -> tuple[int, int]:
    """(train, val) sizes that `data.split` produces for per-class record counts."""
    val = 0
    for count in counts:
        if fraction > 0 and count >= 2:
            val += min(max(int(round(count * fraction)), 1), count - 1)
    return sum(counts) - val, val


@dataclass(frozen=True)
class Schedule:
    """A run's numbers before its noise: model, recipe, split, epochs, batches and base rate."""

    model: str
    recipe: Recipe
    records: int
    train_records: int
    val_records: int
    epochs: int
    batch_size: int
    physical_batch_size: int
    lr: float


def schedule(kind: str, counts: Sequence[int], config: TrainConfig) -> Schedule:
    """The request's numbers over a dataset's per-class counts, checked (UsageError for a bad
    request, InputError for a dataset that cannot be trained on; an unknown model is KeyError here,
    the registry's spec_for names it)."""
    name = default_model(kind, config.dp) if config.model == AUTO else config.model
    recipe = RECIPES[name][0 if config.dp else 1]
    records = int(sum(counts))
    if not 0 < config.val_split <= MAX_VAL_SPLIT:
        raise UsageError(
            f"--val-split {config.val_split} is outside (0, {MAX_VAL_SPLIT}]: the model card's metrics"
            " and leakage check need held-out records",
            "use e.g. --val-split 0.1",
        )
    train_records, val_records = split_sizes(counts, config.val_split)
    if records < 10 or train_records < 2 or val_records == 0:
        raise InputError(
            f"the dataset ({records} records) is too small to split for training",
            "import more records (at least 10) or lower --val-split",
        )
    epochs = recipe.epochs if config.epochs is None else int(config.epochs)
    if epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {epochs}", "use e.g. --epochs 10")
    lr = recipe.lr if config.lr is None else float(config.lr)  # scaled once the noise is known
    if not lr > 0:
        raise UsageError(f"--lr must be positive, got {lr}", "use e.g. --lr 0.5")
    if config.batch_size is None:
        batch_size = max(1, min(recipe.batch_size, train_records // recipe.min_batches_per_epoch))
    else:
        batch_size = int(config.batch_size)
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}", "use e.g. --batch-size 256")
    if batch_size > train_records:
        raise UsageError(
            f"--batch-size {batch_size} is larger than the {train_records} training records",
            f"use --batch-size {max(1, train_records // 8)} or less",
        )
    if config.physical_batch_size is not None:
        physical = int(config.physical_batch_size)
    elif config.dp:  # room for Poisson batches above their expected size (4 standard deviations)
        physical = min(recipe.physical_batch_size, batch_size + math.ceil(4 * math.sqrt(batch_size)))
    else:
        physical = min(batch_size, recipe.physical_batch_size)
    if physical < 1:
        raise UsageError("the physical batch size must be at least 1", "use e.g. --physical-batch-size 128")
    return Schedule(name, recipe, records, train_records, val_records, epochs, batch_size, physical, lr)


@dataclass(frozen=True)
class Privacy:
    """A DP run's target and sampling: what its noise is calibrated to."""

    epsilon: float
    delta: float
    max_grad_norm: float
    sample_rate: float
    steps_per_epoch: int


def privacy(run: Schedule, config: TrainConfig) -> Privacy:
    """A DP request's epsilon, delta, clipping norm and Poisson sample rate, checked (UsageError)."""
    if config.epsilon is None or not config.epsilon > 0 or not math.isfinite(config.epsilon):
        raise UsageError(f"epsilon must be a positive number, got {config.epsilon}", "use e.g. --epsilon 3")
    records = run.records
    delta = default_delta(records) if config.delta is None else float(config.delta)
    if not 0 < delta < 1.0 / records:
        raise UsageError(
            f"delta {delta:g} must be above 0 and below 1/n = {1.0 / records:.3g} for {records} records",
            f"use --delta {default_delta(records):.1g} or leave it unset",
        )
    max_grad_norm = run.recipe.max_grad_norm if config.max_grad_norm is None else float(config.max_grad_norm)
    if not max_grad_norm > 0:
        raise UsageError(
            f"--max-grad-norm must be positive, got {max_grad_norm}", "use e.g. --max-grad-norm 1.0"
        )
    sample_rate = poisson_sample_rate(run.train_records, run.batch_size)
    return Privacy(float(config.epsilon), delta, max_grad_norm, sample_rate, steps_per_epoch(sample_rate))

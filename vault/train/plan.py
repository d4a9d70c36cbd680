"""A run's plan: every number of a training run (model, recipe, batches, steps, noise, device,
split) fixed from the request and the dataset's shape before any record is read, because the
policy needs the run's privacy cost up front. `vault.train.engine` carries a plan out.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from vault.errors import InputError, UsageError
from vault.privacy.accounting import (
    check_accountant,
    default_delta,
    noise_multiplier_for,
    poisson_sample_rate,
    steps_per_epoch,
)
from vault.train import models as registry
from vault.train import optimizers, recipes
from vault.train.config import CLIPPING, DEVICES, MAX_NPROC, TrainConfig
from vault.train.data import (
    TrainData,
    check_data,
)

MAX_VAL_SPLIT = 0.5
PAD_FRACTION = 16  # book-keeping pads physical batches to multiples of physical size / 16
CLIPPING_MODES = {
    "bookkeeping": "book-keeping clipping (one backward pass; Opacus noise, sampling and accounting)",
    "ghost": "ghost clipping (Opacus)",
    "hooks": "per-sample gradients (Opacus hooks)",
}


@dataclass(frozen=True)
class RunPlan:
    """Every number of a run, fixed before training starts."""

    model: str
    model_config: dict[str, Any]
    dp: bool
    epsilon: float | None
    delta: float | None
    accountant: str
    noise_multiplier: float | None
    sample_rate: float
    epochs: int
    steps_per_epoch: int
    batch_size: int
    physical_batch_size: int
    lr: float
    momentum: float
    optimizer: str
    max_grad_norm: float | None
    grad_sample_mode: str
    records: int
    train_records: int
    val_records: int
    val_split: float
    device: str
    reproducible: bool = False
    world_size: int = 1  # processes (torch.distributed ranks); sampling, noise and steps do not change
    weight_average: float | None = None  # the recipe's decay of the weights' moving average

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def history(self) -> list[tuple[float, float, int]]:
        """The accountant history the run will have when it completes (empty without DP)."""
        if not self.dp or self.noise_multiplier is None:
            return []
        return [(self.noise_multiplier, self.sample_rate, self.total_steps)]

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "physical_batch_size": self.physical_batch_size,
            "lr": self.lr,
            "momentum": self.momentum,
            "optimizer": self.optimizer,
            "max_grad_norm": self.max_grad_norm,
            "grad_sample_mode": self.grad_sample_mode if self.dp else None,
            "weight_average": self.weight_average,
            "val_split": self.val_split,
            "loss": "cross-entropy",
        }


def resolve_device(name: str) -> torch.device:
    if name not in DEVICES:
        raise UsageError(f"unknown device {name!r}", f"choose one of: {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("CUDA was asked for but no CUDA GPU is available", "use --device cpu (or auto)")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def split_sizes(counts: Sequence[int], fraction: float) -> tuple[int, int]:
    """(train, val) sizes that `data.split` produces for per-class record counts."""
    val = 0
    for count in counts:
        if fraction > 0 and count >= 2:
            val += min(max(int(round(count * fraction)), 1), count - 1)
    return sum(counts) - val, val


def plan(
    *,
    kind: str,
    classes: int,
    counts: Sequence[int],
    input_shape: Sequence[int] | None,
    config: TrainConfig,
) -> RunPlan:
    """Validates a request against a dataset's shape and fixes all hyperparameters and the noise.
    Raises UsageError for a bad request, InputError for a dataset that cannot be trained on."""
    check_accountant(config.accountant)
    device = resolve_device(config.device)
    name = registry.default_model(kind, config.dp) if config.model == registry.AUTO else config.model
    spec = registry.spec_for(name, kind)
    recipe = spec.dp_recipe if config.dp else spec.plain_recipe
    records = int(sum(counts))
    options = recipe.model_options(input_shape, records) if recipe.model_options else None
    model_config = registry.model_config(name, kind, classes, input_shape, options)

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
    lr = recipe.lr if config.lr is None else float(config.lr)  # scaled below once the noise is known
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

    world_size = check_nproc(config, device)
    clipping = recipe.grad_sample_mode if config.clipping is None else config.clipping
    if clipping not in CLIPPING:
        raise UsageError(f"unknown clipping {clipping!r}", f"choose one of: {', '.join(CLIPPING)}")

    epsilon = delta = noise = max_grad_norm = None
    if config.dp:
        if config.epsilon is None or not config.epsilon > 0 or not math.isfinite(config.epsilon):
            raise UsageError(
                f"epsilon must be a positive number, got {config.epsilon}", "use e.g. --epsilon 3"
            )
        epsilon = float(config.epsilon)
        delta = default_delta(records) if config.delta is None else float(config.delta)
        if not 0 < delta < 1.0 / records:
            raise UsageError(
                f"delta {delta:g} must be above 0 and below 1/n = {1.0 / records:.3g} for {records} records",
                f"use --delta {default_delta(records):.1g} or leave it unset",
            )
        max_grad_norm = recipe.max_grad_norm if config.max_grad_norm is None else float(config.max_grad_norm)
        if not max_grad_norm > 0:
            raise UsageError(
                f"--max-grad-norm must be positive, got {max_grad_norm}", "use e.g. --max-grad-norm 1.0"
            )
        sample_rate = poisson_sample_rate(train_records, batch_size)
        per_epoch = steps_per_epoch(sample_rate)
        noise = noise_multiplier_for(epsilon, delta, sample_rate, epochs, config.accountant)
        if config.lr is None:
            lr = recipes.learning_rate(recipe.lr, recipe.reference_snr, batch_size, noise)
    else:
        sample_rate = batch_size / train_records
        per_epoch = math.ceil(train_records / batch_size)
    return RunPlan(
        model=name,
        model_config=model_config,
        dp=config.dp,
        epsilon=epsilon,
        delta=delta,
        accountant=config.accountant,
        noise_multiplier=noise,
        sample_rate=sample_rate,
        epochs=epochs,
        steps_per_epoch=per_epoch,
        batch_size=batch_size,
        physical_batch_size=physical,
        lr=lr,
        momentum=recipe.momentum,
        optimizer=recipe.optimizer,
        max_grad_norm=max_grad_norm,
        grad_sample_mode=clipping,
        records=records,
        train_records=train_records,
        val_records=val_records,
        val_split=config.val_split,
        device=str(device),
        reproducible=config.reproducible,
        world_size=world_size,
        weight_average=recipe.weight_average,
    )


def check_nproc(config: TrainConfig, device: torch.device) -> int:
    """The number of processes, checked against the request and the host (UsageError otherwise)."""
    nproc = config.nproc
    if isinstance(nproc, bool) or not isinstance(nproc, int) or not 1 <= nproc <= MAX_NPROC:
        raise UsageError(
            f"nproc must be a whole number from 1 to {MAX_NPROC}, got {nproc!r}", "use e.g. --nproc 2"
        )
    if nproc > 1 and not config.dp:
        raise UsageError(
            f"--nproc {nproc} trains with DP only (the processes share one privacy accounting)",
            "drop --no-dp, or train without DP in one process (--nproc 1)",
        )
    if device.type == "cuda" and nproc > torch.cuda.device_count():
        raise UsageError(
            f"--nproc {nproc} asks for one GPU per process, but {torch.cuda.device_count()} are visible",
            f"use --nproc {torch.cuda.device_count()} (or --nproc auto)",
        )
    cores = os.cpu_count() or 1
    if device.type == "cpu" and nproc > cores:
        raise UsageError(
            f"--nproc {nproc} is more processes than this host's {cores} CPU cores",
            f"use --nproc {cores} or fewer",
        )
    return nproc


def plan_for(data: TrainData, config: TrainConfig) -> RunPlan:
    check_data(data)
    counts = torch.bincount(data.y, minlength=len(data.classes)).tolist()
    return plan(
        kind=data.kind,
        classes=len(data.classes),
        counts=counts,
        input_shape=data.input_shape(),
        config=config,
    )


def _derived_seed(seed: int, purpose: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{purpose}:{seed}".encode()).digest()[:8], "big") >> 1


def optimizer_for(params: Any, run: RunPlan) -> torch.optim.Optimizer:
    if run.optimizer == "adam":
        return optimizers.Adam(params, lr=run.lr)
    return optimizers.SGD(params, lr=run.lr, momentum=run.momentum)

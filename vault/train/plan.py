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

from vault.errors import UsageError
from vault.privacy.accounting import check_accountant, noise_multiplier_for
from vault.train import models as registry
from vault.train import optimizers, recipes
from vault.train.config import CLIPPING, DEVICES, MAX_NPROC, TrainConfig
from vault.train.data import (
    TrainData,
    check_data,
)
from vault.train.recipes import MAX_VAL_SPLIT, split_sizes  # noqa: F401  (re-exported)

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
    registry.spec_for(name, kind)  # an unknown model, or one for the other kind, is named here
    sizes = recipes.schedule(kind, counts, config)
    recipe = sizes.recipe
    options = recipe.model_options(input_shape, sizes.records) if recipe.model_options else None
    model_config = registry.model_config(name, kind, classes, input_shape, options)
    world_size = check_nproc(config, device)
    clipping = recipe.grad_sample_mode if config.clipping is None else config.clipping
    if clipping not in CLIPPING:
        raise UsageError(f"unknown clipping {clipping!r}", f"choose one of: {', '.join(CLIPPING)}")

    epsilon = delta = noise = max_grad_norm = None
    lr = sizes.lr
    if config.dp:
        target = recipes.privacy(sizes, config)
        epsilon, delta, max_grad_norm = target.epsilon, target.delta, target.max_grad_norm
        sample_rate, per_epoch = target.sample_rate, target.steps_per_epoch
        noise = noise_multiplier_for(epsilon, delta, sample_rate, sizes.epochs, config.accountant)
        if config.lr is None:
            lr = recipes.learning_rate(recipe.lr, recipe.reference_snr, sizes.batch_size, noise)
    else:
        sample_rate = sizes.batch_size / sizes.train_records
        per_epoch = math.ceil(sizes.train_records / sizes.batch_size)
    return RunPlan(
        model=name,
        model_config=model_config,
        dp=config.dp,
        epsilon=epsilon,
        delta=delta,
        accountant=config.accountant,
        noise_multiplier=noise,
        sample_rate=sample_rate,
        epochs=sizes.epochs,
        steps_per_epoch=per_epoch,
        batch_size=sizes.batch_size,
        physical_batch_size=sizes.physical_batch_size,
        lr=lr,
        momentum=recipe.momentum,
        optimizer=recipe.optimizer,
        max_grad_norm=max_grad_norm,
        grad_sample_mode=clipping,
        records=sizes.records,
        train_records=sizes.train_records,
        val_records=sizes.val_records,
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

"""The training loop: DP-SGD through Opacus (Poisson sampling, ghost clipping, logical batches
through BatchMemoryManager, PRV or RDP accounting), or plain SGD when DP is off.

`plan` checks a request and fixes every number before any record is read (the policy needs the
run's privacy cost up front); `train` carries the plan out on records held in memory.
Randomness: the seed fixes the held-out split and initialisation. Under DP, the Poisson sampling
and the Gaussian noise come from generators seeded from the OS CSPRNG each run, because a
privacy guarantee that amplifies by sampling assumes the adversary cannot replay the draws;
`reproducible=True` derives them from the seed instead and the model card says so.
"""

from __future__ import annotations

import hashlib
import math
import platform
import secrets
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler

from vault.errors import Cancelled, InputError, StrongroomError, UsageError
from vault.train import models as registry
from vault.train import recipes
from vault.train.bookkeeping import BookkeepingClipper
from vault.train.config import CLIPPING, DEVICES, DPFacts, TrainConfig, TrainOutcome
from vault.train.data import (
    IGNORE,
    BatchDataset,
    TrainData,
    check_data,
    collate_batch,
    prepare_all,
    select,
    split,
)
from vault.train.events import EpochEnd, StepProgress, TrainFinished, TrainStarted
from vault.train.metrics import classification_metrics, membership_check
from vault.train.privacy import (
    RunningBound,
    check_accountant,
    default_delta,
    epsilon_of,
    noise_multiplier_for,
    poisson_sample_rate,
    steps_per_epoch,
)

EventCallback = Callable[[Any], None]
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
    model_config = registry.model_config(name, kind, classes, input_shape)
    recipe = spec.dp_recipe if config.dp else spec.plain_recipe
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
    )


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


def _optimizer(params: Any, run: RunPlan) -> torch.optim.Optimizer:
    if run.optimizer == "adam":
        return torch.optim.Adam(params, lr=run.lr)
    return torch.optim.SGD(params, lr=run.lr, momentum=run.momentum)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for package in ("torch", "opacus", "numpy", "torchvision", "safetensors"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return out


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def _is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, torch.OutOfMemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


@torch.no_grad()
def predict(model: nn.Module, inputs: torch.Tensor, batch: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of prepared inputs, in eval mode, in chunks."""
    model.eval()
    parts = [model(inputs[i : i + batch]) for i in range(0, inputs.shape[0], batch)]
    return torch.cat(parts) if parts else torch.zeros(0), inputs


@torch.no_grad()
def per_record_loss(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    logits, _ = predict(model, inputs)
    return nn.functional.cross_entropy(logits, labels, reduction="none").cpu().double().numpy()


class _Run:
    """State of one training run; `Cancelled` carries what was spent."""

    def __init__(self, run: RunPlan, on_event: EventCallback | None, cancel: threading.Event | None) -> None:
        self.plan, self.on_event, self.cancel = run, on_event, cancel
        self.steps = 0
        self.history: list[tuple[float, float, int]] = []
        self.epochs: list[dict[str, Any]] = []

    def emit(self, event: Any) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def check_cancel(self, bound: RunningBound | None) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise self.cancelled()

    def cancelled(self) -> Cancelled:
        epsilon = None
        if self.plan.dp and self.history:
            epsilon = epsilon_of(self.history, self.plan.delta or 0.0, self.plan.accountant)
        return Cancelled(
            f"training cancelled after {self.steps} of {self.plan.total_steps} steps",
            "no model was written; the steps taken are charged to the dataset's privacy ledger",
            detail={
                "steps": self.steps,
                "dp": self.plan.dp,
                "history": [list(h) for h in self.history],
                "epsilon": epsilon,
                "delta": self.plan.delta,
                "accountant": self.plan.accountant,
            },
        )


def _make_private(
    net: nn.Module,
    loader: DataLoader,
    run: RunPlan,
    generators: tuple[torch.Generator, torch.Generator],
) -> tuple[Any, Any, Any, DataLoader, Any]:
    """(model, optimizer, criterion, Poisson loader, accountant) for the run's clipping mode.

    Opacus' PrivacyEngine sets up "hooks" and "ghost"; "bookkeeping" is assembled from the same
    Opacus parts (Poisson DPDataLoader, DPOptimizerFastGradientClipping for noise and scaling, the
    accountant's step hook) around BookkeepingClipper, exactly as make_private would.
    """
    from opacus import PrivacyEngine
    from opacus.accountants import create_accountant
    from opacus.data_loader import DPDataLoader
    from opacus.optimizers import DPOptimizerFastGradientClipping
    from opacus.utils.uniform_sampler import UniformWithReplacementSampler

    sampling_generator, noise_generator = generators
    if run.grad_sample_mode == "bookkeeping":
        accountant = create_accountant(run.accountant)
        loader = DPDataLoader.from_data_loader(loader, generator=sampling_generator)
        sample_rate = 1 / len(loader)

        class BookkeepingOptimizer(DPOptimizerFastGradientClipping):
            def accumulate(self) -> None:
                """Opacus' accumulate, with a clone where it deep-copies (a tenth of a
                millisecond a step, which is a tenth of a small model's step)."""
                for p in self.params:
                    if p.summed_grad is None:
                        p.summed_grad = p.grad.detach().clone()
                    else:
                        p.summed_grad.add_(p.grad.detach())

        optimizer = BookkeepingOptimizer(
            _optimizer(net.parameters(), run),
            noise_multiplier=run.noise_multiplier or 0.0,
            max_grad_norm=run.max_grad_norm or 0.0,
            expected_batch_size=int(len(loader.dataset) * sample_rate),
            loss_reduction="mean",
            generator=noise_generator,
        )
        optimizer.attach_step_hook(accountant.get_optimizer_hook_fn(sample_rate=sample_rate))
        # a reproducible run always computes the same way; others time the exact variants once
        model = BookkeepingClipper(net, run.max_grad_norm or 0.0, tune=not run.reproducible)
        criterion = nn.CrossEntropyLoss(reduction="none")  # per-sample losses; the optimizer averages
    else:
        engine = PrivacyEngine(accountant=run.accountant)
        accountant = engine.accountant
        private = engine.make_private(
            module=net,
            optimizer=_optimizer(net.parameters(), run),
            criterion=nn.CrossEntropyLoss(),
            data_loader=loader,
            noise_multiplier=run.noise_multiplier,
            max_grad_norm=run.max_grad_norm,
            poisson_sampling=True,
            grad_sample_mode=run.grad_sample_mode,
            noise_generator=noise_generator,
        )
        if run.grad_sample_mode == "ghost":
            model, optimizer, criterion, loader = private
        else:
            (model, optimizer, loader), criterion = private, nn.CrossEntropyLoss()
        loader.batch_sampler.generator = sampling_generator
    sampler = loader.batch_sampler
    if (
        not isinstance(sampler, UniformWithReplacementSampler)
        or abs(sampler.sample_rate - run.sample_rate) > 1e-12
    ):
        raise StrongroomError("Opacus did not set up Poisson sampling as planned", "report this as a bug")
    return model, optimizer, criterion, loader, accountant


def _private_pass(model: Any, criterion: Any, xb: torch.Tensor, yb: torch.Tensor) -> tuple[float, float, int]:
    """Forward and backward of one physical batch under DP; returns (mean loss, correct count,
    records). Book-keeping batches may carry padding rows labelled IGNORE (see BatchDataset):
    cross-entropy gives them loss 0, so their gradient, norm and share of the clipped sum are
    exactly zero, and they are not counted."""
    if not isinstance(model, BookkeepingClipper):
        logits = model(xb)
        loss = criterion(logits, yb)
        loss.backward()
        return float(loss.item()), float((logits.detach().argmax(1) == yb).sum()), int(yb.numel())
    n = int((yb != IGNORE).sum())
    logits = model(xb)
    loss = criterion(logits, yb).sum()
    loss.backward()
    model.clip()
    return float(loss.item()) / max(n, 1), float((logits.detach().argmax(1) == yb).sum()), n


def _dp_epochs(
    state: _Run,
    net: nn.Module,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    val: tuple[torch.Tensor, torch.Tensor],
    generators: tuple[torch.Generator, torch.Generator],
    device: torch.device,
) -> list[tuple[float, float, int]]:
    from opacus.utils.batch_memory_manager import BatchMemoryManager

    run = state.plan
    # Book-keeping pads each physical batch to a multiple of 1/16 of the physical batch size:
    # Poisson batches vary in size, and tensors of ever-new sizes fragment the C allocator's heap
    # (peak memory grew 3x here); a handful of sizes recur instead.
    pad_to = max(1, run.physical_batch_size // PAD_FRACTION) if run.grad_sample_mode == "bookkeeping" else 1
    dataset = BatchDataset(train_x, train_y, pad_to=pad_to)
    loader = DataLoader(dataset, batch_size=run.batch_size, collate_fn=collate_batch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        private = _make_private(net, loader, run, generators)
    model, optimizer, criterion, loader, accountant = private
    planned_epsilon = epsilon_of(run.history(), run.delta or 0.0, run.accountant)
    bound = RunningBound(
        run.noise_multiplier or 0.0, run.sample_rate, run.delta or 0.0, ceiling=planned_epsilon
    )
    params = [p for p in net.parameters() if p.requires_grad]
    try:
        for epoch in range(1, run.epochs + 1):
            started = time.perf_counter()
            model.train()
            loss_sum = correct = seen = 0.0
            logical_loss = logical_size = 0.0
            state.check_cancel(bound)
            with BatchMemoryManager(
                data_loader=loader, max_physical_batch_size=run.physical_batch_size, optimizer=optimizer
            ) as batches:
                for xb, yb in batches:
                    optimizer.zero_grad()
                    if yb.numel() == 0:
                        for p in params:  # an empty Poisson batch still takes a noisy step
                            if run.grad_sample_mode != "hooks":
                                p.grad = torch.zeros_like(p)
                            else:
                                p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device)
                    else:
                        batch_loss, batch_correct, records = _private_pass(model, criterion, xb, yb)
                        logical_loss += batch_loss * records
                        loss_sum += batch_loss * records
                        correct += batch_correct
                        seen += records
                        logical_size += records
                    optimizer.step()
                    if optimizer._is_last_step_skipped:
                        continue
                    state.steps += 1
                    state.history = [tuple(h) for h in accountant.history]
                    state.emit(
                        StepProgress(
                            step=state.steps,
                            total_steps=run.total_steps,
                            epoch=epoch,
                            loss=logical_loss / logical_size if logical_size else float("nan"),
                            epsilon_so_far=bound.epsilon(state.steps),
                            batch_size=int(logical_size),
                        )
                    )
                    logical_loss = logical_size = 0.0
                    state.check_cancel(bound)
            epsilon = planned_epsilon if epoch == run.epochs else bound.epsilon(state.steps)
            _end_epoch(state, net, epoch, loss_sum, correct, seen, val, epsilon, started)
    finally:
        model.close() if isinstance(model, BookkeepingClipper) else model._close()
    history = [tuple(h) for h in accountant.history]
    if history != run.history():  # the run took other steps than planned: account what it took
        state.epochs[-1]["epsilon"] = epsilon_of(history, run.delta or 0.0, run.accountant)
    return history


def _plain_epochs(
    state: _Run,
    net: nn.Module,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    val: tuple[torch.Tensor, torch.Tensor],
    order_generator: torch.Generator,
) -> None:
    run = state.plan
    dataset = BatchDataset(train_x, train_y)
    loader = DataLoader(
        dataset,
        batch_size=run.batch_size,
        sampler=RandomSampler(dataset, generator=order_generator),
        collate_fn=collate_batch,
    )
    optimizer = _optimizer(net.parameters(), run)
    criterion = nn.CrossEntropyLoss(reduction="sum")
    for epoch in range(1, run.epochs + 1):
        started = time.perf_counter()
        net.train()
        loss_sum = correct = seen = 0.0
        for xb, yb in loader:
            state.check_cancel(None)
            optimizer.zero_grad()
            batch_loss = 0.0
            for start in range(0, yb.numel(), run.physical_batch_size):
                xp, yp = (
                    xb[start : start + run.physical_batch_size],
                    yb[start : start + run.physical_batch_size],
                )
                logits = net(xp)
                loss = criterion(logits, yp) / yb.numel()
                loss.backward()
                batch_loss += float(loss.item())
                correct += float((logits.detach().argmax(1) == yp).sum())
            optimizer.step()
            loss_sum += batch_loss * yb.numel()
            seen += yb.numel()
            state.steps += 1
            state.emit(StepProgress(state.steps, run.total_steps, epoch, batch_loss, None, int(yb.numel())))
        _end_epoch(state, net, epoch, loss_sum, correct, seen, val, None, started)


def _end_epoch(
    state: _Run,
    net: nn.Module,
    epoch: int,
    loss_sum: float,
    correct: float,
    seen: float,
    val: tuple[torch.Tensor, torch.Tensor],
    epsilon: float | None,
    started: float,
) -> None:
    val_acc = None
    if val[1].numel():
        logits, _ = predict(net, val[0])
        val_acc = float((logits.argmax(1) == val[1]).float().mean())
    seconds = time.perf_counter() - started
    record = {
        "epoch": epoch,
        "loss": loss_sum / seen if seen else float("nan"),
        "train_acc": correct / seen if seen else 0.0,
        "val_acc": val_acc,
        "epsilon": epsilon,
        "seconds": round(seconds, 4),
    }
    state.epochs.append(record)
    state.emit(EpochEnd(epoch, record["loss"], record["train_acc"], val_acc, epsilon))


def train(
    data: TrainData,
    config: TrainConfig,
    *,
    on_event: EventCallback | None = None,
    cancel: threading.Event | None = None,
    run: RunPlan | None = None,
) -> TrainOutcome:
    """Trains a classifier on `data` as `config` asks and evaluates it on the held-out split.

    Raises UsageError/InputError for a bad request (before any work), Cancelled when `cancel` is
    set (between steps; `detail` holds the steps taken and the accountant history), and
    StrongroomError when memory runs out (with the setting to change).
    """
    began = time.perf_counter()
    run = run or plan_for(data, config)
    device = torch.device(run.device)
    seed = config.seed if config.seed is not None else secrets.randbits(31)
    state = _Run(run, on_event, cancel)
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        held_out = split(data.y, run.val_split, seed)
        net = registry.build_model(run.model_config).to(device)
        prepare_started = time.perf_counter()
        try:
            train_x = prepare_all(net, select(data.x, held_out.train), device)
            val_x = (
                prepare_all(net, select(data.x, held_out.val), device)
                if held_out.val.numel()
                else train_x[:0]
            )
        except (RuntimeError, torch.OutOfMemoryError) as error:
            if _is_out_of_memory(error):
                raise StrongroomError(
                    "out of memory while preparing the records",
                    "train on the CPU (--device cpu) or use a smaller dataset",
                ) from None
            raise
        train_y, val_y = data.y[held_out.train].to(device), data.y[held_out.val].to(device)
        prepare_s = time.perf_counter() - prepare_started
        if run.dp and config.reproducible:
            sampling_seed, noise_seed = _derived_seed(seed, "sampling"), _derived_seed(seed, "noise")
        else:
            sampling_seed, noise_seed = secrets.randbits(63), secrets.randbits(63)
        state.emit(
            TrainStarted(
                model=run.model,
                dp=run.dp,
                epochs=run.epochs,
                total_steps=run.total_steps,
                train_records=run.train_records,
                val_records=run.val_records,
                batch_size=run.batch_size,
                noise_multiplier=run.noise_multiplier,
                sample_rate=run.sample_rate,
                target_epsilon=run.epsilon,
                delta=run.delta,
                device=run.device,
            )
        )
        if held_out.train.numel() != run.train_records or held_out.val.numel() != run.val_records:
            raise InputError("the records do not match the dataset's metadata", "run `strongroom verify`")
        train_started = time.perf_counter()
        try:
            if run.dp:
                sampling = torch.Generator().manual_seed(sampling_seed)
                noise = torch.Generator(device=device).manual_seed(noise_seed)
                with warnings.catch_warnings():  # Opacus' hooks on a first layer whose input needs no grad
                    warnings.filterwarnings(
                        "ignore", message="Full backward hook is firing", category=UserWarning
                    )
                    history = _dp_epochs(
                        state, net, train_x, train_y, (val_x, val_y), (sampling, noise), device
                    )
            else:
                _plain_epochs(
                    state, net, train_x, train_y, (val_x, val_y), torch.Generator().manual_seed(seed)
                )
                history = []
        except KeyboardInterrupt:
            raise state.cancelled() from None
        except (RuntimeError, torch.OutOfMemoryError) as error:
            if _is_out_of_memory(error):
                raise StrongroomError(
                    f"out of memory during training (physical batch {run.physical_batch_size})",
                    f"lower the physical batch, e.g. --physical-batch-size {max(1, run.physical_batch_size // 4)}"
                    " (the logical --batch-size and the privacy guarantee stay the same)",
                    detail={"steps": state.steps, "history": [list(h) for h in state.history]},
                ) from None
            raise
        train_s = time.perf_counter() - train_started

        evaluate_started = time.perf_counter()
        logits, _ = predict(net, val_x)
        metrics = classification_metrics(logits.argmax(1), val_y, list(data.classes))
        member_generator = torch.Generator().manual_seed(_derived_seed(seed, "members"))
        members = torch.randperm(train_y.numel(), generator=member_generator)[: val_y.numel()].to(device)
        dp_facts = None
        if run.dp:
            epsilon = state.epochs[-1]["epsilon"]
            dp_facts = DPFacts(
                epsilon=epsilon,
                target_epsilon=run.epsilon or 0.0,
                delta=run.delta or 0.0,
                noise_multiplier=run.noise_multiplier or 0.0,
                sample_rate=run.sample_rate,
                steps=state.steps,
                max_grad_norm=run.max_grad_norm or 0.0,
                accountant=run.accountant,
                history=history,
                clipping=f"flat per-sample, {CLIPPING_MODES[run.grad_sample_mode]}",
                noise_source="derived from the seed (reproducible run)"
                if config.reproducible
                else "os-csprng",
            )
        leakage = membership_check(
            per_record_loss(net, train_x[members], train_y[members]),
            per_record_loss(net, val_x, val_y),
            dp_facts.epsilon if dp_facts else None,
            dp_facts.delta if dp_facts else None,
        )
        evaluate_s = time.perf_counter() - evaluate_started
    state_dict = {k: v.detach().to("cpu").contiguous().clone() for k, v in net.state_dict().items()}
    total_s = time.perf_counter() - began
    outcome = TrainOutcome(
        state_dict=state_dict,
        model_config=run.model_config,
        hyperparameters=run.hyperparameters(),
        metrics=metrics,
        dp=dp_facts,
        seed=seed,
        split=held_out.to_json(),
        leakage=leakage,
        timings={
            "prepare_s": round(prepare_s, 3),
            "train_s": round(train_s, 3),
            "evaluate_s": round(evaluate_s, 3),
            "total_s": round(total_s, 3),
            "epoch_s": [e["seconds"] for e in state.epochs],
        },
        device=_device_name(device),
        versions=_versions(),
        epochs=state.epochs,
    )
    state.emit(
        TrainFinished(state.steps, dp_facts.epsilon if dp_facts else None, metrics["accuracy"], total_s)
    )
    return outcome

"""The training loop: DP-SGD through Opacus (Poisson sampling, ghost clipping, logical batches
through BatchMemoryManager, PRV or RDP accounting), or plain SGD when DP is off.

`plan` (vault/train/plan.py) checks a request and fixes every number before any record is read
(the policy needs the run's privacy cost up front); `train` carries the plan out on records held
in memory. What goes beyond Opacus' public API is in vault/train/opacus_adapter.py.
Randomness: the seed fixes the held-out split and initialisation. Under DP, the Poisson sampling
and the Gaussian noise come from generators seeded from the OS CSPRNG each run, because a
privacy guarantee that amplifies by sampling assumes the adversary cannot replay the draws;
`reproducible=True` derives them from the seed instead and the model card says so.
"""

from __future__ import annotations

import platform
import secrets
import threading
import time
import warnings
from collections.abc import Callable
from importlib import metadata
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler

from vault.errors import Cancelled, InputError, StrongroomError
from vault.privacy.accounting import (
    RunningBound,
    epsilon_of,
)
from vault.train import models as registry
from vault.train.config import DPFacts, TrainConfig, TrainOutcome, World
from vault.train.data import (
    BatchDataset,
    TrainData,
    collate_batch,
    prepare_all,
    select,
    split,
)
from vault.train.events import EpochEnd, StepProgress, TrainFinished, TrainStarted
from vault.train.memory import keep_freed_memory
from vault.train.metrics import classification_metrics, membership_check
from vault.train.plan import (  # noqa: F401  (the plan's names, where callers have found them)
    CLIPPING_MODES,
    MAX_VAL_SPLIT,
    PAD_FRACTION,
    RunPlan,
    _derived_seed,
    optimizer_for,
    plan,
    plan_for,
    resolve_device,
    split_sizes,
)

EventCallback = Callable[[Any], None]


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

    def __init__(
        self,
        run: RunPlan,
        on_event: EventCallback | None,
        cancel: threading.Event | None,
        world: World | None = None,
        device: torch.device | None = None,
    ) -> None:
        self.plan, self.on_event, self.cancel = run, on_event, cancel
        self.world, self.device = world, device
        self.steps = 0
        self.history: list[tuple[float, float, int]] = []
        self.epochs: list[dict[str, Any]] = []
        self.loop_s = 0.0  # from the first step to the end of the last epoch: the training loop

    def emit(self, event: Any) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def check_cancel(self) -> None:
        wanted = self.cancel is not None and self.cancel.is_set()
        if self.world is not None and self.world.size > 1:  # every rank stops at the same step
            flag = torch.tensor([1.0 if wanted else 0.0], device=self.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            wanted = bool(flag.item())
        if wanted:
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


class WeightAverage:
    """The moving average of a model's weights over its steps (the recipe's `weight_average`),
    which replaces the weights before the last epoch is evaluated; does nothing when decay is None."""

    def __init__(self, params: list[nn.Parameter], decay: float | None) -> None:
        self.params = params
        self.decay = decay
        self.average = [p.detach().clone() for p in params] if decay else []
        self.steps = 0

    @torch.no_grad()
    def update(self) -> None:
        if self.decay:
            self.steps += 1
            decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
            for average, param in zip(self.average, self.params, strict=True):
                average.lerp_(param, 1.0 - decay)

    @torch.no_grad()
    def apply(self) -> None:
        if not self.decay:
            return
        for average, param in zip(self.average, self.params, strict=True):
            param.copy_(average)


def _dp_epochs(
    state: _Run,
    net: nn.Module,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    val: tuple[torch.Tensor, torch.Tensor],
    generators: tuple[torch.Generator, torch.Generator],
    device: torch.device,
) -> list[tuple[float, float, int]]:
    from vault.privacy import opacus_parts

    BatchMemoryManager = opacus_parts.module("opacus.utils.batch_memory_manager").BatchMemoryManager  # noqa: N806
    run = state.plan
    # Book-keeping pads each physical batch to a multiple of 1/16 of the physical batch size:
    # Poisson batches vary in size, and tensors of ever-new sizes fragment the C allocator's heap
    # (peak memory grew 3x here); a handful of sizes recur instead.
    pad_to = max(1, run.physical_batch_size // PAD_FRACTION) if run.grad_sample_mode == "bookkeeping" else 1
    dataset = BatchDataset(train_x, train_y, pad_to=pad_to)
    loader = DataLoader(dataset, batch_size=run.batch_size, collate_fn=collate_batch)
    from vault.train import opacus_adapter as dp

    with warnings.catch_warnings():  # Opacus' and torch's notes on hooks and secure RNG, every run
        warnings.filterwarnings("ignore", category=UserWarning, module=r"(opacus|torch)(\.|$)")
        private = dp.make_private(net, loader, run, generators, world_size=run.world_size)
    model, optimizer, criterion, loader, accountant = private
    planned_epsilon = epsilon_of(run.history(), run.delta or 0.0, run.accountant)
    bound = RunningBound(
        run.noise_multiplier or 0.0, run.sample_rate, run.delta or 0.0, ceiling=planned_epsilon
    )
    params = [p for p in net.parameters() if p.requires_grad]
    average = WeightAverage(params, run.weight_average)
    loop_started = time.perf_counter()
    try:
        for epoch in range(1, run.epochs + 1):
            started = time.perf_counter()
            model.train()
            loss_sum = correct = seen = 0.0
            logical_loss = logical_size = 0.0
            state.check_cancel()
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
                        batch_loss, batch_correct, records = dp.private_pass(model, criterion, xb, yb)
                        logical_loss += batch_loss * records
                        loss_sum += batch_loss * records
                        correct += batch_correct
                        seen += records
                        logical_size += records
                    optimizer.step()
                    if dp.last_step_skipped(optimizer):
                        continue
                    state.steps += 1
                    average.update()
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
                    state.check_cancel()
            epsilon = planned_epsilon if epoch == run.epochs else bound.epsilon(state.steps)
            if epoch == run.epochs:
                average.apply()
            _end_epoch(state, net, epoch, loss_sum, correct, seen, val, epsilon, started)
        state.loop_s = time.perf_counter() - loop_started
    finally:
        dp.release(model)
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
    optimizer = optimizer_for(net.parameters(), run)
    average = WeightAverage([p for p in net.parameters() if p.requires_grad], run.weight_average)
    criterion = nn.CrossEntropyLoss(reduction="sum")
    loop_started = time.perf_counter()
    for epoch in range(1, run.epochs + 1):
        started = time.perf_counter()
        net.train()
        loss_sum = correct = seen = 0.0
        for xb, yb in loader:
            state.check_cancel()
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
            average.update()
            loss_sum += batch_loss * yb.numel()
            seen += yb.numel()
            state.steps += 1
            state.emit(StepProgress(state.steps, run.total_steps, epoch, batch_loss, None, int(yb.numel())))
        if epoch == run.epochs:
            average.apply()
        _end_epoch(state, net, epoch, loss_sum, correct, seen, val, None, started)
    state.loop_s = time.perf_counter() - loop_started


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
    world: World | None = None,
) -> TrainOutcome | None:
    """Trains a classifier on `data` as `config` asks and evaluates it on the held-out split.

    Raises UsageError/InputError for a bad request (before any work), Cancelled when `cancel` is
    set (between steps; `detail` holds the steps taken and the accountant history), and
    StrongroomError when memory runs out (with the setting to change).
    A plan for several processes starts them (vault/train/distributed.py), each of which comes back
    here with its `world`; rank 0 emits the events and returns the outcome, the others None.
    """
    began = time.perf_counter()
    keep_freed_memory()
    run = run or plan_for(data, config)
    if run.world_size > 1 and world is None:
        from vault.train import distributed

        return distributed.train(data, config, on_event=on_event, cancel=cancel, run=run)
    lead = world is None or world.rank == 0
    device = torch.device(run.device)
    if world is not None and device.type == "cuda":
        device = torch.device("cuda", world.rank)
    seed = config.seed if config.seed is not None else secrets.randbits(31)
    state = _Run(run, on_event if lead else None, cancel, world, device)
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
        if run.dp and config.reproducible:  # rank 0 draws as one process does; each other rank its own
            sampling = "sampling" if lead else f"sampling/rank {world.rank if world else 0}"
            sampling_seed, noise_seed = _derived_seed(seed, sampling), _derived_seed(seed, "noise")
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
                    val = (val_x, val_y) if lead else (val_x[:0], val_y[:0])  # rank 0 evaluates
                    history = _dp_epochs(state, net, train_x, train_y, val, (sampling, noise), device)
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
        if not lead:
            return None

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
            "loop_s": round(state.loop_s, 3),
            "evaluate_s": round(evaluate_s, 3),
            "total_s": round(total_s, 3),
            "epoch_s": [e["seconds"] for e in state.epochs],
        },
        device=_device_name(device),
        versions=_versions(),
        epochs=state.epochs,
        distributed={"world_size": world.size if world else 1, "devices": [_device_name(device)]},
    )
    state.emit(
        TrainFinished(state.steps, dp_facts.epsilon if dp_facts else None, metrics["accuracy"], total_s)
    )
    return outcome

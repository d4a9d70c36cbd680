"""Typed, frozen progress events of a training run, passed to an `on_event` callback.

The trainer never imports a UI; a TUI or the CLI's progress bar turns these into their own messages.
Loss and accuracy figures here are computed from the records and are shown only to the operator.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainStarted:
    model: str
    dp: bool
    epochs: int
    total_steps: int
    train_records: int
    val_records: int
    batch_size: int
    noise_multiplier: float | None
    sample_rate: float
    target_epsilon: float | None
    delta: float | None
    device: str


@dataclass(frozen=True)
class StepProgress:
    """After each optimizer step. `epsilon_so_far` is an RDP upper bound (None without DP);
    `batch_size` is the step's logical batch (it varies under Poisson sampling)."""

    step: int
    total_steps: int
    epoch: int
    loss: float
    epsilon_so_far: float | None
    batch_size: int


@dataclass(frozen=True)
class EpochEnd:
    epoch: int
    loss: float
    train_acc: float
    val_acc: float | None
    epsilon: float | None


@dataclass(frozen=True)
class TrainFinished:
    steps: int
    epsilon: float | None
    accuracy: float | None
    seconds: float


TrainEvent = TrainStarted | StepProgress | EpochEnd | TrainFinished

"""What a training run is asked to do (TrainConfig) and what it reports back (TrainOutcome).

Unset hyperparameters (None) take the model's recipe in models.py; the outcome records the values
actually used, so a model card never says "default".
"""

from __future__ import annotations

import glob
import re
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from vault.errors import UsageError

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")
# Per-sample clipping: book-keeping (one backward pass, vault/train/bookkeeping.py) or Opacus' own
# ghost clipping (norms, then a second backward pass) or hooks (per-sample gradients materialised).
CLIPPING = ("bookkeeping", "ghost", "hooks")
# Processes of one run (`--nproc`): torch.distributed workers started by torch.multiprocessing,
# gloo between CPU processes, NCCL between GPUs.
MAX_NPROC = 64
NPROC_AUTO = "auto"


def parse_nproc(text: str) -> int | str:
    """`--nproc`: a whole number from 1 to MAX_NPROC, or 'auto'; UsageError otherwise (no torch)."""
    value = str(text).strip().lower()
    if value == NPROC_AUTO:
        return NPROC_AUTO
    if not re.fullmatch(r"[0-9]{1,4}", value) or not 1 <= int(value) <= MAX_NPROC:
        raise UsageError(
            f"--nproc must be a whole number from 1 to {MAX_NPROC} or 'auto', got {text!r}",
            "use e.g. --nproc 2 (processes on this host) or --nproc auto (one per GPU, 1 on CPU)",
        )
    return int(value)


def gpus_present() -> int:
    """GPUs the NVIDIA driver lists, counted without loading torch (importing it starts threads)."""
    listed = glob.glob("/proc/driver/nvidia/gpus/*")
    return len(listed) or len([d for d in glob.glob("/dev/nvidia*") if re.fullmatch(r"/dev/nvidia[0-9]+", d)])


def resolve_nproc(value: int | str, device: str) -> int:
    """'auto' is the number of GPUs (1 on the CPU, or where there is none); a number stays."""
    if value != NPROC_AUTO:
        return int(value)
    return 1 if device == "cpu" else max(1, gpus_present())


TUNE_RANGE = (2, 64)  # `--tune K`: candidates on average (vault/train/tuning.py)


@dataclass(frozen=True)
class TrainConfig:
    model: str = "auto"
    dp: bool = True
    epsilon: float | None = 3.0
    delta: float | None = None  # None: min(1e-5, 1/(10 n))
    max_grad_norm: float | None = None
    epochs: int | None = None
    batch_size: int | None = None  # logical batch (expected size under Poisson sampling)
    physical_batch_size: int | None = None  # what fits in memory at once
    lr: float | None = None
    seed: int | None = None  # None: drawn at random and recorded
    device: str = "auto"
    val_split: float = 0.1
    accountant: str = "prv"
    reproducible: bool = False  # derive DP noise and sampling from the seed (the card says so)
    clipping: str | None = None  # one of CLIPPING; None: the model's default (bookkeeping)
    nproc: int = 1  # processes of the run (torch.distributed); the privacy accounting is the same
    tune: int | None = None  # `--tune K`: choose the learning rate among K candidates on average

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(
                f"unknown training option(s): {', '.join(unknown)}", f"known: {', '.join(sorted(known))}"
            )
        return cls(**data)


@dataclass(frozen=True)
class World:
    """One process of a run across several: its rank, the number of processes, the backend."""

    rank: int
    size: int
    backend: str = "gloo"


@dataclass(frozen=True)
class DPFacts:
    """The privacy parameters of a finished (or cancelled) DP run."""

    epsilon: float
    target_epsilon: float
    delta: float
    noise_multiplier: float
    sample_rate: float
    steps: int
    max_grad_norm: float
    accountant: str
    history: list[tuple[float, float, int]]
    sampling: str = "poisson"
    clipping: str = "flat per-sample"
    noise_source: str = "os-csprng"

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["history"] = [list(entry) for entry in self.history]
        return out


@dataclass(frozen=True)
class TrainOutcome:
    state_dict: dict[str, torch.Tensor]
    model_config: dict[str, Any]
    hyperparameters: dict[str, Any]
    metrics: dict[str, Any]
    dp: DPFacts | None
    seed: int
    split: dict[str, Any]
    leakage: dict[str, Any]
    timings: dict[str, Any]
    device: str
    versions: dict[str, str]
    epochs: list[dict[str, Any]] = field(default_factory=list)
    # processes of the run: world_size, backend, devices, rendezvous, the interface checks
    distributed: dict[str, Any] = field(default_factory=dict)
    tuning: dict[str, Any] | None = None  # how a tuned run chose (vault/train/tuning.py)

    @property
    def accuracy(self) -> float | None:
        return self.metrics.get("accuracy")

    def to_json(self) -> dict[str, Any]:
        """Everything but the weights, JSON-ready."""
        return {
            "model_config": self.model_config,
            "hyperparameters": self.hyperparameters,
            "metrics": self.metrics,
            "dp": self.dp.to_json() if self.dp else None,
            "seed": self.seed,
            "split": self.split,
            "leakage": self.leakage,
            "timings": self.timings,
            "device": self.device,
            "versions": self.versions,
            "epochs": self.epochs,
            "distributed": self.distributed,
            **({"tuning": self.tuning} if self.tuning else {}),
        }


# The registry's names and kinds (vault/train/models.py), here so that the CLI and the terminal UI
# can offer them without importing torch; a test keeps the two in step.
MODEL_KINDS = {
    "scatternet": "image",
    "cnn": "image",
    "resnet18": "image",
    "bow": "text",
    "transformer": "text",
}


def models_for(kind: str) -> tuple[str, ...]:
    return tuple(name for name, of in MODEL_KINDS.items() if of == kind)


def default_model(kind: str, dp: bool) -> str:
    """The model `auto` stands for: scattering features under DP for images, a CNN without."""
    if kind == "image":
        return "scatternet" if dp else "cnn"
    return "bow"

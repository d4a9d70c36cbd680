"""What a training run is asked to do (TrainConfig) and what it reports back (TrainOutcome).

Unset hyperparameters (None) take the model's recipe in models.py; the outcome records the values
actually used, so a model card never says "default".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from vault.errors import UsageError

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")
# Per-sample clipping: book-keeping (one backward pass, vault/train/bookkeeping.py) or Opacus' own
# ghost clipping (norms, then a second backward pass) or hooks (per-sample gradients materialised).
CLIPPING = ("bookkeeping", "ghost", "hooks")
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

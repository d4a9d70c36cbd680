"""Training inside the vault: models, the DP-SGD loop (Opacus), evaluation and model cards.

Glossary: a *plan* fixes every number of a run before any record is read; a *history* is the
accountant's list of (noise multiplier, sample rate, steps); the *ledger* (vault/ledger.py)
composes histories per dataset. `train` and `evaluate` work on records in memory; the vault
(vault/train/service.py) reads and seals them.
"""

from typing import Any

from vault.train.config import DPFacts, TrainConfig, TrainOutcome
from vault.train.events import EpochEnd, StepProgress, TrainEvent, TrainFinished, TrainStarted


def __getattr__(name: str) -> Any:
    # TrainData needs torch; importing it lazily keeps `import vault` (and the CLI) free of torch.
    if name == "TrainData":
        from vault.train.data import TrainData

        return TrainData
    raise AttributeError(name)


__all__ = [
    "DPFacts",
    "EpochEnd",
    "StepProgress",
    "TrainConfig",
    "TrainData",
    "TrainEvent",
    "TrainFinished",
    "TrainOutcome",
    "TrainStarted",
]

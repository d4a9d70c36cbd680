"""A training run's start, while torch loads: the engine imported with Python's cyclic collector
paused, and the run's noise calibrated meanwhile in a worker process (vault/privacy/calibration.py)
from the numbers the plan will have. Both are the door's (vault/door/training.py) first steps of a
run; neither reads a record.
"""

from __future__ import annotations

import gc
import importlib
import sys
from typing import TYPE_CHECKING, Any

from vault.door.session import Session
from vault.errors import StrongroomError
from vault.privacy import ledger
from vault.train.config import TrainConfig

if TYPE_CHECKING:
    from vault.privacy.calibration import Pending

ENGINE = "vault.train.engine"  # torch and the loop; loaded by the first run in a process


def load_engine() -> None:
    """Import the training engine (torch) with Python's cyclic collector paused, then freeze what
    the import made out of later collections. torch's import makes some 280,000 objects that live
    as long as the process; the collector's passes over them during the import took 0.15-0.25 s of
    1.1-1.3 s, and a full collection after it another 0.1 s. A no-op once the engine is loaded."""
    if ENGINE in sys.modules:
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        importlib.import_module(ENGINE)
    finally:
        if enabled:
            gc.freeze()
            gc.enable()


def calibrate_meanwhile(session: Session, info: dict[str, Any], config: TrainConfig) -> Pending | None:
    """Where torch is still to be loaded, the run's noise calibration started in a worker process
    (vault/privacy/calibration.py) from the numbers the plan will have, with the dataset's earlier
    runs for the policy's projection; None otherwise, and wherever the request is one the plan will
    refuse (it names the problem then)."""
    if not config.dp or config.tune or ENGINE in sys.modules:
        return None
    from vault.privacy import calibration
    from vault.train import recipes

    counts = [int(info["counts"].get(c, 0)) for c in info["classes"]]
    try:
        sizes = recipes.schedule(info["kind"], counts, config)
        target = recipes.privacy(sizes, config)
    except (StrongroomError, KeyError, TypeError, ValueError):
        return None
    section = session.read_catalog()["ledger"]
    charges = ledger.charges_of(section, info["ledger_id"])
    composable = all(c.dp and c.rdp is None for c in charges)
    return calibration.start(
        target.epsilon,
        target.delta,
        target.sample_rate,
        sizes.epochs,
        config.accountant,
        prior=[c.cost[0] for c in charges],
        ledger_delta=ledger.ledger_delta(section, info["ledger_id"], target.delta) if composable else None,
    )

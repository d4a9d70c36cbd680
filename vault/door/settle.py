"""Every charge ends in a true state: a run whose process died after its charge is settled as
"interrupted" (charged in full) at the next open by an operator or admin, and a run whose model
could not be written is settled as "failed", charged for every step it took, with a message that
says so.

A run holds its mark (`vault.storage.files.RunMarker`) from before its charge until it is
settled; a charge still "running" whose mark no live process holds was interrupted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
from typing import Any

from vault.door.session import Session
from vault.errors import StrongroomError
from vault.privacy import ledger
from vault.storage.files import RunMarker, utc_now

INTERRUPTED = "interrupted"


def _dead(session: Session, charge: dict[str, Any]) -> bool:
    """A charge still running whose run's mark no live process holds (a card-metrics charge goes
    by the mark of the training run it belongs to)."""
    run = str(charge.get("metrics_of") or charge["run"])
    return charge.get("outcome") == "running" and not RunMarker(session.path, run).alive()


def settle_interrupted(session: Session) -> list[dict[str, Any]]:
    """Settle every charge left "running" by a process that died: kept in full (its planned steps
    may all have run), shown as interrupted, recorded in the log. Needs a session that may write
    and holds the data key (an operator or an admin); returns the charges settled."""
    if session.read_only or session.vault_keys.data is None:
        return []
    catalog = session.read_catalog()
    if not any(_dead(session, c) for e in catalog["ledger"].values() for c in e["charges"]):
        return []
    settled: list[dict[str, Any]] = []
    with session.writing() as cat:
        for entry in cat["ledger"].values():
            for charge in entry["charges"]:
                if not _dead(session, charge):
                    continue
                charge["outcome"] = INTERRUPTED
                if charge.get("metrics_of"):  # kept in full with its run, which is settled beside it
                    continue
                steps = sum(int(h[2]) for h in charge.get("history", []))
                cat["runs"].setdefault(
                    charge["run"],
                    {
                        "run": charge["run"],
                        "dataset_digest": charge["dataset_digest"],
                        "dataset": charge.get("dataset", ""),
                        "version": charge.get("version") or 0,
                        "model": None,
                        "created": charge.get("created", ""),
                        "outcome": INTERRUPTED,
                        "steps": steps,
                        "user": "",
                        "name": "",
                    },
                )
                cat["runs"][charge["run"]]["outcome"] = INTERRUPTED
                cat["runs"][charge["run"]]["finished"] = utc_now()
                settled.append(dict(charge, planned_steps=steps))
    for charge in settled:
        RunMarker(session.path, str(charge["run"])).forget()
        session.record(
            "train.end",
            str(charge.get("dataset", "")),
            INTERRUPTED,
            run=charge["run"],
            epsilon=charge.get("epsilon"),
            steps=charge["planned_steps"],
            charged="in full: the process ended before the run was settled",
        )
    return settled


def record_ledger_baseline(session: Session) -> bool:
    """Record the whole ledger once in a vault whose log has never recorded it (a new vault, or one
    from before the log recorded ledgers, at an operator's or admin's open); from then on every
    change is recorded as it commits."""
    if session.read_only or session.vault_keys.data is None:
        return False
    # The catalog's flag spares every open a scan of the log; without it the log decides, so
    # removing the flag never earns a second baseline over an edited ledger.
    if session.read_catalog()["lineage"].get("ledger_in_log"):
        return False
    found = session.audit.latest("ledger_baseline") is not None
    with session.writing() as catalog:
        catalog["lineage"]["ledger_in_log"] = True
        if not found:
            session.record_ledger(catalog, baseline=True)
    return not found


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return "the vault's disk is full"
    if isinstance(error, StrongroomError):
        if error.detail.get("disk_full"):
            return "the vault's disk is full"
        return error.title
    return f"{type(error).__name__}: {error}"


def store_failed(
    session: Session,
    error: BaseException,
    *,
    outcome: Any,
    run: Any,
    run_id: str,
    run_name: str,
    started: str,
    charge_base: dict[str, Any],
    ledger_delta: float,
    rdp: tuple[float, ...] | None = None,
    metrics: ledger.Charge | None = None,
) -> StrongroomError:
    """Settle a run that trained to the end but whose model could not be sealed: charged for all
    the steps it took (and its card figures' release, `metrics`, in full: they were drawn),
    recorded as failed. Returns the error to raise, which says what was charged."""
    dp = outcome.dp
    steps = int(dp.steps) if dp else int(run.total_steps)
    charge = ledger.Charge(
        **charge_base,
        history=ledger.normalise(dp.history if dp else []),
        dp=dp is not None,
        created=utc_now(),
        outcome="failed",
        epsilon=dp.epsilon if dp else None,
        rdp=rdp,  # a tuned run: the whole run's curve
    )
    reason = _reason(error)
    dataset = charge_base["dataset"]
    cost = f"ε {dp.epsilon:.2f} at δ {dp.delta:.3g}" if dp else "an unbounded privacy cost (no DP)"
    settled = True
    try:
        with session.writing() as cat:
            ledger.settle_charge(cat["ledger"], charge, delta=ledger_delta, accountant=run.accountant)
            if metrics is not None:  # the figures were drawn: their charge stands in full
                failed = dataclasses.replace(metrics, outcome="failed", created=charge.created)
                ledger.settle_charge(cat["ledger"], failed, delta=ledger_delta, accountant=run.accountant)
            cat["runs"][run_id] = {
                **charge_base,  # type: ignore[typeddict-item]
                "model": None,
                "created": started,
                "finished": charge.created,
                "outcome": "failed",
                "steps": steps,
                "user": session.user,
                "name": run_name,
            }
    except (StrongroomError, OSError):
        settled = False
    with contextlib.suppress(StrongroomError, OSError):
        session.record(
            "train.end",
            dataset,
            "failed",
            run=run_id,
            steps=steps,
            epsilon=charge.epsilon,
            error=reason,
            model_written=False,
            settled=settled,
        )
    why = f"the run took all {steps} of its steps on '{dataset}', and each step released a noisy update"
    if settled:
        title = (
            f"the model could not be written ({reason}); {cost} was charged to the privacy ledger of "
            f"'{dataset}' because {why}; the run is recorded as failed and no model was kept"
        )
    else:
        stays = f"ε {run.epsilon:.2f} (its plan)" if dp and run.epsilon else "its full planned cost"
        title = (
            f"the model could not be written ({reason}) and the run could not be settled either; "
            f"{cost} was spent because {why}, and {stays} stays charged to '{dataset}' until the next "
            "open by an operator or admin settles the run as interrupted"
        )
    return StrongroomError(
        title,
        "free space on the vault's disk and train again; the charge stands because the records were "
        "used (`strongroom budget` shows it)",
        detail={"run": run_id, "dataset": dataset, "epsilon_charged": charge.epsilon, "settled": settled},
    )

"""The privacy ledger: what every training run has cost each dataset, composed across runs.

A ledger is keyed by the dataset's content digest, so the budget follows the records: a re-import
or the same records under another name share one ledger. Each charge keeps the run's accountant
history (Opacus' list of (noise_multiplier, sample_rate, steps) for the Poisson-subsampled
Gaussian mechanism); the total is the composition of all histories by an accountant (PRV or RDP)
at the ledger's delta, which is tighter than adding up per-run epsilons. A run without DP makes
the total unbounded. The ledger state is plain JSON kept in the vault's encrypted catalog.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vault.privacy.accounting import check_accountant, epsilon_of

History = Sequence[Sequence[float]]


@dataclass(frozen=True)
class Charge:
    """One run's cost to one dataset. `outcome` is "ok", "cancelled" or "failed", each charged
    for the steps actually taken, or "running": the full planned cost, held from the start of a
    run until it ends (and kept if it never does)."""

    run: str
    dataset_digest: str
    history: tuple[tuple[float, float, int], ...]
    dp: bool
    dataset: str = ""
    version: int | None = None
    created: str = ""
    outcome: str = "ok"
    epsilon: float | None = None  # the run's own epsilon at its own delta, for display
    # a tuned run (`train --tune`): its RDP curve at Opacus' orders (vault/privacy/tuning.py), which
    # is what the run costs; `history` then holds the chosen candidate's steps, for display only
    rdp: tuple[float, ...] | None = None
    # the release of a run's card figures (vault/privacy/release.py): the training run it belongs to;
    # `history` is then the Gaussian mechanism's one entry (sigma, 1, 1) and `epsilon` the release's own
    metrics_of: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = {
            "run": self.run,
            "dataset_digest": self.dataset_digest,
            "history": [list(h) for h in self.history],
            "dp": self.dp,
            "dataset": self.dataset,
            "version": self.version,
            "created": self.created,
            "outcome": self.outcome,
            "epsilon": self.epsilon,
        }
        if self.rdp is not None:
            out["rdp"] = list(self.rdp)
        if self.metrics_of is not None:
            out["metrics_of"] = self.metrics_of
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Charge:
        return cls(
            run=str(data["run"]),
            dataset_digest=str(data["dataset_digest"]),
            history=normalise(data.get("history", [])),
            dp=bool(data["dp"]),
            dataset=str(data.get("dataset", "")),
            version=data.get("version"),
            created=str(data.get("created", "")),
            outcome=str(data.get("outcome", "ok")),
            epsilon=data.get("epsilon"),
            rdp=tuple(float(v) for v in data["rdp"]) if data.get("rdp") is not None else None,
            metrics_of=str(data["metrics_of"]) if data.get("metrics_of") else None,
        )

    @property
    def cost(self) -> tuple[tuple[tuple[float, float, int], ...], tuple[float, ...] | None]:
        """(Gaussian history, RDP curve) that this charge adds to the ledger: one or the other."""
        return ((), self.rdp) if self.rdp is not None else (self.history, None)


def normalise(history: Iterable[Sequence[float]]) -> tuple[tuple[float, float, int], ...]:
    out = []
    for entry in history:
        noise, rate, steps = entry
        if not (float(noise) > 0 and 0 < float(rate) <= 1 and int(steps) >= 0):
            raise ValueError(f"not an accountant history entry: {entry!r}")
        if int(steps):
            out.append((float(noise), float(rate), int(steps)))
    return tuple(out)


def compose(
    histories: Iterable[History],
    delta: float,
    accountant: str = "prv",
    curves: Iterable[Sequence[float]] = (),
) -> float:
    """Epsilon at `delta` of all the histories run one after another on the same records. With
    tuned runs' RDP curves among them, everything composes in RDP (curves add; PRV has no form for
    a random-stopping bound), whatever the ledger's accountant."""
    if not 0 < delta < 1:
        raise ValueError("delta must be in (0, 1)")
    entries = tuple(entry for history in histories for entry in normalise(history))
    curves = tuple(tuple(float(v) for v in curve) for curve in curves)
    if curves:
        from vault.privacy import tuning

        return tuning.compose([entries], curves, float(delta))
    return _composed(entries, float(delta), check_accountant(accountant))


@functools.lru_cache(maxsize=256)
def _composed(entries: tuple[tuple[float, float, int], ...], delta: float, accountant: str) -> float:
    """The accountant's answer for one history (kept: a budget composes every linked lineage, and
    the PRV accountant takes seconds on a long history)."""
    return epsilon_of(list(entries), delta, accountant)


@dataclass(frozen=True)
class Spent:
    epsilon: float | None  # None when unbounded
    unbounded: bool
    delta: float
    accountant: str
    runs: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "epsilon_spent": self.epsilon,
            "unbounded": self.unbounded,
            "delta": self.delta,
            "accountant": self.accountant,
            "runs": self.runs,
        }


def spent(charges: Sequence[Charge], delta: float, accountant: str = "prv") -> Spent:
    """The composed cost of all charges. Any non-DP charge makes it unbounded."""
    runs = [c.to_json() for c in charges]
    if any(not c.dp for c in charges):
        return Spent(None, True, delta, accountant, runs)
    total = compose(
        (c.cost[0] for c in charges), delta, accountant, [c.rdp for c in charges if c.rdp is not None]
    )
    return Spent(total, False, delta, accountant, runs)


def projected(
    charges: Sequence[Charge],
    planned_history: History,
    delta: float,
    *,
    dp: bool = True,
    accountant: str = "prv",
    planned_rdp: Sequence[float] | None = None,
) -> float | None:
    """What the total would be after a planned run (None: unbounded); a tuned run is planned as its
    RDP curve (`planned_rdp`) instead of a history. The policy refuses a run whose projection
    passes the cap, before any record is read."""
    if not dp or any(not c.dp for c in charges):
        return None
    curves = [c.rdp for c in charges if c.rdp is not None]
    if planned_rdp is not None:
        curves.append(tuple(planned_rdp))
        planned_history = ()
    return compose([*(c.cost[0] for c in charges), planned_history], delta, accountant, curves)


# ---- ledger state inside the catalog: {digest: {"digest", "delta", "accountant", "charges": [...]}}


def entry(section: Mapping[str, Any], digest: str) -> dict[str, Any] | None:
    found = section.get(digest)
    return dict(found) if found is not None else None


def charges_of(section: Mapping[str, Any], digest: str) -> list[Charge]:
    found = section.get(digest)
    return [Charge.from_json(c) for c in found.get("charges", [])] if found else []


def ledger_delta(section: Mapping[str, Any], digest: str, default: float) -> float:
    """The delta a dataset's ledger composes at: fixed by its first charge."""
    found = section.get(digest)
    return float(found["delta"]) if found else default


def add_charge(
    section: dict[str, Any], charge: Charge, *, delta: float, accountant: str = "prv"
) -> dict[str, Any]:
    """Appends a charge (in place) and returns the dataset's updated ledger entry."""
    found = section.get(charge.dataset_digest)
    if found is None:
        found = {
            "digest": charge.dataset_digest,
            "delta": delta,
            "accountant": check_accountant(accountant),
            "charges": [],
        }
        section[charge.dataset_digest] = found
    found["charges"].append(charge.to_json())
    return found


def settle_charge(
    section: dict[str, Any], charge: Charge, *, delta: float, accountant: str = "prv"
) -> dict[str, Any]:
    """Replaces the charge of the same run (the full-plan reservation made when it started) with
    what the run actually spent; appends it when there is none."""
    found = section.get(charge.dataset_digest)
    if found is not None:
        found["charges"] = [c for c in found["charges"] if c.get("run") != charge.run]
    return add_charge(section, charge, delta=delta, accountant=accountant)


def own_epsilon(section: Mapping[str, Any], digest: str, default_delta: float) -> float | None:
    """A lineage's own composed epsilon at its own delta (0 with no charges; None: unbounded)."""
    found = section.get(digest)
    if not found:
        return 0.0
    return spent(charges_of(section, digest), float(found["delta"]), found.get("accountant", "prv")).epsilon


def carried(
    section: Mapping[str, Any], linked: Iterable[str], default_delta: float
) -> tuple[float | None, float]:
    """What the lineages in `linked` carry into one that shares records with them: the sum of their
    own epsilons (None when any is unbounded) and the sum of their deltas (vault.privacy.lineage
    says why a sum is sound)."""
    epsilon: float | None = 0.0
    delta = 0.0
    for other in sorted(set(linked)):
        own = own_epsilon(section, other, default_delta)
        found = section.get(other)
        if found and found.get("charges"):
            delta += float(found["delta"])
        epsilon = None if epsilon is None or own is None else epsilon + own
    return epsilon, delta


def projected_with_links(
    section: Mapping[str, Any],
    digest: str,
    planned_history: History,
    delta: float,
    links: Mapping[str, Iterable[str]],
    *,
    dp: bool = True,
    accountant: str = "prv",
    planned_rdp: Sequence[float] | None = None,
) -> float | None:
    """The largest total, after a planned run on `digest`, of that lineage and of every lineage that
    shares records with it (each its own epsilon plus what its links carry). None: unbounded."""
    own_after = projected(
        charges_of(section, digest),
        planned_history,
        delta,
        dp=dp,
        accountant=accountant,
        planned_rdp=planned_rdp,
    )
    if own_after is None:
        return None
    worst = 0.0
    for lineage in [digest, *sorted(set(links.get(digest, ())) - {digest})]:
        total = own_after if lineage == digest else own_epsilon(section, lineage, delta)
        for other in set(links.get(lineage, ())) - {lineage}:
            part = own_after if other == digest else own_epsilon(section, other, delta)
            total = None if total is None or part is None else total + part
        if total is None:
            return None
        worst = max(worst, total)
    return worst


def summary(
    section: Mapping[str, Any],
    digest: str,
    *,
    default_delta: float,
    cap: float | None = None,
    linked: Iterable[str] = (),
) -> dict[str, Any]:
    """A dataset's budget as the CLI prints it: epsilon_spent (its lineage's own composed epsilon
    plus what lineages sharing its records carry; None if unbounded), epsilon_own,
    epsilon_carried, unbounded, delta (its own ledger's), delta_with_overlaps, epsilon_cap, runs."""
    found = section.get(digest)
    delta = float(found["delta"]) if found else default_delta
    accountant = found.get("accountant", "prv") if found else "prv"
    result = spent(charges_of(section, digest), delta, accountant).to_json()
    if not found:
        result["epsilon_spent"] = 0.0
    own = result["epsilon_spent"]
    carry, carry_delta = carried(section, set(linked) - {digest}, default_delta)
    result["epsilon_own"] = own
    result["epsilon_carried"] = carry
    result["epsilon_spent"] = None if own is None or carry is None else own + carry
    result["unbounded"] = result["epsilon_spent"] is None
    result["delta_with_overlaps"] = delta + carry_delta
    result["epsilon_cap"] = cap
    result["digest"] = digest
    return result

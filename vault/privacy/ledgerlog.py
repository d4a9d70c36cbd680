"""The ledger in the audit log: every catalog commit that changes a lineage's ledger (or the links
between lineages) records the new state in a `ledger.state` entry as it commits, so the log
holds every ledger's whole history; `verify` rebuilds each ledger from the log and compares it with
the catalog's. A catalog put back to an older copy, or a ledger edited by anyone holding the
catalog key, then differs from what the log says, and verification names the lineage, what the log
says and what the catalog says.

Entry detail: {"catalog_generation": g, "lineages": {lineage: {"charges": [...], "delta",
"accountant", "runs", "epsilon_runs_sum"} or {"removed": true}}, "links": {lineage: {other:
records}} (when links changed), "ledger_baseline": true (the first entry of a vault: its whole
ledger as it was found)}.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from vault.findings import Finding

ACTION = "ledger.state"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def with_totals(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A lineage's ledger as the log records it: its charges, delta, accountant, and two totals
    cheap enough for every commit (the number of runs and the plain sum of their own epsilons; the
    composed epsilon, never larger, is recomputed from the charges)."""
    charges = list(entry.get("charges", []))
    epsilons = [c.get("epsilon") for c in charges]
    return {
        "charges": charges,
        "delta": entry.get("delta"),
        "accountant": entry.get("accountant"),
        "runs": len(charges),
        "epsilon_runs_sum": None
        if any(not c.get("dp", True) for c in charges)
        else sum(float(e or 0.0) for e in epsilons),
    }


def changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The lineages whose ledger differs between two catalog ledger sections."""
    out: dict[str, Any] = {}
    for lineage in sorted(set(before) | set(after)):
        if lineage not in after:
            out[lineage] = {"removed": True}
        elif lineage not in before or _canonical(before[lineage]) != _canonical(after[lineage]):
            out[lineage] = with_totals(after[lineage])
    return out


def replay(entries: Iterable[Mapping[str, Any]]) -> tuple[dict[str, Any], dict[str, Any] | None, bool, int]:
    """Rebuild every ledger from `ledger.state` entries: (ledgers, links or None, whether a
    baseline was recorded, the seq of the last entry used)."""
    ledgers: dict[str, Any] = {}
    links: dict[str, Any] | None = None
    baseline = False
    last = -1
    for entry, detail in _states(entries):
        baseline = baseline or bool(detail.get("ledger_baseline"))
        lineages = detail.get("lineages")
        for lineage, state in lineages.items() if isinstance(lineages, dict) else ():
            if not isinstance(state, dict):
                continue
            if state.get("removed"):
                ledgers.pop(lineage, None)
            else:
                ledgers[lineage] = state
        if isinstance(detail.get("links"), dict):
            links = detail["links"]
        seq = entry.get("seq")
        last = seq if type(seq) is int else last
    return ledgers, links, baseline, last


def _states(entries: Iterable[Mapping[str, Any]]) -> Iterator[tuple[Mapping[str, Any], dict[str, Any]]]:
    """Each `ledger.state` entry with its detail (a state the vault wrote is always an object)."""
    for entry in entries:
        detail = entry.get("detail")
        if entry.get("action") == ACTION and isinstance(detail, dict):
            yield entry, detail


def losses(entries: Iterable[Mapping[str, Any]]) -> list[Finding]:
    """States the vault never writes: a ledger only grows. A lineage's ledger is never removed, a
    run charged to it stays charged, a settled charge (no longer "running") keeps its cost, and two
    lineages once linked (sharing records) stay linked.
    A later state that drops or lowers one was written by someone holding the vault's keys (through
    the vault's own code, or sealed by hand with the running epoch's keys) to spend a budget again:
    the catalog may agree with it, so the replay alone does not tell."""
    held: dict[str, dict[str, Any]] = {}  # lineage -> run -> the charge as last recorded
    linked: set[tuple[str, str]] = set()  # pairs of lineages that share records, as recorded
    findings: list[Finding] = []
    for entry, detail in _states(entries):
        links = detail.get("links")
        if isinstance(links, dict):
            now_linked = {
                (min(a, b), max(a, b)) for a, row in links.items() if isinstance(row, dict) for b in row
            }
            if linked - now_linked:
                findings.append(_unlinked(entry.get("seq"), sorted(linked - now_linked)))
            linked = now_linked
        lineages = detail.get("lineages")
        for lineage, state in lineages.items() if isinstance(lineages, dict) else ():
            if not isinstance(state, dict):
                continue
            now = {} if state.get("removed") else _by_run(state)
            before = held.get(lineage, {})
            lost = [run for run, was in before.items() if _lowered(was, now.get(run))]
            if lost:
                findings.append(_lost(entry.get("seq"), lineage, lost, bool(state.get("removed"))))
            # each loss is reported once, at the state that made it
            held[lineage] = {**{run: c for run, c in before.items() if run not in lost}, **now}
    return findings


def _by_run(state: Mapping[str, Any]) -> dict[str, Any]:
    charges = state.get("charges")
    return (
        {str(c.get("run")): c for c in charges if isinstance(c, dict) and "run" in c}
        if isinstance(charges, list)
        else {}
    )


def _lowered(was: Any, now: Any) -> bool:
    if now is None:
        return True
    if not isinstance(was, dict) or was.get("outcome") == "running" or not isinstance(now, dict):
        return False
    return any(
        json.dumps(was.get(field), sort_keys=True) != json.dumps(now.get(field), sort_keys=True)
        for field in ("history", "rdp", "dp")
    )


def _lost(seq: Any, lineage: str, runs: list[str], removed: bool) -> Finding:
    what = (
        "removes the lineage's ledger"
        if removed
        else f"drops or lowers the charge of run(s) {', '.join(runs)}"
    )
    return Finding(
        kind="ledger",
        object=f"audit:{seq}" if type(seq) is int else "audit",
        expected=f"a ledger that only grows: every charge recorded for lineage {lineage[:16]} stays, as settled",
        found=f"the ledger.state at entry {seq} {what}",
        message="the vault never writes such a state: someone holding its keys reset a privacy budget",
    )


def _unlinked(seq: Any, pairs: list[tuple[str, str]]) -> Finding:
    return Finding(
        kind="ledger",
        object=f"audit:{seq}" if type(seq) is int else "audit",
        expected="links between lineages that only grow: records shared once are shared for good",
        found=f"the ledger.state at entry {seq} drops the link between "
        + ", ".join(f"{a[:16]} and {b[:16]}" for a, b in pairs),
        message="the vault never writes such a state: someone holding its keys cut a budget's carry-over",
    )


def _describe(state: Mapping[str, Any] | None) -> str:
    if not state:
        return "no ledger"
    charges = state.get("charges", [])
    total = with_totals(state)["epsilon_runs_sum"]
    spend = "unbounded" if total is None else f"runs summing to ε {total:.2f}"
    return f"{len(charges)} charge(s), {spend}"


def differences(
    catalog_ledger: Mapping[str, Any],
    catalog_links: Mapping[str, Any],
    entries: Iterable[Mapping[str, Any]],
) -> list[Finding]:
    """Every lineage whose ledger (or links) in the catalog is not what the log recorded last."""
    entries = list(entries)
    logged, links, baseline, _ = replay(entries)
    findings: list[Finding] = losses(entries)
    if not baseline and not logged:
        if catalog_ledger:
            findings.append(
                Finding(
                    kind="ledger",
                    object="catalog:ledger",
                    expected="the ledger recorded in the audit log",
                    found="a vault from before the log recorded ledgers",
                    message="the next open by an operator or admin records it",
                    severity="warning",
                )
            )
        return findings
    for lineage in sorted(set(logged) | set(catalog_ledger)):
        mine = catalog_ledger.get(lineage)
        theirs = logged.get(lineage)
        same = (
            mine is not None
            and theirs is not None
            and _canonical(with_totals(mine)["charges"]) == _canonical(theirs.get("charges", []))
            and mine.get("delta") == theirs.get("delta")
        )
        if not same:
            findings.append(
                Finding(
                    kind="ledger",
                    object=f"catalog:ledger/{lineage}",
                    expected=f"what the audit log recorded: {_describe(theirs)}",
                    found=f"the catalog holds {_describe(mine)}",
                    message="the catalog's privacy ledger differs from the log: it was rolled back or edited",
                )
            )
    if links is not None and _canonical(links) != _canonical(dict(catalog_links)):
        findings.append(
            Finding(
                kind="ledger",
                object="catalog:lineage",
                expected=f"the links the audit log recorded ({len(links)} lineage(s))",
                found=f"{len(catalog_links)} lineage(s) with other links",
                message="the record index's links differ from the log: it was rolled back or edited",
            )
        )
    return findings

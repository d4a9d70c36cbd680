"""The ledger as the log records it: changes between two catalogs, the replay, and the differences
verify reports (a lineage dropped, a charge edited, links changed)."""

from __future__ import annotations

from vault.privacy import ledgerlog


def charge(run: str, epsilon: float, outcome: str = "ok") -> dict:
    return {"run": run, "dp": True, "epsilon": epsilon, "outcome": outcome, "history": [[1.0, 0.1, 10]]}


def lineage(*charges: dict) -> dict:
    return {"digest": "A", "delta": 1e-5, "accountant": "prv", "charges": list(charges)}


def entry(seq: int, lineages: dict, **extra) -> dict:
    return {"seq": seq, "action": ledgerlog.ACTION, "detail": {"lineages": lineages, **extra}}


def test_only_changed_lineages_are_recorded_with_their_totals() -> None:
    before = {"A": lineage(charge("r1", 1.0)), "B": lineage()}
    after = {"A": lineage(charge("r1", 1.0), charge("r2", 0.5)), "B": lineage()}
    changed = ledgerlog.changes(before, after)
    assert list(changed) == ["A"]
    assert changed["A"]["runs"] == 2 and changed["A"]["epsilon_runs_sum"] == 1.5
    assert ledgerlog.changes(after, {"B": lineage()}) == {"A": {"removed": True}}


def test_the_replay_keeps_the_last_state_of_each_lineage() -> None:
    log = [
        entry(0, {}, ledger_baseline=True, links={}),
        entry(5, {"A": ledgerlog.with_totals(lineage(charge("r1", 2.0, "running")))}),
        {"seq": 6, "action": "train.end", "detail": {}},
        entry(7, {"A": ledgerlog.with_totals(lineage(charge("r1", 1.9)))}),
    ]
    ledgers, links, baseline, last = ledgerlog.replay(log)
    assert baseline and links == {} and last == 7
    assert ledgers["A"]["charges"] == [charge("r1", 1.9)]
    assert ledgerlog.differences({"A": lineage(charge("r1", 1.9))}, {}, log) == []


def test_a_dropped_or_edited_ledger_is_a_finding() -> None:
    log = [
        entry(0, {"A": ledgerlog.with_totals(lineage(charge("r1", 10.74)))}, ledger_baseline=True, links={})
    ]
    (dropped,) = ledgerlog.differences({}, {}, log)
    assert (
        dropped.object == "catalog:ledger/A" and "10.74" in dropped.expected and "no ledger" in dropped.found
    )
    (edited,) = ledgerlog.differences({"A": lineage(charge("r1", 0.1))}, {}, log)
    assert edited.severity == "error" and "0.10" in edited.found
    (unlinked,) = ledgerlog.differences({"A": lineage(charge("r1", 10.74))}, {"A": {"B": 3}}, log)
    assert unlinked.object == "catalog:lineage"


def test_a_vault_whose_log_never_held_the_ledger_is_a_warning() -> None:
    (finding,) = ledgerlog.differences({"A": lineage(charge("r1", 1.0))}, {}, [])
    assert finding.severity == "warning"

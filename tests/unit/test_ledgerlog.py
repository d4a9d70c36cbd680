"""The ledger as the log records it: changes between two catalogs, the replay, and the differences
verify reports (a lineage dropped, a charge edited, links changed)."""

from __future__ import annotations

import math

import pytest

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


def test_key_order_is_not_a_difference_but_every_charge_field_is() -> None:
    log = [entry(0, {"A": ledgerlog.with_totals(lineage(charge("r1", 1.0)))}, ledger_baseline=True)]
    reordered = {key: value for key, value in reversed(charge("r1", 1.0).items())}
    assert ledgerlog.differences({"A": lineage(reordered)}, {}, log) == []
    assert ledgerlog.changes({"A": lineage(charge("r1", 1.0))}, {"A": lineage(reordered)}) == {}
    edited = {**charge("r1", 1.0), "outcome": "cancelled"}
    (finding,) = ledgerlog.differences({"A": lineage(edited)}, {}, log)
    assert finding.kind == "ledger" and finding.object == "catalog:ledger/A"


def test_totals_count_runs_without_an_epsilon_as_zero_and_any_non_dp_run_as_unbounded() -> None:
    totals = ledgerlog.with_totals(lineage(charge("r1", 1.5), {**charge("r2", 0.0), "epsilon": None}))
    assert totals["epsilon_runs_sum"] == 1.5 and totals["runs"] == 2 and totals["accountant"] == "prv"
    assert totals["delta"] == 1e-5 and totals["charges"][0]["run"] == "r1"
    no_dp_key = {k: v for k, v in charge("r3", 2.0).items() if k != "dp"}
    assert ledgerlog.with_totals(lineage(no_dp_key))["epsilon_runs_sum"] == 2.0, "dp defaults to true"
    assert (
        ledgerlog.with_totals(lineage(charge("r1", 1.0), {**charge("r4", 0.0), "dp": False}))[
            "epsilon_runs_sum"
        ]
        is None
    )
    empty = ledgerlog.with_totals({"delta": 1e-5, "accountant": "rdp"})
    assert empty["runs"] == 0 and empty["charges"] == [] and empty["epsilon_runs_sum"] == 0.0


def test_the_replay_of_nothing_and_of_removals() -> None:
    assert ledgerlog.replay([]) == ({}, None, False, -1)
    ledgers, links, baseline, last = ledgerlog.replay([{"action": "run.start", "seq": 3}])
    assert (ledgers, links, baseline, last) == ({}, None, False, -1)
    log = [
        entry(2, {"A": ledgerlog.with_totals(lineage()), "B": ledgerlog.with_totals(lineage())}),
        entry(4, {"A": {"removed": True}}),
        {"action": ledgerlog.ACTION, "detail": {"lineages": {}}},  # no seq: the last one stands
    ]
    ledgers, links, baseline, last = ledgerlog.replay(log)
    assert sorted(ledgers) == ["B"] and links is None and baseline is False and last == 4


def test_a_log_without_links_does_not_judge_the_catalogs_links() -> None:
    log = [entry(0, {"A": ledgerlog.with_totals(lineage(charge("r1", 1.0)))}, ledger_baseline=True)]
    assert ledgerlog.differences({"A": lineage(charge("r1", 1.0))}, {"A": {"B": 2}}, log) == []
    (finding,) = ledgerlog.differences(
        {"A": lineage(charge("r1", 1.0))}, {"A": {"B": 2}}, [*log, entry(1, {}, links={})]
    )
    assert finding.kind == "ledger" and finding.object == "catalog:lineage" and finding.severity == "error"
    assert "0 lineage(s)" in finding.expected and "1 lineage(s)" in finding.found and finding.message


def test_a_logged_state_without_charges_matches_an_empty_ledger() -> None:
    log = [entry(0, {"A": {"delta": 1e-5}}, ledger_baseline=True)]
    assert ledgerlog.differences({"A": lineage()}, {}, log) == []
    (other_delta,) = ledgerlog.differences({"A": {**lineage(), "delta": 1e-6}}, {}, log)
    assert other_delta.object == "catalog:ledger/A"


def test_a_ledger_appearing_after_an_empty_baseline_is_an_error_not_the_old_vault_warning() -> None:
    log = [entry(0, {}, ledger_baseline=True, links={})]
    (finding,) = ledgerlog.differences({"A": lineage(charge("r1", 1.0))}, {}, log)
    assert finding.severity == "error" and finding.object == "catalog:ledger/A" and finding.kind == "ledger"
    assert "no ledger" in finding.expected and "1 charge(s)" in finding.found and finding.message
    (old,) = ledgerlog.differences({"A": lineage(charge("r1", 1.0))}, {}, [])
    assert (old.kind, old.object, old.severity) == ("ledger", "catalog:ledger", "warning")
    assert all(isinstance(text, str) and text for text in (old.expected, old.found, old.message))
    assert ledgerlog.differences({}, {}, []) == []


def test_a_finding_says_what_each_side_holds_in_words() -> None:
    non_dp = {**charge("r2", 0.0), "dp": False, "epsilon": None}
    log = [entry(0, {"A": ledgerlog.with_totals(lineage(charge("r1", 1.0), non_dp))}, ledger_baseline=True)]
    (dropped,) = ledgerlog.differences({}, {}, log)
    assert dropped.expected == "what the audit log recorded: 2 charge(s), unbounded"
    assert dropped.found == "the catalog holds no ledger"
    (edited,) = ledgerlog.differences({"A": lineage(charge("r1", 1.0))}, {}, log)
    assert edited.found == "the catalog holds 1 charge(s), runs summing to ε 1.00"


def test_the_replay_of_a_removal_it_never_saw_recorded_is_no_error() -> None:
    ledgers, _, _, last = ledgerlog.replay([entry(3, {"Z": {"removed": True}})])
    assert ledgers == {} and last == 3


def test_a_ledger_holding_a_number_json_cannot_write_is_refused_not_compared() -> None:
    before = {"A": lineage(charge("r1", 1.0))}
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError, match="JSON compliant"):
            ledgerlog.changes(before, {"A": lineage(charge("r1", bad))})


def test_the_replay_passes_over_states_that_are_not_objects() -> None:
    """A line appended by hand inside a running command is checked when its epoch closes; until
    then the replay may meet it, and whatever it holds must not stop verification."""
    good = {"charges": [{"epsilon": 1.0}], "delta": 1e-6}
    entries = [
        {"action": "ledger.state", "seq": 3, "detail": {"lineages": {"A": good}, "ledger_baseline": True}},
        {"action": "ledger.state", "seq": 4, "detail": "not an object"},
        {"action": "ledger.state", "seq": "x", "detail": {"lineages": ["A"], "links": [1]}},
        {"action": "ledger.state", "seq": 6, "detail": {"lineages": {"A": "gone", "B": 7}}},
    ]
    assert ledgerlog.replay(entries) == ({"A": good}, None, True, 6)


def test_a_state_that_drops_or_lowers_a_recorded_charge_is_a_finding_even_when_the_catalog_agrees() -> None:
    """A ledger only grows: the replay's last state can match a reset catalog, so each step is
    checked too. A reservation may settle lower; a settled charge may not change."""
    running = charge("r1", 2.0, "running")
    settled = charge("r1", 1.9)
    grown = [
        entry(0, {"A": ledgerlog.with_totals(lineage())}, ledger_baseline=True, links={}),
        entry(3, {"A": ledgerlog.with_totals(lineage(running))}),
        entry(5, {"A": ledgerlog.with_totals(lineage({**settled, "history": [[1.0, 0.1, 9]]}))}),
        entry(
            7,
            {"A": ledgerlog.with_totals(lineage({**settled, "history": [[1.0, 0.1, 9]]}, charge("r2", 0.5)))},
        ),
    ]
    assert ledgerlog.losses(grown) == []
    final = lineage({**settled, "history": [[1.0, 0.1, 9]]}, charge("r2", 0.5))
    assert ledgerlog.differences({"A": final}, {}, grown) == []
    reset = [*grown, entry(9, {"A": ledgerlog.with_totals(lineage())})]
    (dropped,) = ledgerlog.losses(reset)
    assert dropped.object == "audit:9" and "r1, r2" in dropped.found and dropped.severity == "error"
    assert ledgerlog.differences({"A": lineage()}, {}, reset) == [dropped]  # the catalog agrees
    lowered = [*grown, entry(9, {"A": ledgerlog.with_totals(lineage(charge("r1", 0.1), charge("r2", 0.5)))})]
    (finding,) = ledgerlog.losses(lowered)
    assert "r1" in finding.found and "r2" not in finding.found
    removed = [*grown, entry(9, {"A": {"removed": True}})]
    (gone,) = ledgerlog.losses(removed)
    assert "removes" in gone.found
    assert ledgerlog.losses([*reset, entry(11, {"A": ledgerlog.with_totals(lineage())})]) == [dropped]


def test_a_state_that_drops_a_link_between_lineages_is_a_finding() -> None:
    """Records shared once are shared for good (the sets outlive a deleted dataset): a links map
    that loses a pair cut the spend one lineage carries into the other."""
    linked = {"A": {"B": 120}, "B": {"A": 120}}
    log = [
        entry(0, {}, ledger_baseline=True, links={}),
        entry(2, {}, links=linked),
        entry(4, {}, links={**linked, "C": {"A": 5}, "A": {"B": 120, "C": 5}}),
    ]
    assert ledgerlog.losses(log) == []
    cut = [*log, entry(6, {}, links={"A": {"C": 5}, "C": {"A": 5}})]
    (finding,) = ledgerlog.losses(cut)
    assert finding.object == "audit:6" and finding.found.endswith("drops the link between A and B")
    assert ledgerlog.differences({}, {"A": {"C": 5}, "C": {"A": 5}}, cut) == [finding]
    assert ledgerlog.losses([*cut, entry(8, {}, links={"A": {"C": 5}, "C": {"A": 5}})]) == [finding]

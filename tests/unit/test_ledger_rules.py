"""The ledger's bookkeeping rules one at a time: a settled run replaces only its own reservation,
the first charge fixes the delta and the accountant, histories are checked at their edges, and a
non-DP run (planned or past) makes the projection unbounded. Written against mutants that survived
the ledger's tests (`make mutate MODULES=ledger`)."""

from __future__ import annotations

import pytest

from vault.privacy import ledger, tuning

RUN_A = ((1.1, 0.01, 800),)
RUN_B = ((1.6, 1 / 16, 240),)
PLANNED = ((1.1, 0.01, 2000),)


def charge(run: str, history=RUN_A, *, dp: bool = True, digest: str = "sha256:aa", **extra) -> ledger.Charge:
    return ledger.Charge(run, digest, ledger.normalise(history), dp, **extra)


def test_settling_a_run_replaces_only_its_own_reservation() -> None:
    section: dict = {}
    ledger.add_charge(section, charge("run-1"), delta=1e-5)
    ledger.add_charge(section, charge("run-2", PLANNED, outcome="running"), delta=1e-5)
    ledger.add_charge(section, charge("run-3", RUN_B, digest="sha256:bb"), delta=1e-6)
    entry = ledger.settle_charge(section, charge("run-2", RUN_B, outcome="cancelled"), delta=1e-5)
    assert [(c["run"], c["outcome"]) for c in entry["charges"]] == [("run-1", "ok"), ("run-2", "cancelled")]
    assert ledger.summary(section, "sha256:aa", default_delta=1e-5)["epsilon_spent"] == pytest.approx(
        ledger.compose([RUN_A, RUN_B], 1e-5)
    )
    assert [c.run for c in ledger.charges_of(section, "sha256:bb")] == ["run-3"]  # another dataset untouched
    fresh = ledger.settle_charge(section, charge("run-4", digest="sha256:cc"), delta=1e-6, accountant="rdp")
    assert fresh == {
        "digest": "sha256:cc",
        "delta": 1e-6,
        "accountant": "rdp",
        "charges": [charge("run-4", digest="sha256:cc").to_json()],
    }


def test_the_first_charge_fixes_delta_and_accountant_and_the_summary_uses_them() -> None:
    section: dict = {}
    ledger.add_charge(section, charge("run-1"), delta=1e-6, accountant="rdp")
    ledger.add_charge(section, charge("run-2", RUN_B), delta=1e-3, accountant="prv")
    assert (section["sha256:aa"]["delta"], section["sha256:aa"]["accountant"]) == (1e-6, "rdp")
    assert ledger.ledger_delta(section, "sha256:aa", 0.5) == 1e-6
    assert ledger.ledger_delta(section, "sha256:zz", 0.5) == 0.5
    budget = ledger.summary(section, "sha256:aa", default_delta=1e-3, cap=5.0)
    assert (budget["delta"], budget["accountant"], budget["epsilon_cap"], budget["digest"]) == (
        1e-6,
        "rdp",
        5.0,
        "sha256:aa",
    )
    assert budget["epsilon_spent"] == pytest.approx(ledger.compose([RUN_A, RUN_B], 1e-6, "rdp"))
    assert budget["epsilon_spent"] != pytest.approx(ledger.compose([RUN_A, RUN_B], 1e-6, "prv"), rel=1e-3)
    assert ledger.entry(section, "sha256:aa") == section["sha256:aa"]
    assert ledger.entry(section, "sha256:aa") is not section["sha256:aa"]  # a copy
    assert ledger.entry(section, "sha256:zz") is None
    empty = ledger.summary(section, "sha256:zz", default_delta=1e-4)
    assert (empty["epsilon_spent"], empty["unbounded"], empty["delta"], empty["accountant"]) == (
        0.0,
        False,
        1e-4,
        "prv",
    )
    with pytest.raises(Exception, match="accountant"):
        ledger.add_charge({}, charge("run-5"), delta=1e-5, accountant="moments")


def test_histories_are_checked_at_their_edges() -> None:
    assert ledger.normalise([(1.0, 1.0, 3), (2.0, 0.5, 0)]) == ((1.0, 1.0, 3),)  # rate 1 is allowed
    assert ledger.normalise([["1", "0.5", "2"]]) == ((1.0, 0.5, 2),)
    for bad in [(0.0, 0.1, 1), (-1.0, 0.1, 1), (1.0, 0.0, 1), (1.0, 1.01, 1), (1.0, 0.1, -1)]:
        with pytest.raises(ValueError, match="not an accountant history entry"):
            ledger.normalise([bad])
    for delta in (0.0, 1.0):
        with pytest.raises(ValueError, match=r"delta must be in \(0, 1\)"):
            ledger.compose([RUN_A], delta)
    assert ledger.compose([RUN_A], 1e-5, "rdp") > ledger.compose([RUN_A], 1e-3, "rdp") > 0


def test_a_non_dp_run_planned_or_past_makes_the_total_unbounded() -> None:
    dp = [charge("run-1")]
    assert ledger.projected(dp, RUN_B, 1e-5) == pytest.approx(ledger.compose([RUN_A, RUN_B], 1e-5))
    assert ledger.projected(dp, RUN_B, 1e-5, accountant="rdp") == pytest.approx(
        ledger.compose([RUN_A, RUN_B], 1e-5, "rdp")
    )
    assert ledger.projected(dp, RUN_B, 1e-5, dp=False) is None
    assert ledger.projected([*dp, charge("run-2", (), dp=False)], RUN_B, 1e-5) is None
    spent = ledger.spent(dp, 1e-5, "rdp")
    assert (spent.unbounded, spent.delta, spent.accountant) == (False, 1e-5, "rdp")
    assert spent.epsilon == pytest.approx(ledger.compose([RUN_A], 1e-5, "rdp"))
    unbounded = ledger.spent([*dp, charge("run-2", (), dp=False)], 1e-5).to_json()
    assert (unbounded["epsilon_spent"], unbounded["unbounded"], len(unbounded["runs"])) == (None, True, 2)


def test_a_charge_read_back_takes_the_defaults_the_format_gives() -> None:
    minimal = {"run": "r", "dataset_digest": "sha256:aa", "dp": True}
    assert ledger.Charge.from_json(minimal) == ledger.Charge("r", "sha256:aa", (), True)
    read = ledger.Charge.from_json({**minimal, "history": [[1.1, 0.01, 800]], "version": 2, "epsilon": 1.5})
    assert (read.history, read.version, read.epsilon, read.outcome, read.dataset, read.created) == (
        RUN_A,
        2,
        1.5,
        "ok",
        "",
        "",
    )


SMALL = ((2.0, 0.01, 50),)  # a run whose epsilon stays well below 1


def linked_section(*lineages: tuple[str, tuple, bool], delta: float = 1e-5) -> dict:
    section: dict = {}
    for digest, history, dp in lineages:
        ledger.add_charge(
            section, charge(f"run-{digest}", history, dp=dp, digest=digest), delta=delta, accountant="rdp"
        )
    return section


def test_a_lineages_own_epsilon_is_composed_at_its_own_delta_and_accountant() -> None:
    section = linked_section(("A", RUN_A, True), delta=1e-6)
    assert ledger.own_epsilon(section, "A", 1e-2) == pytest.approx(ledger.compose([RUN_A], 1e-6, "rdp"))
    assert ledger.own_epsilon(section, "none", 1e-5) == 0.0
    assert ledger.own_epsilon(linked_section(("A", (), False)), "A", 1e-5) is None
    section["A"].pop("accountant")  # a ledger from before the accountant was recorded: PRV
    assert ledger.own_epsilon(section, "A", 1e-2) == pytest.approx(ledger.compose([RUN_A], 1e-6, "prv"))
    settled = ledger.settle_charge({}, charge("run-1"), delta=1e-5)
    assert settled["accountant"] == "prv" and settled["delta"] == 1e-5


def test_a_projection_with_links_takes_the_worst_lineage_that_shares_records() -> None:
    section = linked_section(("A", SMALL, True), ("B", SMALL, True), ("C", RUN_B, True))
    own = {d: ledger.own_epsilon(section, d, 1e-5) for d in "ABC"}
    assert all(0 < own[d] < 1 for d in "AB") and own["C"] > 1
    after = ledger.projected(ledger.charges_of(section, "A"), SMALL, 1e-5, accountant="rdp")

    def project(links: dict, **options) -> float | None:
        return ledger.projected_with_links(section, "A", SMALL, 1e-5, links, accountant="rdp", **options)

    assert project({}) == pytest.approx(after) and after < 1, "no links: its own projection"
    assert project({"A": {"A"}}) == pytest.approx(after), "a link to itself is not counted twice"
    assert project({"A": {"B"}, "B": {"A"}}) == pytest.approx(after + own["B"])
    # B also shares records with C: B's total (its own, A after the run, and C) is the worst
    assert project({"A": {"B"}, "B": {"A", "C", "B"}}) == pytest.approx(after + own["B"] + own["C"])
    # links read one way only: B's own links count even when they do not name A
    assert project({"A": {"B"}, "B": {"C"}}) == pytest.approx(own["B"] + own["C"])
    assert project({"A": {"B"}, "B": {"A"}}, dp=False) is None
    unbounded = linked_section(("A", SMALL, True), ("B", (), False))
    assert ledger.projected_with_links(unbounded, "A", SMALL, 1e-5, {"A": {"B"}}, accountant="rdp") is None
    assert ledger.projected_with_links(
        unbounded, "A", SMALL, 1e-5, {"A": set(), "C": {"B"}}, accountant="rdp"
    ) == pytest.approx(after), "a lineage not linked to A does not count"
    assert ledger.projected_with_links(section, "A", SMALL, 1e-5, {}) == pytest.approx(
        ledger.projected(ledger.charges_of(section, "A"), SMALL, 1e-5)
    ), "the projection's accountant defaults to PRV"


def test_a_summary_adds_what_linked_lineages_carry_and_their_deltas() -> None:
    section = linked_section(("A", SMALL, True), ("B", SMALL, True), ("C", RUN_B, True), delta=1e-6)
    ledger.add_charge(section, charge("run-D", (), digest="D"), delta=1e-4, accountant="rdp")  # no steps
    section["E"] = {"digest": "E", "delta": 1e-3, "accountant": "rdp", "charges": []}  # a ledger, no charge
    own = {d: ledger.own_epsilon(section, d, 1e-5) for d in "ABC"}
    row = ledger.summary(section, "A", default_delta=1e-5, linked=["B", "C", "A", "B", "D", "E", "none"])
    assert row["epsilon_own"] == pytest.approx(own["A"])
    assert row["epsilon_carried"] == pytest.approx(own["B"] + own["C"])
    assert row["epsilon_spent"] == pytest.approx(own["A"] + own["B"] + own["C"]) and not row["unbounded"]
    # A's own delta, B's and C's, and D's (a charge, if of no steps); not E's (no charge), not A's twice
    assert row["delta"] == 1e-6 and row["delta_with_overlaps"] == pytest.approx(3e-6 + 1e-4)
    assert ledger.carried(section, [], 1e-5) == (0.0, 0.0)
    section["B"]["charges"].append(charge("run-X", (), dp=False, digest="B").to_json())
    row = ledger.summary(section, "A", default_delta=1e-5, linked=["B"])
    assert (row["epsilon_own"], row["epsilon_carried"], row["epsilon_spent"], row["unbounded"]) == (
        pytest.approx(own["A"]),
        None,
        None,
        True,
    )
    assert ledger.carried(section, ["C", "B"], 1e-5) == (None, pytest.approx(2e-6))
    alone = ledger.summary(section, "none", default_delta=1e-5, linked=["C"])
    assert (alone["epsilon_own"], alone["epsilon_spent"]) == (0.0, pytest.approx(own["C"]))
    assert alone["delta_with_overlaps"] == pytest.approx(1e-5 + 1e-6)


def test_a_tuned_run_is_projected_as_its_rdp_curve_not_its_history() -> None:
    curve = tuning.tuned_curve(RUN_B, 3.0)
    past = [charge("run-1")]
    expected = ledger.compose([RUN_A], 1e-5, curves=[curve])
    assert ledger.projected(past, RUN_B, 1e-5, planned_rdp=curve) == pytest.approx(expected)
    assert expected > ledger.compose([RUN_A, RUN_B], 1e-5, "rdp"), "the tuning costs more than one run"
    assert expected != pytest.approx(ledger.compose([RUN_A, RUN_B], 1e-5, curves=[curve]), rel=1e-3)
    section = linked_section(("A", RUN_A, True))
    assert ledger.projected_with_links(section, "A", RUN_B, 1e-5, {}, planned_rdp=curve) == pytest.approx(
        ledger.projected(ledger.charges_of(section, "A"), RUN_B, 1e-5, planned_rdp=curve)
    )
    assert ledger.projected_with_links(section, "A", RUN_B, 1e-5, {}, planned_rdp=curve) == pytest.approx(
        expected
    )


def test_a_ledger_from_before_the_accountant_was_recorded_is_summarised_in_prv() -> None:
    section = linked_section(("A", RUN_A, True), delta=1e-6)
    section["A"].pop("accountant")
    budget = ledger.summary(section, "A", default_delta=1e-5)
    assert budget["accountant"] == "prv" and budget["delta"] == 1e-6
    assert budget["epsilon_spent"] == pytest.approx(ledger.compose([RUN_A], 1e-6, "prv"))
    fresh = ledger.summary(section, "B", default_delta=1e-5)
    assert fresh == {
        "epsilon_spent": 0.0,
        "unbounded": False,
        "delta": 1e-5,
        "accountant": "prv",
        "runs": [],
        "epsilon_own": 0.0,
        "epsilon_carried": 0.0,
        "delta_with_overlaps": 1e-5,
        "epsilon_cap": None,
        "digest": "B",
    }


def test_a_tuned_charge_costs_its_rdp_curve_and_spent_defaults_to_prv() -> None:
    curve = tuning.tuned_curve(RUN_B, 3.0)
    tuned = charge("run-t", RUN_B, rdp=curve)
    cost = ledger.spent([charge("run-1"), tuned], 1e-5)
    assert cost.epsilon == pytest.approx(ledger.compose([RUN_A], 1e-5, curves=[curve]))
    assert cost.epsilon > ledger.compose([RUN_A, RUN_B], 1e-5, "rdp"), "not the chosen candidate's history"
    plain = ledger.spent([charge("run-1")], 1e-5)
    assert plain.accountant == "prv" and plain.epsilon == pytest.approx(ledger.compose([RUN_A], 1e-5, "prv"))
    unbounded = ledger.spent([charge("run-2", (), dp=False)], 1e-6, "rdp")
    assert (unbounded.epsilon, unbounded.unbounded, unbounded.delta, unbounded.accountant) == (
        None,
        True,
        1e-6,
        "rdp",
    )


def test_every_field_of_a_charge_survives_the_catalog_and_an_entry_may_lack_charges() -> None:
    full = charge(
        "run-t",
        RUN_B,
        dataset="xrays",
        version=3,
        created="2026-01-15T00:00:00Z",
        outcome="ok",
        epsilon=1.5,
        rdp=tuning.tuned_curve(RUN_B, 3.0),
        metrics_of="run-0",
    )
    assert ledger.Charge.from_json(full.to_json()) == full
    assert ledger.charges_of({"A": {"digest": "A", "delta": 1e-5}}, "A") == []

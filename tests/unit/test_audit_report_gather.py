"""The access report's gathering and its long tables, on entries made here (no vault needed)."""

from __future__ import annotations

import gc
import weakref
from typing import Any

from vault.audit.report import render_html, render_markdown
from vault.audit.report.collect import Collector, Scope
from vault.audit.report.render import LISTED, seq_ranges, shown

ACTIONS: list[tuple[str, str, dict[str, Any]]] = [
    ("dataset.import", "scans", {"version": 1, "samples": 40, "format": "csv"}),
    ("dataset.read", "scans", {"purpose": "train", "version": 1, "samples": 40}),
    ("train.start", "scans", {"run": "r1", "model": "cnn", "dp": True, "epsilon": 3.0}),
    ("train.end", "scans", {"run": "r1", "model": "m1", "epsilon": 2.9, "ledger_epsilon": 2.9}),
    ("model.evaluate", "scans", {"model": "m1", "samples": 10, "accuracy": 0.9}),
    ("model.export", "m1", {"approvals": [{"user": "bo", "role": "admin"}]}),
    ("policy.decision", "scans", {"request_action": "train", "rule": "roles", "outcome": "denied"}),
    ("network.blocked", "vault", {"destination": "10.0.0.1:443", "origin": "urllib"}),
    ("network.isolation", "vault", {"mode": "none", "policy_requires": "namespace"}),
    ("session.unlock", "vault", {"pid": 7}),
    ("session.end", "vault", {}),
    ("session.unlock_failed", "vault", {}),
    ("keys.add", "cy", {"role": "operator"}),
    ("keys.remove", "cy", {"role": "operator"}),
    ("dataset.delete", "scans", {"versions": [1], "objects": 3}),
]


def entry(seq: int, action: str, subject: str, detail: dict[str, Any], **fields: Any) -> dict[str, Any]:
    detail = dict(detail)
    outcome = detail.pop("outcome", "ok")
    return {
        "v": 1,
        "seq": seq,
        "time": fields["time"] if "time" in fields else f"2026-11-01T10:00:{seq % 60:02d}.000000Z",
        "actor": fields.get("actor", "ana"),
        "role": "admin",
        "action": action,
        "subject": subject,
        "outcome": outcome,
        "detail": detail,
    }


def test_a_gathered_report_is_freed_as_soon_as_it_is_dropped() -> None:
    """A report over a million entries keeps a row for most of them; held in a reference cycle, it
    waited for the cycle collector, which walked every object the process had (most of a second at
    exit). Every action is fed, so no handler can tie the collector to itself."""
    was = gc.isenabled()
    gc.disable()
    try:
        collector = Collector(Scope())
        for seq, (action, subject, detail) in enumerate(ACTIONS):
            collector.add(entry(seq, action, subject, detail))
        out = collector.result()
        assert out.entries == len(ACTIONS) and len(out.exports) == 1 and len(out.blocked) == 1
        alive = [weakref.ref(collector), weakref.ref(out), weakref.ref(out.datasets["scans"])]
        del collector, out
        assert [ref() is None for ref in alive] == [True, True, True]
    finally:
        if was:
            gc.enable()


def reads(count: int) -> list[dict[str, Any]]:
    """`count` reads over two days by two people for two purposes, 5 records each."""
    rows = []
    for seq in range(count):
        rows.append(
            {
                "seq": seq,
                "time": f"2026-11-0{1 if seq < count // 2 else 2}T09:{seq % 60:02d}:00.000000Z",
                "actor": "ana" if (seq // 10) % 2 == 0 else "bo",
                "purpose": "evaluate" if seq % 3 == 0 else "train",
                "version": 1,
                "records": 5,
            }
        )
    return rows


def test_a_table_up_to_its_limit_lists_every_row_and_a_longer_one_is_grouped() -> None:
    assert shown("reads", reads(LISTED)) == (reads(LISTED), False)
    groups, grouped = shown("reads", reads(LISTED + 1))
    assert grouped and len(groups) == 8  # two days, two people, two purposes


def test_a_long_table_is_grouped_by_day_person_and_fields_each_group_naming_its_entries() -> None:
    groups, grouped = shown("reads", reads(240))
    assert grouped
    keys = [(g["time"], g["actor"], g["purpose"]) for g in groups]
    assert keys == [  # in the order each group first appears
        ("2026-11-01", "ana", "evaluate"),
        ("2026-11-01", "ana", "train"),
        ("2026-11-01", "bo", "train"),
        ("2026-11-01", "bo", "evaluate"),
        ("2026-11-02", "ana", "evaluate"),
        ("2026-11-02", "ana", "train"),
        ("2026-11-02", "bo", "train"),
        ("2026-11-02", "bo", "evaluate"),
    ]
    ana_train = groups[1]
    # ana reads in seqs 0-9, 20-29, ..., 100-109 of the first day; a third of them (seq % 3 == 0) evaluate
    assert ana_train["entries"] == 40 and ana_train["records"] == 200 and ana_train["version"] == 1
    assert ana_train["seq"].startswith("1-2, 4-5, 7-8, 20, 22-23, 25-26, 28-29, 40-41, ")
    assert ana_train["seq"].endswith(", 88-89, 100-101, 103-104, 106-107, 109")
    assert sum(g["entries"] for g in groups) == 240 and sum(g["records"] for g in groups) == 1200

    report = {
        "schema": "strongroom-access-report-v1",
        "generated": "now",
        "origin": "vault",
        "verification": {"ok": True, "entries": 240, "signed_size": 240, "message": "", "findings": []},
        "scope": {"since": None, "until": None, "dataset": None, "user": None},
        "entries": 240,
        "first": None,
        "last": None,
        "datasets": [
            {
                "name": "scans",
                "imports": [],
                "reads": reads(240),
                "records_read": 1200,
                "readers": {"ana": 120, "bo": 120},
                "trainings": [],
                "evaluations": [],
                "deletions": [],
                "privacy_spent": [],
                "epsilon_spent": None,
            }
        ],
        "people": [],
        "exports": [],
        "refusals": [],
        "network_blocked": [],
        "sessions_below_isolation": [],
    }
    markdown = render_markdown(report)
    assert "8 groups by day and person (every entry is in the JSON report)" in markdown
    row = next(line for line in markdown.splitlines() if line.startswith("| 40: 1-2, 4-5"))
    assert row.split(" | ")[1:4] == ["2026-11-01", "ana", "train"] and " | 200 |" in row
    page = render_html(report)
    assert "8 groups by day and person" in page and "<td>40: 1-2, 4-5, 7-8, 20, 22-23" in page


def test_rows_with_missing_fields_or_values_that_are_lists_are_grouped_by_their_text() -> None:
    """Rows come from the log, which an insider may have written by hand: a field may be absent,
    or a list where text belongs. Grouping neither fails nor splits what reads the same."""
    rows = []
    for seq in range(LISTED + 10):
        row: dict[str, Any] = {"seq": seq, "time": "2026-11-03T08:00:00Z", "actor": "cy", "drill": False}
        if seq % 2:
            row["destination"] = ["10.0.0.1", 443]  # not a key as it is
        else:
            row["library"] = "urllib"  # no destination at all
        rows.append(row)
    groups, grouped = shown("network_blocked", rows)
    assert grouped
    by_destination = {str(g["destination"]): (g["entries"], g["library"]) for g in groups}
    assert by_destination == {"['10.0.0.1', 443]": (105, None), "None": (105, "urllib")}
    spent = [{"seq": seq, "time": "2026-11-04T00:00:00Z", "epsilon": seq / 100} for seq in range(LISTED + 1)]
    (group,), grouped = shown("privacy_spent", spent)  # rows with no person: one group a day
    assert grouped and group["entries"] == LISTED + 1 and group["epsilon"] == LISTED / 100
    assert group["seq"] == f"0-{LISTED}" and group["actor"] is None


def test_groups_kept_while_gathering_are_the_groups_made_from_the_rows_read_back() -> None:
    """The command groups a long table's rows while it gathers them; a report read back from JSON
    is grouped when shown. Both give the same table, and rows added past the table's own `add`
    make it group them again rather than show stale groups."""
    collector = Collector(Scope())
    for seq in range(3 * LISTED):
        action, subject, detail = ACTIONS[1] if seq % 4 else ACTIONS[6]  # reads, and some refusals
        day = 1 + seq // 150
        collector.add(
            entry(
                seq,
                action,
                subject,
                {**detail, "samples": seq % 7, "purpose": "train" if seq % 3 else ["eval"]},
                time=f"2026-11-0{day}T10:00:00Z",
                actor=("ana", "bo", "cy")[seq % 3],
            )
        )
    out = collector.result()
    reads = out.datasets["scans"].reads
    assert len(reads) > LISTED and reads.groups_of("reads") is not None
    kept = shown("reads", reads)
    assert kept == shown("reads", list(reads)) and kept[1]
    assert sum(g["records"] for g in kept[0]) == sum(r["records"] for r in reads)
    refusals = out.refusals
    assert shown("refusals", refusals) == shown("refusals", [dict(r) for r in refusals])
    reads.append({**reads[-1], "seq": 10_000, "records": 5})  # not through add
    assert reads.groups_of("reads") is None
    assert shown("reads", reads) == shown("reads", list(reads))


def test_seqs_that_are_not_whole_numbers_stand_alone_in_a_long_table() -> None:
    """A line written by hand may hold text, a fraction, a list or null as its seq; a long table
    that groups such rows names them as they are instead of failing to render."""
    assert seq_ranges([1, 2, 3, 7, 9, 10]) == "1-3, 7, 9-10"
    assert seq_ranges([4, "x", 1.5, 2, 3, [1], None, None, 5, 6]) == "4, x, 1.5, 2-3, [1], None, None, 5-6"
    assert seq_ranges([True, 2]) == "True, 2" and seq_ranges([]) == "" and seq_ranges([0]) == "0"
    collector = Collector(Scope())
    odd = {150: "x", 152: 1.5, 154: [1], 156: None}
    for n in range(2 * LISTED + 100):
        collector.add(entry(odd.get(n, n), *ACTIONS[1], time="2026-11-01T10:00:00Z"))
    report = {
        "verification": {"ok": False, "entries": 1, "signed_size": 0, "message": "", "findings": []},
        "generated": "now",
        "origin": "vault",
        **collector.result().to_json(),
    }
    markdown, page = render_markdown(report), render_html(report)
    assert "| 500: 0-149, x, 151, 1.5, 153, \\[1\\], 155, None, 157-499 |" in markdown
    assert "<td>500: 0-149, x, 151, 1.5, 153, [1], 155, None, 157-499</td>" in page

"""The access report over entries written by hand: whatever JSON an insider puts in a line's fields,
the report is made in every format and the TUI's summary shows it; nothing it holds stops either."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.audit.report import collect, render_html, render_json, render_markdown
from vault.audit.report import render as render_module
from vault.audit.report.collect import Collector, Scope

ACTIONS = sorted(collect._HANDLERS)  # every action the report reads
DETAIL_KEYS = [
    "samples", "version", "purpose", "format", "source", "sensitivity", "versions", "objects", "run",
    "model", "dp", "epsilon", "epsilon_cap", "ledger_epsilon", "ledger_unbounded", "steps", "error",
    "accuracy", "approvals", "signers", "out", "files", "request_action", "rule", "reason", "dry_run",
    "destination", "family", "origin", "module", "drill", "mode", "policy_requires",
    "waived_by_test_switch", "pid", "role",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(
        ["cnn", "ana", "2026-11-02T10:00:00Z", "2026-11-02T10:00:00", "2026-11-02", "train", "\x1b]0;x\x07"]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
# a value nested deeper than a renderer may recurse (the standard library parses 990 levels)
deep = st.integers(300, 990).map(lambda depth: json.loads("[" * depth + "]" * depth))
values = st.one_of(values, deep)


@st.composite
def entries(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for seq in range(draw(st.integers(1, 12))):
        detail = draw(st.dictionaries(st.sampled_from(DETAIL_KEYS), values, max_size=6))
        entry: dict[str, Any] = {
            "seq": draw(st.one_of(st.just(seq), values)),
            "time": draw(st.one_of(st.just(f"2026-11-0{1 + seq % 3}T10:00:00Z"), values)),
            "actor": draw(st.one_of(st.sampled_from(["ana", "bo"]), values)),
            "role": draw(st.one_of(st.just("operator"), values)),
            "action": draw(st.sampled_from(ACTIONS)),
            "subject": draw(st.one_of(st.sampled_from(["scans", "m1", "bo"]), values)),
            "outcome": draw(st.sampled_from(["ok", "denied", "degraded", "failed"])),
            "detail": draw(st.one_of(st.just(detail), values)),
        }
        out.append(entry)
    return out


@settings(max_examples=150, deadline=None)
@given(entries(), st.sampled_from([None, "scans", "bo", "period"]))
def test_any_values_in_hand_written_entries_give_a_report_in_every_format(
    written: list[dict[str, Any]], narrowed: str | None
) -> None:
    from tui.screens.report import summary

    since = dt.datetime(2026, 11, 2, tzinfo=dt.UTC) if narrowed == "period" else None
    collector = Collector(
        Scope(
            since=since,
            until=since + dt.timedelta(days=1) if since else None,
            dataset=narrowed if narrowed == "scans" else None,
            user=narrowed if narrowed == "bo" else None,
        )
    )
    for entry in written:
        collector.add(entry)
    report = {
        "schema": "strongroom-access-report-v1",
        "generated": "now",
        "origin": "vault",
        "verification": {
            "ok": False,
            "entries": len(written),
            "signed_size": 0,
            "message": "",
            "findings": [],
        },
        **collector.result().to_json(),
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(render_module, "LISTED", 2)  # every table of three rows or more is grouped
        for render in (render_markdown, render_html):
            text = render(report)
            assert "\x1b" not in text and "\x07" not in text
        shown = summary(report).plain
        assert "\x1b" not in shown and "\x07" not in shown
    json.loads(render_json(report), parse_constant=pytest.fail)

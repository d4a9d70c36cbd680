"""The access report as Markdown (for the record) and as one self-contained HTML page (no script,
no fonts or images from elsewhere; prints on A4; privacy spent per dataset drawn as inline SVG).

Every string that came from the log is escaped for the format it lands in; nothing in an entry can
add markup, a link or a control sequence to the report.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from vault.audit.report.collect import GROUPED_BY, LISTED, Table, cycles_uncollected, finite, group_rows

_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]}
# One translate table per format: control characters shown escaped, the format's own syntax quoted.
_MD = {**_CONTROL, **{ord(c): "\\" + c for c in "\\|`*_[]<>#"}}
_HTML = {
    **_CONTROL,
    ord("&"): "&amp;",
    ord("<"): "&lt;",
    ord(">"): "&gt;",
    ord('"'): "&quot;",
    ord("'"): "&#x27;",
}


NESTED = 8  # levels of lists and objects a cell shows


def _text(value: Any, depth: int = 0) -> str:
    """A value as one line of text (lists and tables flattened, nesting past NESTED shown as "…");
    not yet escaped."""
    if value is None:
        return "-"
    if type(value) is str:
        return value
    if type(value) is int or type(value) is bool:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if depth >= NESTED and isinstance(value, list | tuple | dict):
        return "…"  # a line written by hand may nest a value a thousand deep
    if isinstance(value, list | tuple):
        return ", ".join(_text(v, depth + 1) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{_text(k, depth + 1)}={_text(v, depth + 1)}" for k, v in value.items()) or "-"
    return str(value)


def _plain(value: Any) -> str:
    """One line of plain text: control characters shown escaped, never sent."""
    return _text(value).translate(_CONTROL)


def _md(value: Any) -> str:
    return _text(value).translate(_MD)


def _h(value: Any) -> str:
    return _text(value).translate(_HTML)


def approvers(approvals: Any) -> list[Any]:
    """An export's approvals as "user (role)" each; what a hand-written line holds instead (not a
    list, or items that are not approvals) as it is."""
    items = approvals if isinstance(approvals, list) else [] if approvals is None else [approvals]
    return [f"{a.get('user')} ({a.get('role')})" if isinstance(a, dict) else a for a in items]


def _when(value: Any) -> str:
    return str(value)[:19].replace("T", " ") if value else "-"


def _seqs(rows: Iterable[dict[str, Any]]) -> str:
    seqs = [str(r["seq"]) for r in rows if r.get("seq") is not None]
    if len(seqs) > 12:
        seqs = [*seqs[:6], "…", *seqs[-5:]]
    return ", ".join(seqs)


def verdict(report: dict[str, Any]) -> str:
    """The report's first line: whether the log it was built from verifies."""
    v = report["verification"]
    if v["ok"]:
        return (
            f"✓ The audit log verifies: {v['entries']} entries, signed up to entry {v['signed_size']}"
            + (
                ""
                if v.get("truncation_ruled_out")
                else "; truncation not ruled out (no saved checkpoint given)"
            )
            + "."
        )
    return (
        f"✗ THE AUDIT LOG FAILS VERIFICATION ({len(v['findings'])} finding(s)): {v['message']} "
        "This report shows what the log says, which may not be what happened."
    )


def sealing(report: dict[str, Any]) -> str:
    """The report's second line: the epoch chain and the witnesses, and what was checked."""
    v = report["verification"]
    if v.get("epochs"):
        key = (
            "checked against the initial key the auditor keeps"
            if v.get("initial_key_checked")
            else "not checked against a kept initial key (pass --key)"
        )
        text = f"Sealed in {v['epochs']} epoch(s) from initial key {v.get('initial_key')}, {key}."
    else:
        text = "No sealed epochs: the log is covered by its signed checkpoints only."
    if v.get("unsealed_seqs"):
        text += f" Entries not sealed by the vault: {_seqs({'seq': s} for s in v['unsealed_seqs'])}."
    cosigned = [
        f"{w['name']} cosigned {w['size']} entries on {w['time']}"
        + (" (checked)" if w["checked"] else " (not checked: pass --witness and --checkpoint)")
        for w in v.get("witnesses", [])
    ]
    return text + (" Witnesses: " + "; ".join(cosigned) + "." if cosigned else " No witness has cosigned.")


# (title, columns as (heading, key or callable)) of each table, shared by both formats
Column = tuple[str, Any]
TABLES: dict[str, tuple[Column, ...]] = {
    "imports": (
        ("seq", "seq"),
        ("time", "time"),
        ("by", "actor"),
        ("version", "version"),
        ("records", "records"),
        ("format", "format"),
        ("source", "source"),
        ("sensitivity", "sensitivity"),
        ("outcome", "outcome"),
    ),
    "reads": (
        ("seq", "seq"),
        ("time", "time"),
        ("who", "actor"),
        ("purpose", "purpose"),
        ("version", "version"),
        ("records", "records"),
    ),
    "trainings": (
        ("seq", "seq"),
        ("time", "time"),
        ("who", "actor"),
        ("run", "run"),
        ("model", "model"),
        ("DP", "dp"),
        ("ε", "epsilon"),
        ("outcome", "outcome"),
        ("started at", "started_seq"),
    ),
    "evaluations": (
        ("seq", "seq"),
        ("time", "time"),
        ("who", "actor"),
        ("model", "model"),
        ("records", "records"),
        ("accuracy", "accuracy"),
    ),
    "deletions": (
        ("seq", "seq"),
        ("time", "time"),
        ("who", "actor"),
        ("versions", "versions"),
        ("objects", "objects"),
    ),
    "privacy_spent": (
        ("seq", "seq"),
        ("time", "time"),
        ("run by", "actor"),
        ("ε spent", "epsilon"),
        ("cap", "cap"),
    ),
    "role_changes": (
        ("seq", "seq"),
        ("time", "time"),
        ("by", "actor"),
        ("change", "change"),
        ("role", "role"),
    ),
    "refusals": (
        ("seq", "seq"),
        ("time", "time"),
        ("who", "actor"),
        ("action", "action"),
        ("subject", "subject"),
        ("rule", "rule"),
        ("reason", "reason"),
        ("dry run", "dry_run"),
    ),
    "exports": (
        ("seq", "seq"),
        ("time", "time"),
        ("requester", "actor"),
        ("model", "model"),
        ("dataset", "dataset"),
        ("DP", "dp"),
        ("ε", "epsilon"),
        ("approvers", lambda r: approvers(r.get("approvals"))),
    ),
    "network_blocked": (
        ("seq", "seq"),
        ("time", "time"),
        ("session of", "actor"),
        ("destination", "destination"),
        ("family", "family"),
        ("library", "library"),
        ("drill", "drill"),
    ),
    "sessions_below_isolation": (
        ("seq", "seq"),
        ("time", "time"),
        ("who", "actor"),
        ("mode", "mode"),
        ("policy requires", "policy_requires"),
        ("waived", "waived"),
    ),
}


def _cell(row: dict[str, Any], key: Any) -> Any:
    value = key(row) if callable(key) else row.get(key)
    return _when(value) if key == "time" else value


def seq_ranges(seqs: Sequence[Any]) -> str:
    """1, 2, 3, 7, 9, 10 -> "1-3, 7, 9-10". A seq that is not a whole number (a line written by
    hand may hold anything there) stands alone, as its text."""
    parts: list[str] = []
    start: Any = None
    previous: Any = None
    for at, seq in enumerate(seqs):
        if at and type(seq) is int and type(previous) is int and seq == previous + 1:
            previous = seq
            continue
        if at:
            parts.append(str(start) if start is previous else f"{start}-{previous}")
        start = previous = seq
    if seqs:
        parts.append(str(start) if start is previous else f"{start}-{previous}")
    return ", ".join(parts)


def shown(kind: str, rows: Sequence[dict[str, Any]]) -> tuple[Sequence[dict[str, Any]], bool]:
    """The rows a table shows: all of them, or grouped by (day, person, GROUPED_BY[kind]) when long
    (the groups a gathered Table kept, or made here from rows read from JSON)."""
    if len(rows) <= LISTED:
        return rows, False
    groups = rows.groups_of(kind) if isinstance(rows, Table) else None
    if groups is None:
        groups = {}
        group_rows(kind, rows, groups)
    fields = GROUPED_BY[kind]
    return [
        {
            **{f: first.get(f) for f in fields},
            "time": day,
            "actor": first.get("actor"),
            "records": records,
            "epsilon": last.get("epsilon"),
            "entries": len(seqs),
            "seq": seq_ranges(seqs),
        }
        for (day, *_), (first, seqs, records, last) in groups.items()
    ], True


def _columns(kind: str, grouped: bool) -> tuple[Column, ...]:
    if not grouped:
        return TABLES[kind]
    keep = {"time", "actor", "records", "epsilon", *GROUPED_BY[kind]}
    picked = tuple((h, k) for h, k in TABLES[kind] if isinstance(k, str) and k in keep)
    return (("entries (seq)", lambda r: f"{r['entries']}: {r['seq']}"), *picked)


# ----------------------------------------------------------------------------- Markdown
def _md_table(kind: str, rows: Sequence[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["none", ""]
    rows, grouped = shown(kind, rows)
    columns = _columns(kind, grouped)
    lines = (
        [f"{len(rows)} groups by day and person (every entry is in the JSON report)", ""] if grouped else []
    )
    lines += ["| " + " | ".join(h for h, _ in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_md(_cell(r, k)) for _, k in columns) + " |" for r in rows]
    return [*lines, ""]


@cycles_uncollected()
def render_markdown(report: dict[str, Any]) -> str:
    scope = report["scope"]
    out = [
        verdict(report),
        "",
        _md(sealing(report)),
        "",
        f"# Access report: {_md(report.get('origin') or 'vault')}",
        "",
        f"Period {_md(scope['since'] or 'from the start')} to {_md(scope['until'] or 'the end of the log')}; "
        f"dataset {_md(scope['dataset'] or 'all')}; person {_md(scope['user'] or 'everyone')}. "
        f"{report['entries']} entries in scope ({_md(_when(report['first']))} to {_md(_when(report['last']))}). "
        f"Generated {_md(report['generated'])} from the log alone. Figures name their entries by `seq`.",
        "",
    ]
    if report["verification"]["findings"]:
        out += ["## What verification found", ""]
        out += [
            f"- {_md(f.get('seq', f.get('object')))}: {_md(f['kind'])}: {_md(f['message'])}"
            for f in report["verification"]["findings"]
        ]
        out.append("")
    out += ["## Datasets", ""]
    if not report["datasets"]:
        out += ["No dataset was touched in this scope.", ""]
    for d in report["datasets"]:
        readers = ", ".join(f"{_md(k)} ({v})" for k, v in d["readers"].items()) or "nobody"
        spent = d["epsilon_spent"]
        out += [
            f"### {_md(d['name'])}",
            "",
            f"{len(d['reads'])} read(s) of {d['records_read']} record(s) in all, by {readers}; "
            f"{len(d['trainings'])} training run(s); privacy spent at the end of the scope: "
            f"{'unbounded (a run without DP)' if spent is None and d['privacy_spent'] else _md(spent)}.",
            "",
        ]
        for kind, title in (
            ("imports", "Imports and versions"),
            ("reads", "Reads (every decryption)"),
            ("trainings", "Training runs"),
            ("privacy_spent", "Privacy spent, after each run"),
            ("evaluations", "Evaluations"),
            ("deletions", "Deletions (keys destroyed)"),
        ):
            rows = d[kind]
            if rows or kind in ("imports", "reads", "trainings"):
                out += [f"**{title}**", "", *_md_table(kind, rows)]
    out += ["## People", ""]
    for p in report["people"]:
        actions = ", ".join(f"{_md(a)} {n}" for a, n in p["actions"].items())
        out += [
            f"### {_md(p['name'])} ({_md(', '.join(p['roles']) or 'no role seen')})",
            "",
            f"{p['sessions']} session(s) (unlocks at seq {_md(_seqs(p['session_list']) or '-')}); "
            f"{len(p['failed_unlocks'])} failed unlock(s); {len(p['refusals'])} refusal(s). Actions: {actions}.",
            "",
        ]
        if p["role_changes"]:
            out += ["**Role changes**", "", *_md_table("role_changes", p["role_changes"])]
        if p["refusals"]:
            out += ["**Refusals**", "", *_md_table("refusals", p["refusals"])]
    out += ["## What left the room", "", *_md_table("exports", report["exports"])]
    out += ["## Refusals by policy", "", *_md_table("refusals", report["refusals"])]
    out += ["## Blocked network attempts", "", *_md_table("network_blocked", report["network_blocked"])]
    out += [
        "## Sessions below the policy's isolation level",
        "",
        *_md_table("sessions_below_isolation", report["sessions_below_isolation"]),
    ]
    return "\n".join(out).rstrip() + "\n"


# ----------------------------------------------------------------------------- HTML
STYLE = """
@page { size: A4; margin: 15mm 14mm; }
body { font: 10pt/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #111; margin: 0 auto; max-width: 182mm; }
h1 { font-size: 16pt; margin: 6pt 0; } h2 { font-size: 13pt; border-bottom: 1px solid #888; margin-top: 14pt; }
h3 { font-size: 11pt; margin: 10pt 0 4pt; break-after: avoid; }
table { border-collapse: collapse; width: 100%; margin: 4pt 0 8pt; font-size: 8.5pt; }
th, td { border: 1px solid #bbb; padding: 1.5pt 3pt; text-align: left; vertical-align: top; overflow-wrap: anywhere; }
th { background: #eee; white-space: nowrap; } tr { break-inside: avoid; }
.verdict { padding: 6pt 8pt; border: 2px solid; font-weight: bold; margin: 4pt 0 8pt; }
.ok { border-color: #0a6; } .bad { border-color: #c00; background: #fee; }
.chart { break-inside: avoid; margin: 4pt 0 8pt; } .muted { color: #555; }
svg text { font: 8pt sans-serif; fill: #111; }
"""


def _html_table(kind: str, rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return '<p class="muted">none</p>'
    rows, grouped = shown(kind, rows)
    columns = _columns(kind, grouped)
    head = "".join(f"<th>{_h(h)}</th>" for h, _ in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_h(_cell(r, k))}</td>" for _, k in columns) + "</tr>" for r in rows
    )
    note = (
        f'<p class="muted">{len(rows)} groups by day and person (every entry is in the JSON report)</p>'
        if grouped
        else ""
    )
    return f"{note}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def spent_chart(name: str, points: Sequence[dict[str, Any]], width: int = 640, height: int = 150) -> str:
    """Privacy spent by a dataset after each run, as a step line against its cap (inline SVG); a
    long history is drawn from the last point of each day (spent only grows)."""
    if len(points) > LISTED:
        last: dict[str, dict[str, Any]] = {}
        for point in points:
            last[str(point.get("time"))[:10]] = point
        points = list(last.values())
    spent = [finite(p.get("epsilon")) for p in points]  # None: unbounded, or not a number in the line
    bounded = [value for value in spent if value is not None]
    caps = [cap for cap in (finite(p.get("cap")) for p in points) if cap is not None]
    if not bounded and not caps:
        return ""
    top = max([*bounded, *caps, 1.0]) * 1.1
    left, right, low, high = 44, width - 10, height - 22, 10
    n = max(len(points), 1)

    def x(i: int) -> float:
        return left + (right - left) * (i + 1) / (n + 1)

    def y(value: float) -> float:
        return low - (low - high) * value / top

    steps, previous = [f"{left},{y(0):.1f}"], 0.0
    for i, value in enumerate(spent):
        value = previous if value is None else value
        steps += [f"{x(i):.1f},{y(previous):.1f}", f"{x(i):.1f},{y(value):.1f}"]
        previous = value
    steps.append(f"{right},{y(previous):.1f}")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="privacy spent by {_h(name)}">',
        f'<line x1="{left}" y1="{low}" x2="{right}" y2="{low}" stroke="#111"/>',
        f'<line x1="{left}" y1="{low}" x2="{left}" y2="{high}" stroke="#111"/>',
        f'<text x="2" y="{high + 8}">ε {top / 1.1:.3g}</text><text x="2" y="{low}">ε 0</text>',
        f'<polyline fill="none" stroke="#06c" stroke-width="2" points="{" ".join(steps)}"/>',
    ]
    if caps:
        cap = caps[-1]
        parts.append(
            f'<line x1="{left}" y1="{y(cap):.1f}" x2="{right}" y2="{y(cap):.1f}" stroke="#c00" stroke-dasharray="5,3"/>'
            f'<text x="{right - 110}" y="{y(cap) - 3:.1f}">cap ε {cap:.3g} (dashed)</text>'
        )
    for i, (p, value) in enumerate(zip(points, spent, strict=True)):
        label = "∞" if p.get("unbounded") else _h(p.get("epsilon"))
        parts.append(f'<text x="{x(i) - 8:.1f}" y="{low + 12}">{_h(p.get("seq"))}</text>')
        if value is not None or p.get("unbounded"):
            at = y(value if value else previous)
            parts.append(f'<circle cx="{x(i):.1f}" cy="{at:.1f}" r="2.5" fill="#06c"/>')
            parts.append(f'<text x="{x(i) + 3:.1f}" y="{at - 4:.1f}">{label}</text>')
    parts.append(
        f'<text x="{left}" y="{height - 1}">entry (seq) of each run\'s end; ε spent after it (solid)</text>'
    )
    parts.append("</svg>")
    return '<div class="chart">' + "".join(parts) + "</div>"


@cycles_uncollected()
def render_html(report: dict[str, Any]) -> str:
    scope = report["scope"]
    ok = report["verification"]["ok"]
    body = [
        f'<p class="verdict {"ok" if ok else "bad"}">{_h(verdict(report))}</p>',
        f"<p>{_h(sealing(report))}</p>",
        f"<h1>Access report: {_h(report.get('origin') or 'vault')}</h1>",
        f"<p>Period {_h(scope['since'] or 'from the start')} to {_h(scope['until'] or 'the end of the log')}; "
        f"dataset {_h(scope['dataset'] or 'all')}; person {_h(scope['user'] or 'everyone')}. "
        f"{report['entries']} entries in scope ({_h(_when(report['first']))} to {_h(_when(report['last']))}). "
        f"Generated {_h(report['generated'])} from the log alone; figures name their entries by seq.</p>",
    ]
    findings = report["verification"]["findings"]
    if findings:
        body.append("<h2>What verification found</h2><ul>")
        body += [
            f"<li>{_h(f.get('seq', f.get('object')))}: {_h(f['kind'])}: {_h(f['message'])}</li>"
            for f in findings
        ]
        body.append("</ul>")
    body.append("<h2>Datasets</h2>")
    for d in report["datasets"]:
        readers = ", ".join(f"{k} ({v})" for k, v in d["readers"].items()) or "nobody"
        body.append(f"<h3>{_h(d['name'])}</h3>")
        body.append(
            f"<p>{len(d['reads'])} read(s) of {d['records_read']} record(s), by {_h(readers)}; "
            f"{len(d['trainings'])} training run(s); privacy spent: {_h(d['epsilon_spent'])}.</p>"
        )
        body.append(spent_chart(d["name"], d["privacy_spent"]))
        for kind, title in (
            ("imports", "Imports and versions"),
            ("reads", "Reads (every decryption)"),
            ("trainings", "Training runs"),
            ("privacy_spent", "Privacy spent, after each run"),
            ("evaluations", "Evaluations"),
            ("deletions", "Deletions (keys destroyed)"),
        ):
            if d[kind] or kind in ("imports", "reads", "trainings"):
                body.append(f"<p><strong>{title}</strong></p>{_html_table(kind, d[kind])}")
    body.append("<h2>People</h2>")
    for p in report["people"]:
        actions = ", ".join(f"{a} {n}" for a, n in p["actions"].items())
        body.append(f"<h3>{_h(p['name'])} ({_h(', '.join(p['roles']) or 'no role seen')})</h3>")
        body.append(
            f"<p>{p['sessions']} session(s); {len(p['failed_unlocks'])} failed unlock(s); "
            f"{len(p['refusals'])} refusal(s). Actions: {_h(actions)}.</p>"
        )
        if p["role_changes"]:
            body.append(
                f"<p><strong>Role changes</strong></p>{_html_table('role_changes', p['role_changes'])}"
            )
    body.append(f"<h2>What left the room</h2>{_html_table('exports', report['exports'])}")
    body.append(f"<h2>Refusals by policy</h2>{_html_table('refusals', report['refusals'])}")
    body.append(
        f"<h2>Blocked network attempts</h2>{_html_table('network_blocked', report['network_blocked'])}"
    )
    body.append(
        "<h2>Sessions below the policy's isolation level</h2>"
        + _html_table("sessions_below_isolation", report["sessions_below_isolation"])
    )
    title = _h(f"Access report: {report.get('origin') or 'vault'}")
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def now_text() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

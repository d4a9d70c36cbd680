"""The auditor's deliverable: an access report per dataset, person and period, built from the log
alone (no passphrase, no key), so it can be made anywhere a copy of `<vault>/audit/` is.

It says first whether the log verifies (a report on a log that fails verification says so on its
first line, and the command exits 4), then who touched which records, when, why, under which
policy, at what privacy cost, and what left the room; every figure names the entries behind it.
Formats: Markdown (`render_markdown`), self-contained HTML (`render_html`) and JSON (the report
itself; schema in docs/AUDIT.md).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

from vault.audit.cosign import cosigned_by
from vault.audit.log import AuditLog
from vault.audit.report.collect import Collected, Collector, Scope, cycles_uncollected
from vault.audit.report.render import render_html, render_markdown

SCHEMA = "strongroom-access-report-v1"

__all__ = ["SCHEMA", "Scope", "build_report", "render_html", "render_json", "render_markdown"]


@cycles_uncollected()
def build_report(
    audit_dir: Path,
    scope: Scope,
    *,
    pubkey_pem: bytes | None = None,
    checkpoint_text: bytes | None = None,
    generated: str,
    initial_key: bytes | None = None,
    witnesses: tuple[Any, ...] = (),
) -> dict[str, Any]:
    """The report as JSON-able data: verification first, then what the entries in `scope` say.
    `initial_key` and `witnesses` are what `audit verify --key/--witness` take."""
    log = AuditLog(audit_dir)
    collector = Collector(scope)
    verified = log.verify(  # one read of the log
        pubkey_pem, checkpoint_text, on_entry=collector.add, initial_key=initial_key, witnesses=witnesses
    )
    collected: Collected = collector.result()
    given = {w.name for w in witnesses}
    verification = verified.to_json()
    return {
        "schema": SCHEMA,
        "generated": generated,
        "origin": verification.get("origin"),
        "verification": {
            "ok": verification["ok"],
            "entries": verification["entries"],
            "signed_size": verification.get("signed_size", 0),
            "unsigned": verification.get("unsigned", 0),
            "truncation_ruled_out": verification.get("truncation_ruled_out", False),
            "key_source": verification.get("key_source"),
            "message": verification["message"],
            "findings": verification["findings"],
            "notes": verification.get("notes", []),
            "epochs": verification.get("epochs", 0),
            "initial_key": verification.get("initial_key"),
            "initial_key_checked": verification.get("initial_key_checked", False),
            "unsealed_seqs": verification.get("unsealed_seqs", []),
            "witnesses": [
                {
                    "name": c.name,
                    "size": c.size,
                    "time": dt.datetime.fromtimestamp(c.timestamp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "checked": verified.ok and c.name in given,
                }
                for c in cosigned_by(log)
            ],
        },
        **collected.to_json(),
    }


def render_json(report: dict[str, Any]) -> str:
    """The report as strict JSON (the schema in docs/AUDIT.md). A number a hand-written line holds
    beyond what JSON can say (an infinity: `1e400` is read as one) is given as text."""
    try:
        return json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    except ValueError:
        return json.dumps(_finite(report), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _finite(value: Any) -> Any:
    if type(value) is float and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value

"""The auditor's deliverable: an access report per dataset, person and period, built from the log
alone (no passphrase, no key), so it can be made anywhere a copy of `<vault>/audit/` is.

It says first whether the log verifies (a report on a log that fails verification says so on its
first line, and the command exits 4), then who touched which records, when, why, under which
policy, at what privacy cost, and what left the room; every figure names the entries behind it.
Formats: Markdown (`render_markdown`), self-contained HTML (`render_html`) and JSON (the report
itself; schema in docs/AUDIT.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vault.audit.log import AuditLog
from vault.audit.report.collect import Collected, Collector, Scope
from vault.audit.report.render import render_html, render_markdown

SCHEMA = "strongroom-access-report-v1"

__all__ = ["SCHEMA", "Scope", "build_report", "render_html", "render_markdown"]


def build_report(
    audit_dir: Path,
    scope: Scope,
    *,
    pubkey_pem: bytes | None = None,
    checkpoint_text: bytes | None = None,
    generated: str,
) -> dict[str, Any]:
    """The report as JSON-able data: verification first, then what the entries in `scope` say."""
    log = AuditLog(audit_dir)
    collector = Collector(scope)
    verified = log.verify(pubkey_pem, checkpoint_text, on_entry=collector.add)  # one read of the log
    collected: Collected = collector.result()
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
        },
        **collected.to_json(),
    }

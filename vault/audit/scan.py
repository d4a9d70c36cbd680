"""Scanning the audit log's bytes: each line is one canonical JSON entry with the right fields, in
sequence, whose `prev` is the Merkle root of the log before it. Findings name the entry (its seq).

The fast path hashes and parses the whole log in a few passes; anything unusual sends it through
the full checks of one entry at a time.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from json.scanner import make_scanner
from typing import Any

from vault.audit import merkle
from vault.errors import Cancelled
from vault.findings import Finding, VerifyProgress

ENTRY_VERSION = 1
ENTRY_FIELDS: dict[str, type] = {
    "v": int,
    "seq": int,
    "time": str,
    "actor": str,
    "role": str,
    "action": str,
    "subject": str,
    "outcome": str,
    "detail": dict,
    "prev": str,
}
ACTION_RE = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+")
TIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?Z")
PROGRESS_EVERY = 8192


def short_hash(h: bytes | str) -> str:
    text = h.hex() if isinstance(h, bytes) else h
    return text[:16] + "..." if len(text) > 16 else text


@dataclass
class Scan:
    leaves: list[bytes]
    roots: dict[int, bytes]
    findings: list[Finding]
    size: int
    torn: tuple[int, int] | None  # (offset in the scanned bytes, length)
    notes: list[str]
    subtrees: list[bytes]  # the compact range at the end


def _parse_alone(line: bytes) -> Any:
    """One line's JSON value, or None when it is not UTF-8 JSON."""
    try:
        return json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None


class _Checker:
    """The full checks of one entry, run when the fast path in scan_log finds anything unusual."""

    def __init__(self, expected_seq: int) -> None:
        self.expected_seq = expected_seq
        self.findings: list[Finding] = []
        self.notes: list[str] = []
        self.prev_breaks = 0
        self.first_break: Finding | None = None
        self.known_actions: set[str] = set()  # well-formed actions seen, for the fast path

    def check(self, pos: int, entry: Any, root: bytes) -> None:
        add = self.findings.append
        if type(entry) is not dict:
            add(
                Finding(
                    seq=pos,
                    kind="json",
                    expected="a JSON object",
                    found="a line that is not one",
                    message=f"line {pos + 1}",
                )
            )
            self.expected_seq += 1
            return
        if entry.get("v") != ENTRY_VERSION:
            add(
                Finding(
                    seq=pos,
                    kind="version",
                    expected=f"entry version {ENTRY_VERSION}",
                    found=f"version {entry.get('v')!r}",
                    message="unknown entry format: this entry cannot be interpreted",
                )
            )
            self.expected_seq += 1
            return
        bad = [k for k, t in ENTRY_FIELDS.items() if type(entry.get(k)) is not t]
        if bad:
            add(
                Finding(
                    seq=pos,
                    kind="fields",
                    expected="every entry field with its type",
                    found="bad " + ", ".join(bad),
                    message="",
                )
            )
        elif not (ACTION_RE.fullmatch(entry["action"]) and TIME_RE.fullmatch(entry["time"])):
            add(
                Finding(
                    seq=pos,
                    kind="fields",
                    expected="a dotted action and an RFC 3339 UTC time",
                    found="malformed ones",
                    message="",
                )
            )
        elif entry["action"] != "audit.repair":
            self.known_actions.add(entry["action"])
        seq = entry.get("seq")
        if seq != self.expected_seq:
            add(
                Finding(
                    seq=pos,
                    kind="seq",
                    expected=f"seq {self.expected_seq}",
                    found=f"seq {seq!r}",
                    message="entries were removed, reordered or inserted here",
                )
            )
        self.expected_seq = seq + 1 if type(seq) is int else self.expected_seq + 1
        prev = entry.get("prev")
        if prev != root.hex():
            self.prev_breaks += 1
            if self.first_break is None:
                self.first_break = Finding(
                    seq=pos,
                    kind="prev",
                    expected=f"prev {short_hash(root)} (root of the {pos} entries before)",
                    found=f"prev {short_hash(str(prev))}",
                    message=f"the log before this entry differs from when it was written: entry {pos - 1} or "
                    "an earlier one was changed, removed or inserted",
                )
                add(self.first_break)
        detail = entry.get("detail")
        if entry.get("action") == "audit.repair" and type(detail) is dict:
            self.notes.append(
                f"seq {pos}: a torn last line of {detail.get('torn_bytes')} bytes at byte "
                f"{detail.get('torn_offset')} was cut off and kept as audit/{detail.get('kept_as')}"
            )

    def finish(self) -> None:
        if self.prev_breaks > 1 and self.first_break is not None:
            self.findings.append(
                Finding(
                    seq=self.first_break.seq,
                    kind="prev",
                    expected="each later entry to chain to the log before it",
                    found=f"{self.prev_breaks - 1} later entries that do not",
                    message="the chain cannot be re-established after the first break",
                )
            )


def scan_log(
    data: bytes,
    *,
    check_from: int = 0,
    want_roots: set[int] | frozenset[int] = frozenset(),
    base: merkle.MerkleTree | None = None,
    on_event: Callable[[VerifyProgress], None] | None = None,
    cancel: threading.Event | None = None,
    on_entry: Callable[[dict[str, Any]], None] | None = None,
) -> Scan:
    """Hash every complete line into the tree; check entries from `check_from` on; hand each parsed
    entry (a dict) to `on_entry`, so a reader needs no second pass over the log.

    With `base`, `data` is the rest of a log whose first `base.size` entries that tree holds:
    positions, sequence numbers and roots continue from there, and `leaves` holds only the new
    ones. Roots at the sizes in `want_roots` (and at the end) are kept for checkpoint checks. Lines
    are parsed in place in the log decoded once (the C scanner, no per-line decode); a line it
    cannot take exactly (bad UTF-8, spanning or trailing its newline) is parsed on its own.
    """
    lines = data.split(b"\n")
    tail = lines.pop()
    first = base.size if base is not None else 0
    total = first + len(lines)
    check_from = min(max(check_from, first), total)
    leaves = [hashlib.sha256(b"\x00" + line).digest() for line in lines]
    roots: dict[int, bytes] = {}
    tree = base.copy() if base is not None else merkle.MerkleTree()
    for leaf in leaves[: check_from - first]:
        tree.append(leaf)
    checker = _Checker(check_from)
    try:
        text = data[sum(len(line) + 1 for line in lines[: check_from - first]) :].decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    scan_once = make_scanner(json.JSONDecoder())  # type: ignore[arg-type]  # the stub names the class oddly
    find = text.find
    time_ok = TIME_RE.fullmatch
    known_actions = checker.known_actions
    tree_root, tree_append = tree.root, tree.append
    cursor = 0
    for pos in range(check_from, total):
        line = lines[pos - first]
        if text:
            end_line = find("\n", cursor)
            try:
                entry, end = scan_once(text, cursor)
                if end != end_line:
                    entry = _parse_alone(line)
            except (StopIteration, ValueError, RecursionError):
                entry = _parse_alone(line)
            cursor = end_line + 1
        else:
            entry = _parse_alone(line)
        root = tree_root()
        if pos in want_roots:
            roots[pos] = root
        if not pos % PROGRESS_EVERY:
            if cancel is not None and cancel.is_set():
                raise Cancelled("audit verification cancelled", "run `strongroom audit verify` again")
            if on_event is not None:
                on_event(VerifyProgress(done=pos, total=total))
        # Fast path: a well-formed entry that chains; anything else gets the full checks.
        if (
            type(entry) is dict
            and entry.get("v") == ENTRY_VERSION
            and entry.get("seq") == checker.expected_seq
            and entry.get("prev") == root.hex()
            and type(entry.get("seq")) is int
            and type(entry.get("time")) is str
            and type(entry.get("actor")) is str
            and type(entry.get("role")) is str
            and type(entry.get("action")) is str
            and type(entry.get("subject")) is str
            and type(entry.get("outcome")) is str
            and type(entry.get("detail")) is dict
            and entry["action"] in known_actions
            and time_ok(entry["time"])
        ):
            checker.expected_seq += 1
        else:
            checker.check(pos, entry, root)
        if on_entry is not None and type(entry) is dict:
            on_entry(entry)
        tree_append(leaves[pos - first])
    checker.finish()
    findings, notes = checker.findings, checker.notes
    roots[total] = tree.root()
    if on_event is not None:
        on_event(VerifyProgress(done=total, total=total))
    torn = None
    if tail:
        offset = len(data) - len(tail)
        torn = (offset, len(tail))
        findings.append(
            Finding(
                seq=total - 1 if total else None,
                kind="torn_tail",
                expected="every line to end with a newline",
                found=f"{len(tail)} bytes without one at byte {offset}",
                message=f"torn tail at byte {offset} after seq {total - 1}: an append was interrupted; the next "
                "append cuts it off and records an audit.repair entry",
            )
        )
    return Scan(leaves, roots, findings, total, torn, notes, tree.subtrees)

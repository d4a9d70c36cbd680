"""Verification of an audit log snapshot: every entry, the prev chain, checkpoints and the key.

Works on bytes already read (log, public key, checkpoints), so it needs no lock and no key, and
reports each problem as a structured `Finding` (which entry, what was expected, what was found)
that the CLI prints one per line and the TUI can list.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from json.scanner import make_scanner
from typing import Any

from vault import merkle
from vault.checkpoint import Checkpoint, parse_checkpoint, verify_checkpoint
from vault.crypto.signing import load_public_pem
from vault.errors import Cancelled, StrongroomError

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


@dataclass(frozen=True)
class Finding:
    """One problem: the entry it concerns (None for the key or a checkpoint), expected vs found."""

    seq: int | None
    kind: str
    expected: str
    found: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        where = f"seq {self.seq}" if self.seq is not None else "log"
        return f"{where}: {self.kind}: expected {self.expected}; found {self.found} ({self.message})"


@dataclass(frozen=True)
class VerifyProgress:
    """Progress of a verification: `done` of `total` entries checked."""

    done: int
    total: int
    stage: str = "audit"


@dataclass
class AuditReport:
    """The outcome of `AuditLog.verify`. `ok` is True only when there are no findings."""

    ok: bool
    entries: int
    size: int
    root: str
    findings: list[Finding]
    truncation_ruled_out: bool
    message: str
    signed_size: int = 0
    unsigned: int = 0
    origin: str | None = None
    key_source: str = "none"
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "findings": [f.to_json() for f in self.findings]}


def _short(h: bytes | str) -> str:
    text = h.hex() if isinstance(h, bytes) else h
    return text[:16] + "..." if len(text) > 16 else text


def _key_label(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:16]


@dataclass
class _Scan:
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
            add(Finding(pos, "json", "a JSON object", "a line that is not one", f"line {pos + 1}"))
            self.expected_seq += 1
            return
        if entry.get("v") != ENTRY_VERSION:
            add(
                Finding(
                    pos,
                    "version",
                    f"entry version {ENTRY_VERSION}",
                    f"version {entry.get('v')!r}",
                    "unknown entry format: this entry cannot be interpreted",
                )
            )
            self.expected_seq += 1
            return
        bad = [k for k, t in ENTRY_FIELDS.items() if type(entry.get(k)) is not t]
        if bad:
            add(Finding(pos, "fields", "every entry field with its type", "bad " + ", ".join(bad), ""))
        elif not (ACTION_RE.fullmatch(entry["action"]) and TIME_RE.fullmatch(entry["time"])):
            add(Finding(pos, "fields", "a dotted action and an RFC 3339 UTC time", "malformed ones", ""))
        elif entry["action"] != "audit.repair":
            self.known_actions.add(entry["action"])
        seq = entry.get("seq")
        if seq != self.expected_seq:
            add(
                Finding(
                    pos,
                    "seq",
                    f"seq {self.expected_seq}",
                    f"seq {seq!r}",
                    "entries were removed, reordered or inserted here",
                )
            )
        self.expected_seq = seq + 1 if type(seq) is int else self.expected_seq + 1
        prev = entry.get("prev")
        if prev != root.hex():
            self.prev_breaks += 1
            if self.first_break is None:
                self.first_break = Finding(
                    pos,
                    "prev",
                    f"prev {_short(root)} (root of the {pos} entries before)",
                    f"prev {_short(str(prev))}",
                    f"the log before this entry differs from when it was written: entry {pos - 1} or "
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
                    self.first_break.seq,
                    "prev",
                    "each later entry to chain to the log before it",
                    f"{self.prev_breaks - 1} later entries that do not",
                    "the chain cannot be re-established after the first break",
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
) -> _Scan:
    """Hash every complete line into the tree; check entries from `check_from` on.

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
                on_event(VerifyProgress(pos, total))
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
        tree_append(leaves[pos - first])
    checker.finish()
    findings, notes = checker.findings, checker.notes
    roots[total] = tree.root()
    if on_event is not None:
        on_event(VerifyProgress(total, total))
    torn = None
    if tail:
        offset = len(data) - len(tail)
        torn = (offset, len(tail))
        findings.append(
            Finding(
                total - 1 if total else None,
                "torn_tail",
                "every line to end with a newline",
                f"{len(tail)} bytes without one at byte {offset}",
                f"torn tail at byte {offset} after seq {total - 1}: an append was interrupted; the next "
                "append cuts it off and records an audit.repair entry",
            )
        )
    return _Scan(leaves, roots, findings, total, torn, notes, tree.subtrees)


def _trusted_key(
    pubkey_file: bytes | None, trusted_pubkey: bytes | None, findings: list[Finding]
) -> tuple[bytes | None, str]:
    """The raw key to check signatures with, and where it came from; key problems become findings."""
    file_raw: bytes | None = None
    if pubkey_file is not None:
        try:
            file_raw = load_public_pem(pubkey_file)
        except ValueError:
            findings.append(
                Finding(
                    None, "pubkey_invalid", "an Ed25519 public key in audit/pubkey.pem", "something else", ""
                )
            )
    if trusted_pubkey is not None:
        try:
            given = trusted_pubkey if len(trusted_pubkey) == 32 else load_public_pem(trusted_pubkey)
        except ValueError:
            findings.append(
                Finding(
                    None,
                    "pubkey_invalid",
                    "an Ed25519 public key (PEM) in --pubkey",
                    "something else",
                    "the given public key cannot be used",
                )
            )
            return None, "none"
        if pubkey_file is None:
            findings.append(
                Finding(
                    None,
                    "pubkey_missing",
                    "audit/pubkey.pem",
                    "no such file",
                    "the public key file was removed",
                )
            )
        elif file_raw is not None and file_raw != given:
            findings.append(
                Finding(
                    None,
                    "pubkey_replaced",
                    f"audit/pubkey.pem = the given key {_key_label(given)}",
                    f"another key {_key_label(file_raw)}",
                    "the vault's public key file was replaced",
                )
            )
        return given, "given"
    if pubkey_file is None:
        findings.append(
            Finding(
                None,
                "pubkey_missing",
                "audit/pubkey.pem",
                "no such file",
                "checkpoint signatures cannot be checked; pass --pubkey with a copy you keep",
            )
        )
    return file_raw, ("vault" if file_raw is not None else "none")


def _check_checkpoint(
    label: str,
    text: bytes,
    key: bytes | None,
    origin: str | None,
    scan: _Scan,
    findings: list[Finding],
) -> Checkpoint | None:
    """Signature, origin, size and root of one checkpoint; returns it when all hold."""
    try:
        cp = parse_checkpoint(text)
    except StrongroomError as exc:
        findings.append(Finding(None, "checkpoint_invalid", f"a signed checkpoint in {label}", exc.title, ""))
        return None
    good = True
    if key is not None:
        try:
            verify_checkpoint(text, key)
        except StrongroomError as exc:
            good = False
            findings.append(
                Finding(
                    None,
                    "checkpoint_signature",
                    f"{label} signed by {_key_label(key)}",
                    exc.title,
                    "the checkpoint was forged or changed, or is from another vault",
                )
            )
    else:
        good = False
    if origin is not None and cp.origin != origin:
        findings.append(
            Finding(
                None,
                "checkpoint_origin",
                f"origin {origin}",
                f"origin {cp.origin}",
                f"{label} is a checkpoint of another log",
            )
        )
        return None
    if cp.size > scan.size:
        findings.append(
            Finding(
                scan.size,
                "checkpoint_newer",
                f"at least {cp.size} entries ({label})",
                f"{scan.size} complete entries",
                f"the log is shorter than {label}: entries {scan.size}..{cp.size - 1} were removed "
                "(truncation or rollback)",
            )
        )
        return None
    if scan.roots.get(cp.size) != cp.root:
        findings.append(
            Finding(
                cp.size - 1 if cp.size else None,
                "checkpoint_root",
                f"root {_short(cp.root)} over the first {cp.size} entries ({label})",
                f"root {_short(scan.roots.get(cp.size, b''))}",
                "entries covered by this signed checkpoint were changed",
            )
        )
        return None
    return cp if good else None


def verify_snapshot(
    data: bytes,
    *,
    pubkey_file: bytes | None,
    trusted_pubkey: bytes | None,
    checkpoints: list[tuple[str, bytes]],
    latest: bytes | None,
    external: bytes | None,
    origin: str | None,
    on_event: Callable[[VerifyProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> AuditReport:
    """Verify a log snapshot against its checkpoints, its public key and an optional saved checkpoint."""
    findings: list[Finding] = []
    key, key_source = _trusted_key(pubkey_file, trusted_pubkey, findings)
    parsed: dict[bytes, Checkpoint | None] = {}
    for text in [latest, external, *(t for _, t in checkpoints)]:
        if text is not None and text not in parsed:
            try:
                parsed[text] = parse_checkpoint(text)
            except StrongroomError:
                parsed[text] = None
    wanted = {cp.size for cp in parsed.values() if cp is not None}
    scan = scan_log(data, want_roots=wanted, on_event=on_event, cancel=cancel)
    findings.extend(scan.findings)
    latest_cp = parsed.get(latest) if latest is not None else None
    if origin is None and latest_cp is not None:
        origin = latest_cp.origin

    signed_size = 0
    seen: set[bytes] = set()
    sources = ([("audit/checkpoint", latest)] if latest is not None else []) + checkpoints
    history_max = 0
    for label, text in sources:
        if text is None or (text in seen and label != "audit/checkpoint"):
            continue
        seen.add(text)
        cp = _check_checkpoint(label, text, key, origin, scan, findings)
        if cp is not None:
            signed_size = max(signed_size, cp.size)
            name = label.rsplit("/", 1)[-1]
            if label != "audit/checkpoint" and name != f"{cp.size}.txt":
                findings.append(
                    Finding(None, "checkpoint_name", f"{cp.size}.txt", name, f"{label} was renamed")
                )
            if label != "audit/checkpoint":
                history_max = max(history_max, cp.size)
    if latest_cp is not None and latest_cp.size < history_max:
        findings.append(
            Finding(
                None,
                "checkpoint_rollback",
                f"audit/checkpoint covering {history_max} entries (the newest in checkpoints/)",
                f"one covering {latest_cp.size}",
                "the latest checkpoint was replaced by an older one",
            )
        )
    if latest is None and checkpoints:
        findings.append(
            Finding(
                None,
                "checkpoint_missing",
                "audit/checkpoint",
                "no such file",
                "the latest checkpoint was removed",
            )
        )

    truncation_ruled_out = False
    external_size: int | None = None
    if external is not None:
        before = len(findings)
        cp = _check_checkpoint("the given checkpoint", external, key, origin, scan, findings)
        if cp is not None and cp.size > 0:
            proof = merkle.consistency_proof(scan.leaves, cp.size, scan.size)
            try:
                merkle.verify_consistency(cp.size, scan.size, proof, cp.root, scan.roots[scan.size])
            except merkle.ProofError as exc:
                findings.append(
                    Finding(
                        cp.size - 1, "consistency", "today's log to extend the given checkpoint", str(exc), ""
                    )
                )
        if cp is not None and len(findings) == before and key is not None:
            truncation_ruled_out = True
            external_size = cp.size

    root_hex = scan.roots[scan.size].hex()
    unsigned = scan.size - signed_size
    ok = not findings
    return AuditReport(
        ok=ok,
        entries=scan.size,
        size=scan.size,
        root=root_hex,
        findings=findings,
        truncation_ruled_out=truncation_ruled_out,
        message=_message(ok, scan.size, root_hex, findings, signed_size, key_source, external, external_size),
        signed_size=signed_size,
        unsigned=unsigned,
        origin=origin,
        key_source=key_source,
        notes=scan.notes,
    )


def _message(
    ok: bool,
    size: int,
    root_hex: str,
    findings: list[Finding],
    signed_size: int,
    key_source: str,
    external: bytes | None,
    external_size: int | None,
) -> str:
    parts = [
        f"intact: {size} entries, root {root_hex}."
        if ok
        else f"NOT intact: {len(findings)} finding(s) in a log of {size} entries."
    ]
    if signed_size < size:
        newer = (
            f"entry {signed_size} is" if size - signed_size == 1 else f"entries {signed_size}..{size - 1} are"
        )
        parts.append(
            f"A signed checkpoint covers the first {signed_size} entries; {newer} protected by the hash chain "
            "only until the next checkpoint (a command may still be running, or the last one ended without "
            "signing)."
        )
    else:
        parts.append(f"A signed checkpoint covers all {size} entries.")
    if key_source == "vault":
        parts.append(
            "Signatures were checked with audit/pubkey.pem from the vault itself; pass --pubkey with a copy "
            "kept elsewhere to rule out a replaced key."
        )
    if external_size is not None:
        parts.append(
            f"The log extends the given checkpoint of {external_size} entries: nothing it covers was removed "
            "or rewritten, so truncation and rollback since then are ruled out."
        )
    elif external is None:
        parts.append(
            "No saved checkpoint was given, so truncation or rollback of the log cannot be ruled out. Keep "
            "the output of `strongroom audit checkpoint` off this machine and pass it with --checkpoint."
        )
    else:
        parts.append("The log does not verify against the given checkpoint: see the findings.")
    return "\n".join(parts)

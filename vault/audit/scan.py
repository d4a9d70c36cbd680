"""Scanning the audit log's bytes: each line is one canonical JSON entry with the right fields, in
sequence, whose `prev` is the Merkle root of the log before it. Findings name the entry (its seq).

The fast path hashes and parses the whole log in a few passes; anything unusual sends it through
the full checks of one entry at a time.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from json.scanner import make_scanner
from typing import Any

import msgspec

from vault.audit import merkle
from vault.audit.forked import Forked, cores
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
_STRING = rb'"[^"\\\x00-\x1f]*+(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*+)*+"'
# One canonical entry line with every envelope field well-formed (keys in canonical order; the
# detail an object; prev and seal hex; seq a number; time RFC 3339 UTC; v 1). Groups: the action,
# the detail (which must then parse as one JSON object), prev and seq. A line that a JSON parser
# would read another way never matches, so it goes to the full checks.
ENVELOPE = re.compile(
    rb'(?m)^\{"action":"([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+)","actor":'
    + _STRING
    + rb',"detail":(\{(?:[^}\n]*+\})+?),"outcome":'
    + _STRING
    + rb',"prev":"([0-9a-f]{64})","role":'
    + _STRING
    + rb'(?:,"seal":"[0-9a-f]*")?,"seq":(0|[1-9][0-9]*),"subject":'
    + _STRING
    + rb',"time":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?Z","v":1\}$'
)
SIDE_BY_SIDE_FROM = 16384  # entries from which a whole-log scan hashes its tree in a forked child


def short_hash(h: bytes | str) -> str:
    text = h.hex() if isinstance(h, bytes) else h
    return text[:16] + "..." if len(text) > 16 else text


@dataclass
class Scan:
    leaves: Sequence[bytes]
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
    """Hash every complete line into the tree and check every entry; see `_scan_in_order`.

    A whole log of many entries is first scanned side by side: a forked child hashes the tree
    (every leaf and the root before every entry) while this process parses and checks the entries,
    and the two meet at the end, where every `prev` is compared with its root at once. That pass
    only ever concludes "all well": at the first entry that is not, or when the prev chain does not
    match, the log is scanned again one entry at a time, which names every finding exactly as it
    always has (`on_entry` is not called twice for an entry).
    """
    total = data.count(b"\n")
    if base is None and check_from == 0 and total >= SIDE_BY_SIDE_FROM:
        scan, delivered = _scan_side_by_side(
            data, want_roots=want_roots, on_event=on_event, cancel=cancel, on_entry=on_entry, total=total
        )
        if scan is not None:
            return scan
        if on_entry is not None and delivered:
            on_entry = _skipping(on_entry, delivered)
    return _scan_in_order(
        data,
        check_from=check_from,
        want_roots=want_roots,
        base=base,
        on_event=on_event,
        cancel=cancel,
        on_entry=on_entry,
    )


def _skipping(on_entry: Callable[[dict[str, Any]], None], count: int) -> Callable[[dict[str, Any]], None]:
    """`on_entry` that lets the first `count` entries pass (already handed over by the first pass)."""
    left = [count]

    def call(entry: dict[str, Any]) -> None:
        if left[0]:
            left[0] -= 1
        else:
            on_entry(entry)

    return call


def complete_lines(data: bytes) -> Iterator[bytes]:
    """The complete lines of `data` one at a time (the piece after its last newline left off). A
    forked child reads the log this way rather than through a list split here before the fork: each
    object of this process that the child touches is copied into the child a page at a time (a
    tenth of a second per 100 MB), while these lines are made, used and freed in the child."""
    find = data.find
    start = 0
    while (end := find(b"\n", start)) >= 0:
        yield data[start:end]
        start = end + 1


def _tree_of(data: bytes, start: int, stop: int) -> tuple[bytes, bytes, list[bytes], bytes]:
    """The leaf hashes of the lines start..stop-1 of `data` and the root before each of them (each
    concatenated), the compact range after them and the root there: one part of the hashing half of
    a side-by-side scan, run in a forked child. The lines before `start` are hashed into the compact
    range only.

    The same arithmetic as `merkle.MerkleTree`, with the compact range kept ready-prefixed for
    hashing as left children, so each node costs one concatenation and one SHA-256."""
    sha256 = hashlib.sha256
    node, leaf_prefix = merkle.NODE_PREFIX, merkle.LEAF_PREFIX
    lefts: list[bytes] = []  # the compact range but its smallest subtree, each as 0x01 || root
    last = b""  # the smallest subtree's root (none while the tree is empty)
    leaves = []
    roots = bytearray()
    for size, line in enumerate(itertools.islice(complete_lines(data), stop), start=1):
        leaf = sha256(leaf_prefix + line).digest()
        if size > start:
            acc = last or merkle.EMPTY_ROOT
            for left in reversed(lefts):
                acc = sha256(left + acc).digest()
            roots += acc
            leaves.append(leaf)
        if size & 1:
            if last:
                lefts.append(node + last)
            last = leaf
        else:
            right = sha256(node + last + leaf).digest()
            n = size >> 1
            while not n & 1:
                right = sha256(lefts.pop() + right).digest()
                n >>= 1
            last = right
    acc = last or merkle.EMPTY_ROOT
    for left in reversed(lefts):
        acc = sha256(left + acc).digest()
    subtrees = [left[1:] for left in lefts] + ([last] if last else [])
    return b"".join(leaves), bytes(roots), subtrees, acc


def _tree_parts(total: int, parts: int) -> list[tuple[int, int]]:
    """Ranges of entries for `parts` children with about equal work: a later part also hashes the
    lines before it (about two hashes each: its leaf and one node), so it gets fewer roots of its
    own (a root costs about log2(total) / 2 + 1 hashes)."""
    if parts <= 1 or total < 2 * parts:
        return [(0, total)]
    per_root = total.bit_length() / 2 + 1

    def ends(work: float) -> list[int]:
        bounds = [0]
        for _ in range(parts):
            start = bounds[-1]
            bounds.append(min(total, start + max(1, int((work - 2 * start) / per_root))))
        return bounds

    low, high = 0.0, total * (per_root + 2)
    for _ in range(40):  # the least work per part with which the parts reach the end
        middle = (low + high) / 2
        low, high = (low, middle) if ends(middle)[-1] >= total else (middle, high)
    bounds = ends(high)
    bounds[-1] = total
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if a < b]


def _entry_is_plain(entry: Any, expected_seq: int, known_actions: set[str]) -> bool:
    """The fast path's test: a well-formed entry in sequence, of an action already seen well-formed
    (its prev is compared elsewhere). Anything else gets the full checks of `_Checker`."""
    return (
        type(entry) is dict
        and entry.get("v") == ENTRY_VERSION
        and entry.get("seq") == expected_seq
        and type(entry.get("seq")) is int
        and type(entry.get("time")) is str
        and type(entry.get("actor")) is str
        and type(entry.get("role")) is str
        and type(entry.get("action")) is str
        and type(entry.get("subject")) is str
        and type(entry.get("outcome")) is str
        and type(entry.get("detail")) is dict
        and entry["action"] in known_actions
        and TIME_RE.fullmatch(entry["time"]) is not None
    )


def _scan_side_by_side(
    data: bytes,
    *,
    want_roots: set[int] | frozenset[int],
    on_event: Callable[[VerifyProgress], None] | None,
    cancel: threading.Event | None,
    on_entry: Callable[[dict[str, Any]], None] | None,
    total: int | None = None,
) -> tuple[Scan | None, int]:
    """The fast pass of `scan_log` over a whole log: a Scan when every entry is plain and chains,
    else None with the number of entries already handed to `on_entry`."""
    if not data.endswith(b"\n"):
        return None, 0  # a torn tail: the pass in order reports it
    total = data.count(b"\n") if total is None else total
    # Parsing every entry for `on_entry` keeps this process busy on a core of its own, so the tree
    # then goes to one child fewer (each later part hashes the lines before it again).
    parts = cores() if on_entry is None else cores() - 1
    trees = [Forked(_tree_of, data, start, stop) for start, stop in _tree_parts(total, parts)]
    delivered = 0
    try:
        if on_entry is None:
            prevs = _plain_envelopes(data, on_event, cancel)
        else:
            prevs, delivered = _plain_entries(data, total, on_event, cancel, on_entry)
        if prevs is None:
            return None, delivered
        results = [tree.result() for tree in trees]
    finally:
        for tree in trees:
            tree.cancel()  # a no-op once its result is in
    leaves_blob = b"".join(r[0] for r in results)
    roots_blob = b"".join(r[1] for r in results)
    subtrees, final = results[-1][2], results[-1][3]
    if prevs != roots_blob.hex():
        return None, delivered
    leaves = merkle.Hashes(leaves_blob)
    roots = {size: roots_blob[32 * size : 32 * size + 32] for size in want_roots if size < total}
    roots[total] = final
    if on_event is not None:
        on_event(VerifyProgress(done=total, total=total))
    return Scan(leaves, roots, [], total, None, [], subtrees), delivered


def _plain_envelopes(
    data: bytes,
    on_event: Callable[[VerifyProgress], None] | None,
    cancel: threading.Event | None,
) -> str | None:
    """Every line's prev in order (concatenated), when every line is a plain entry in sequence:
    one match of ENVELOPE each, numbered 0, 1, 2, ..., each detail one JSON object. Else None.
    Matched PROGRESS_EVERY lines at a time, so progress shows and a cancel is heard."""
    try:
        data.decode("utf-8")  # every string must be text, as a JSON parser would insist
    except UnicodeDecodeError:
        return None
    lines = data.split(b"\n")
    lines.pop()
    total = len(lines)
    found: list[tuple[bytes, ...]] = []
    start = 0
    for first in range(0, total, PROGRESS_EVERY):
        if cancel is not None and cancel.is_set():
            raise Cancelled("audit verification cancelled", "run `strongroom audit verify` again")
        if on_event is not None:
            on_event(VerifyProgress(done=first, total=total))
        chunk = lines[first : first + PROGRESS_EVERY]
        end = start + sum(map(len, chunk)) + len(chunk)
        matched = ENVELOPE.findall(data, start, end)
        if len(matched) != len(chunk):
            return None
        found += matched
        start = end
    actions, details, prevs, seqs = zip(*found, strict=True) if found else ((), (), (), ())
    if b"audit.repair" in set(actions):
        return None  # a repaired tear: the pass in order words its note
    loads = json.loads
    try:
        if not all(type(loads(detail)) is dict for detail in set(details)):  # many details repeat
            return None
    except (ValueError, RecursionError):
        return None
    if b",".join(seqs) != ",".join(map(str, range(total))).encode():
        return None
    return b"".join(prevs).decode("ascii")


def _plain_entries(
    data: bytes,
    total: int,
    on_event: Callable[[VerifyProgress], None] | None,
    cancel: threading.Event | None,
    on_entry: Callable[[dict[str, Any]], None],
) -> tuple[str | None, int]:
    """As `_plain_envelopes`, parsing every entry for `on_entry` on the way; also the number of
    entries handed over before the first one that is not plain.

    Each line is parsed by msgspec's JSON decoder, twice as fast as the standard library's. Where
    it accepts a line it reads the same values (big integers exact, the last of duplicate keys);
    what it refuses and the standard library takes (NaN, an infinity such as 1e400, a lone
    surrogate) is not plain, and goes to the scan in order, which parses with the standard library.
    tests/property/test_scan_side_by_side.py holds each such line to that."""
    decode = msgspec.json.Decoder().decode
    find = data.find
    prevs: list[str] = []
    keep = prevs.append
    checker = _Checker(0)
    cursor = 0
    for pos in range(total):
        end_line = find(b"\n", cursor)
        line = data[cursor:end_line]
        cursor = end_line + 1
        try:
            entry = decode(line)
        except (ValueError, RecursionError):  # msgspec.DecodeError is a ValueError
            return None, pos
        if not pos % PROGRESS_EVERY:
            if cancel is not None and cancel.is_set():
                raise Cancelled("audit verification cancelled", "run `strongroom audit verify` again")
            if on_event is not None:
                on_event(VerifyProgress(done=pos, total=total))
        if _entry_is_plain(entry, checker.expected_seq, checker.known_actions):
            checker.expected_seq += 1
        else:  # the first entry of each action, and anything unusual: the full checks
            checker.check(pos, entry, merkle.EMPTY_ROOT)  # its prev is compared with the tree later
            if any(f.kind != "prev" for f in checker.findings) or checker.notes:
                return None, pos
            checker.findings.clear()
        prev = entry.get("prev")
        if type(prev) is not str or len(prev) != 64:
            return None, pos
        keep(prev)
        on_entry(entry)
    return "".join(prevs), total


def _scan_in_order(
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
        if _entry_is_plain(entry, checker.expected_seq, known_actions) and entry.get("prev") == root.hex():
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

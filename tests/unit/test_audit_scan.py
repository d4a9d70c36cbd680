"""The scan's findings for each kind of damaged entry, compared whole: a line that is not JSON, an
unknown version, fields of the wrong type, a malformed action or time, a seq out of order, a broken
prev chain and how many entries after it do not chain, and the note a repaired torn tail leaves."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tests.support import finding_json as finding
from vault.audit import AuditLog, merkle
from vault.audit.scan import scan_log, short_hash
from vault.storage.files import canonical_json

ORIGIN = "strongroom.local/vault/6e6e6e6e6e6e6e6e"


@pytest.fixture(scope="module")
def lines(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    log = AuditLog(tmp_path_factory.mktemp("scan") / "audit", origin=ORIGIN)
    for i in range(6):
        log.append("alice", "operator", "dataset.read", f"set{i}", "ok", {"i": i})
    return log.log_path.read_bytes().split(b"\n")[:-1]


def root(lines: list[bytes]) -> str:
    return merkle.root([merkle.leaf_hash(line) for line in lines]).hex()


def short(text: str) -> str:
    return text[:16] + "..."


def edited(line: bytes, **fields) -> bytes:
    entry = json.loads(line)
    entry.update(fields)
    return canonical_json(entry)


def findings(lines: list[bytes]) -> list[dict]:
    return [f.to_json() for f in scan_log(b"".join(line + b"\n" for line in lines)).findings]


def broken_after(damaged: list[bytes], original: list[bytes], at: int, later: int) -> list[dict]:
    """The prev findings when entry `at` was changed: entry at+1 no longer chains, nor do the `later`."""
    return [
        finding(
            at + 1,
            "prev",
            f"prev {short(root(damaged[: at + 1]))} (root of the {at + 1} entries before)",
            f"prev {short(root(original[: at + 1]))}",
            f"the log before this entry differs from when it was written: entry {at} or an earlier one was "
            "changed, removed or inserted",
        ),
        finding(
            at + 1,
            "prev",
            "each later entry to chain to the log before it",
            f"{later} later entries that do not",
            "the chain cannot be re-established after the first break",
        ),
    ]


@pytest.mark.parametrize(
    "name,damage,named",
    [
        (
            "not json",
            lambda line: b"garbage",
            ("json", "a JSON object", "a line that is not one", "line 4"),
        ),
        (
            "unknown version",
            lambda line: edited(line, v=2),
            (
                "version",
                "entry version 1",
                "version 2",
                "unknown entry format: this entry cannot be interpreted",
            ),
        ),
        (
            "fields of the wrong type",
            lambda line: edited(line, actor=5, role=None),
            ("fields", "every entry field with its type", "bad actor, role", ""),
        ),
        (
            "a malformed action",
            lambda line: edited(line, action="Dataset Read"),
            ("fields", "a dotted action and an RFC 3339 UTC time", "malformed ones", ""),
        ),
        (
            "a malformed time",
            lambda line: edited(line, time="yesterday"),
            ("fields", "a dotted action and an RFC 3339 UTC time", "malformed ones", ""),
        ),
    ],
)
def test_a_damaged_entry_is_named_with_the_break_it_leaves(lines: list[bytes], name, damage, named) -> None:
    damaged = [*lines[:3], damage(lines[3]), *lines[4:]]
    assert findings(damaged) == [finding(3, *named), *broken_after(damaged, lines, 3, 1)], name


def test_a_seq_out_of_order_is_named_and_the_count_goes_on_from_it(lines: list[bytes]) -> None:
    damaged = [*lines[:3], edited(lines[3], seq=7), *lines[4:]]
    moved = "entries were removed, reordered or inserted here"
    assert findings(damaged) == [
        finding(3, "seq", "seq 3", "seq 7", moved),
        finding(4, "seq", "seq 8", "seq 4", moved),
        *broken_after(damaged, lines, 3, 1),
    ]
    not_a_number = [*lines[:3], edited(lines[3], seq="3"), *lines[4:]]
    assert findings(not_a_number) == [
        finding(3, "fields", "every entry field with its type", "bad seq", ""),
        finding(3, "seq", "seq 3", "seq '3'", moved),
        *broken_after(not_a_number, lines, 3, 1),
    ], "a seq that is not a number does not move the count: entry 4 is where it should be"


def test_a_removed_entry_breaks_the_chain_for_every_entry_after_it(lines: list[bytes]) -> None:
    removed = [*lines[:2], *lines[3:]]
    assert findings(removed) == [
        finding(2, "seq", "seq 2", "seq 3", "entries were removed, reordered or inserted here"),
        finding(
            2,
            "prev",
            f"prev {short(root(lines[:2]))} (root of the 2 entries before)",
            f"prev {short(root(lines[:3]))}",
            "the log before this entry differs from when it was written: entry 1 or an earlier one was "
            "changed, removed or inserted",
        ),
        finding(
            2,
            "prev",
            "each later entry to chain to the log before it",
            "2 later entries that do not",
            "the chain cannot be re-established after the first break",
        ),
    ]


def test_a_repair_entry_leaves_a_note_and_an_intact_log_has_none(lines: list[bytes]) -> None:
    detail = {"torn_bytes": 12, "torn_offset": 345, "kept_as": "torn-1.bin"}
    repaired = [*lines[:3], edited(lines[3], action="audit.repair", detail=detail), *lines[4:]]
    scan = scan_log(b"".join(line + b"\n" for line in repaired))
    assert scan.notes == [
        "seq 3: a torn last line of 12 bytes at byte 345 was cut off and kept as audit/torn-1.bin"
    ]
    intact = scan_log(b"".join(line + b"\n" for line in lines))
    assert intact.findings == [] and intact.notes == [] and intact.size == 6
    assert intact.roots[6].hex() == root(lines)


def test_a_hash_is_shortened_to_16_hex_digits_and_a_short_text_is_kept() -> None:
    digest = bytes(range(32))
    assert short_hash(digest) == digest.hex()[:16] + "..."
    assert short_hash("0123456789abcdef") == "0123456789abcdef"
    assert short_hash("0123456789abcdef0") == "0123456789abcdef..."
    assert short_hash(Path("x").name) == "x"


def test_a_torn_tail_is_named_with_its_bytes_and_where_it_starts(lines: list[bytes]) -> None:
    data = b"".join(line + b"\n" for line in lines)
    scan = scan_log(data + b'{"action":"dataset.re')
    assert [f.to_json() for f in scan.findings] == [
        finding(
            5,
            "torn_tail",
            "every line to end with a newline",
            f"21 bytes without one at byte {len(data)}",
            f"torn tail at byte {len(data)} after seq 5: an append was interrupted; the next append cuts it "
            "off and records an audit.repair entry",
        )
    ]
    assert scan.torn == (len(data), 21) and scan.size == 6
    alone = scan_log(b"torn")
    assert [(f.seq, f.kind) for f in alone.findings] == [(None, "torn_tail")] and alone.torn == (0, 4)
    assert scan_log(data).torn is None


def test_progress_is_reported_every_so_many_entries_and_a_cancel_stops_the_scan(
    lines: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    from vault.audit import scan as scan_module
    from vault.errors import Cancelled

    monkeypatch.setattr(scan_module, "PROGRESS_EVERY", 2)
    data = b"".join(line + b"\n" for line in lines)
    events = []
    scan_log(data, on_event=events.append)
    assert [(e.done, e.total) for e in events] == [(0, 6), (2, 6), (4, 6), (6, 6)]
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled) as cancelled:
        scan_log(data, cancel=stop)
    assert (cancelled.value.title, cancelled.value.hint) == (
        "audit verification cancelled",
        "run `strongroom audit verify` again",
    )


def test_a_scan_from_a_later_entry_checks_only_from_there(lines: list[bytes]) -> None:
    damaged = [edited(lines[1], subject="changed"), *lines[2:]]
    base = merkle.MerkleTree()
    base.append(merkle.leaf_hash(lines[0]))
    rest = b"".join(line + b"\n" for line in damaged)
    scan = scan_log(rest, base=base)
    assert [(f.seq, f.kind) for f in scan.findings] == [(2, "prev"), (2, "prev")]
    assert scan.size == 6 and len(scan.leaves) == 5
    whole = [lines[0], *damaged]
    assert scan.roots[6] == scan_log(b"".join(line + b"\n" for line in whole)).roots[6]
    seen: list[dict] = []
    later = scan_log(b"".join(line + b"\n" for line in whole), check_from=3, on_entry=seen.append)
    assert [(f.seq, f.kind) for f in later.findings] == [(3, "prev"), (3, "prev")], (
        "entries before check_from are hashed, not checked: the break shows at the first one checked"
    )
    assert [e["seq"] for e in seen] == [3, 4, 5] and later.roots[6] == scan.roots[6]
    unchanged = b"".join(line + b"\n" for line in lines)
    assert scan_log(unchanged, check_from=3).roots[6].hex() == root(lines)


def test_packed_hashes_refuse_a_torn_blob_and_an_index_past_the_end() -> None:
    from vault.audit.merkle import Hashes

    with pytest.raises(ValueError, match="not whole 32-byte hashes"):
        Hashes(b"\x00" * 33)
    packed = Hashes(bytes(range(64)))
    assert len(packed) == 2 and packed[1] == bytes(range(32, 64)) and packed[::2] == [bytes(range(32))]
    with pytest.raises(IndexError):
        packed[2]
    with pytest.raises(IndexError):
        packed[-3]

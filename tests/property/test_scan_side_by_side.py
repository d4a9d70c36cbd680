"""The side-by-side scan (the tree hashed in a forked child while this process checks the entries)
concludes exactly what the scan in order does: the same roots, leaves and compact range on an
intact log, and on any damaged log the same findings, since it hands every doubt to the scan in
order. Entries reach a reader once each, whichever path ran."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vault.audit import AuditLog, scan
from vault.audit.forked import Forked
from vault.audit.verify import verify_snapshot
from vault.crypto.signing import SigningKey
from vault.errors import Cancelled

ORIGIN = "strongroom.local/vault/5b5b5b5b5b5b5b5b"


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes, bytes, bytes]:
    """A sealed log of 3 commands with varied entries; its public key, initial key and checkpoint."""
    root = tmp_path_factory.mktemp("sbs") / "audit"
    key = SigningKey.generate()
    log = AuditLog(root, origin=ORIGIN)
    log.init(key.public_pem())
    log.attach_sealer(key.raw(), "alice", "operator")
    for command in range(3):
        for i in range(23):
            log.append(
                "alice" if i % 3 else "bob",
                "operator",
                ["dataset.read", "train.run", "session.unlock"][i % 3],
                f'set{command}.{i} \u00e9\\"quoted"',
                "ok",
                {"i": i, "nested": {"list": [1, 2.5, None, True]}, "text": "a\tb"},
            )
        log.write_checkpoint(key)
    initial = log.initial_key()
    assert initial is not None
    return log.log_path.read_bytes(), key.public_pem(), initial, log.checkpoint_path.read_bytes()


@pytest.fixture
def side_by_side(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small logs take the side-by-side path too (it starts at 16,384 entries otherwise)."""
    monkeypatch.setattr(scan, "SIDE_BY_SIDE_FROM", 1)


def in_order(data: bytes, **kwargs) -> scan.Scan:
    return scan._scan_in_order(data, **kwargs)


def test_an_intact_log_gives_the_same_tree_either_way(written, side_by_side) -> None:
    data = written[0]
    total = data.count(b"\n")
    fast, delivered = scan._scan_side_by_side(
        data, want_roots={1, 7, total}, on_event=None, cancel=None, on_entry=None
    )
    assert fast is not None, "an intact log must pass the side-by-side scan"
    slow = in_order(data, want_roots={1, 7, total})
    assert (list(fast.leaves), fast.roots, fast.subtrees, fast.size) == (
        slow.leaves,
        slow.roots,
        slow.subtrees,
        slow.size,
    )
    assert fast.findings == slow.findings == []


def test_entries_reach_the_reader_once_each(written, side_by_side) -> None:
    data = written[0]
    seen: list[int] = []
    scan.scan_log(data, on_entry=lambda e: seen.append(e["seq"]))
    assert seen == list(range(data.count(b"\n")))
    # A damaged line half-way: the first pass gave up there, the second goes on from it.
    lines = data.split(b"\n")
    lines[40] = lines[40].replace(b'"outcome":"ok"', b'"outcome":7')
    seen.clear()
    damaged = scan.scan_log(b"\n".join(lines), on_entry=lambda e: seen.append(e["seq"]))
    assert seen == list(range(len(lines) - 1))
    assert [f.kind for f in damaged.findings][:1] == ["fields"]


def flip_hex(line: bytes, key: bytes) -> bytes:
    """The line with the first hex digit of a field's value changed (still well-formed)."""
    at = line.rindex(key) + len(key)
    return line[:at] + (b"1" if line[at : at + 1] == b"0" else b"0") + line[at + 1 :]


DAMAGE = [
    ("prev", lambda line: flip_hex(line, b'"prev":"')),
    ("seal", lambda line: flip_hex(line, b'"seal":"')),
    ("outcome type", lambda line: line.replace(b'"outcome":"ok"', b'"outcome":1')),
    ("no JSON", lambda line: b"not json at all"),
    ("bad UTF-8", lambda line: line.replace(b'"actor":"', b'"actor":"\xff', 1)),
    ("a key twice", lambda line: line[:-1] + b',"v":1}'),
    ("spaces", lambda line: line.replace(b'","', b'", "', 1)),
    (
        "a changed detail",
        lambda line: line.replace(b'"detail":{', b'"detail":{"added":1,', 1).replace(b",}", b"}", 1),
    ),
    ("bad time", lambda line: line.replace(b'"time":"2', b'"time":"X', 1)),
    ("bad action", lambda line: line.replace(b'"action":"', b'"action":"A', 1)),
    ("seq", lambda line: line.replace(b'"seq":', b'"seq":1', 1)),
    ("version", lambda line: line.replace(b'"v":1}', b'"v":2}')),
]


# Lines the report's parser (msgspec) and the standard library could read differently: each must
# reach the reader exactly as the scan in order (the standard library) reads it, or not at all.
PARSER_DAMAGE = [
    ("NaN", lambda line: line.replace(b'"detail":{', b'"detail":{"nan":NaN,', 1)),
    ("infinity", lambda line: line.replace(b'"detail":{', b'"detail":{"big":1e400,', 1)),
    (
        "huge integer",
        lambda line: line.replace(b'"detail":{', b'"detail":{"n":123456789012345678901234567890,', 1),
    ),
    ("lone surrogate", lambda line: line.replace(b'"detail":{', b'"detail":{"s":"\\ud800",', 1)),
    ("leading space", lambda line: b" " + line),
    ("trailing space", lambda line: line + b" "),
    ("raw tab", lambda line: line.replace(b'"detail":{', b'"detail":{"t":"a\tb",', 1)),
    (
        "deep",
        lambda line: line.replace(b'"detail":{', b'"detail":{"d":' + b"[" * 5000 + b"]" * 5000 + b",", 1),
    ),
    ("tiny float", lambda line: line.replace(b'"detail":{', b'"detail":{"f":1.5e-400,"g":-0.0,"h":1E2,', 1)),
]


def delivered(data: bytes) -> tuple[list[Any], list[Any]]:
    """What a reader is handed, and the findings, scanning `data` as a whole log."""
    entries: list[Any] = []
    found = scan.scan_log(data, on_entry=entries.append)
    return [repr(e) for e in entries], [f.to_json() for f in found.findings]


@pytest.mark.parametrize("name,damage", DAMAGE + PARSER_DAMAGE, ids=[d[0] for d in DAMAGE + PARSER_DAMAGE])
@pytest.mark.parametrize("at", [0, 35, -1])
def test_a_reader_is_handed_what_the_scan_in_order_reads(written, name, damage, at, monkeypatch) -> None:
    data = written[0]
    lines = data.split(b"\n")[:-1]
    lines[at] = damage(lines[at])
    damaged = b"\n".join(lines) + b"\n"
    slow = delivered(damaged)  # the threshold is not reached: the scan in order
    monkeypatch.setattr(scan, "SIDE_BY_SIDE_FROM", 1)
    assert delivered(damaged) == slow


def verdict(data: bytes, pubkey: bytes, initial: bytes, latest: bytes) -> tuple:
    report = verify_snapshot(
        data,
        pubkey_file=pubkey,
        trusted_pubkey=None,
        checkpoints=[],
        latest=latest,
        external=None,
        origin=ORIGIN,
        initial_key=initial,
    )
    return report.ok, report.root, [f.to_json() for f in report.findings], report.unsealed_seqs


@pytest.mark.parametrize("name,damage", DAMAGE, ids=[d[0] for d in DAMAGE])
@pytest.mark.parametrize("at", [0, 1, 35, -1])
def test_damage_is_named_exactly_as_the_scan_in_order_names_it(
    written, name, damage, at, monkeypatch
) -> None:
    data, pubkey, initial, latest = written
    lines = data.split(b"\n")[:-1]
    changed = damage(lines[at])
    assert changed != lines[at]
    lines[at] = changed
    damaged = b"\n".join(lines) + b"\n"
    slow = verdict(damaged, pubkey, initial, latest)  # the threshold is not reached: the scan in order
    monkeypatch.setattr(scan, "SIDE_BY_SIDE_FROM", 1)
    fast = verdict(damaged, pubkey, initial, latest)
    assert fast == slow
    assert not fast[0], f"{name} at {at} went unnoticed"


def test_lines_swapped_removed_or_torn_are_named_alike(written, monkeypatch) -> None:
    data, pubkey, initial, latest = written
    lines = data.split(b"\n")[:-1]
    cases = {
        "swapped": lines[:10] + [lines[11], lines[10]] + lines[12:],
        "removed": lines[:10] + lines[11:],
        "duplicated": lines[:10] + [lines[10]] + lines[10:],
    }
    for name, changed in cases.items():
        damaged = b"\n".join(changed) + b"\n"
        monkeypatch.setattr(scan, "SIDE_BY_SIDE_FROM", 16384)
        slow = verdict(damaged, pubkey, initial, latest)
        monkeypatch.setattr(scan, "SIDE_BY_SIDE_FROM", 1)
        assert verdict(damaged, pubkey, initial, latest) == slow and not slow[0], name
    torn = data + b'{"action":"dataset.re'
    monkeypatch.setattr(scan, "SIDE_BY_SIDE_FROM", 16384)
    slow = verdict(torn, pubkey, initial, latest)
    monkeypatch.setattr(scan, "SIDE_BY_SIDE_FROM", 1)
    assert verdict(torn, pubkey, initial, latest) == slow and not slow[0]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(at=st.integers(min_value=0), offset=st.integers(min_value=0), byte=st.integers(0, 255))
def test_any_changed_byte_is_named_alike(written, at, offset, byte) -> None:
    data, pubkey, initial, latest = written
    lines = data.split(b"\n")[:-1]
    at %= len(lines)
    line = bytearray(lines[at])
    offset %= len(line)
    if line[offset] == byte or byte == 0x0A:
        return
    line[offset] = byte
    lines[at] = bytes(line)
    damaged = b"\n".join(lines) + b"\n"
    old = scan.SIDE_BY_SIDE_FROM
    try:
        slow = verdict(damaged, pubkey, initial, latest)
        scan.SIDE_BY_SIDE_FROM = 1
        fast = verdict(damaged, pubkey, initial, latest)
    finally:
        scan.SIDE_BY_SIDE_FROM = old
    assert fast == slow
    assert not fast[0]


def _only_here(parent: int) -> int:
    if os.getpid() != parent:
        raise RuntimeError("the child fails")
    return 41 + 1


def test_a_failing_child_leaves_the_work_to_this_process() -> None:
    assert Forked(_only_here, os.getpid()).result() == 42
    assert Forked(sum, [1, 2, 3]).result() == 6


def test_a_cancelled_child_is_reaped(tmp_path: Path) -> None:
    job = Forked(json.dumps, {"a": 1})
    job.cancel()
    assert job.result() == '{"a": 1}'  # computed here after the cancel


def test_the_side_by_side_pass_shows_progress_and_hears_a_cancel(written, side_by_side, monkeypatch) -> None:
    monkeypatch.setattr(scan, "PROGRESS_EVERY", 10)
    data = written[0]
    total = data.count(b"\n")
    seen: list[int] = []
    fast, _ = scan._scan_side_by_side(
        data, want_roots=set(), on_event=lambda e: seen.append(e.done), cancel=None, on_entry=None
    )
    assert fast is not None
    assert seen == [*range(0, total, 10), total]
    read: list[int] = []  # with a reader, the entries pass parses them too: the same progress
    seen.clear()
    fast, delivered = scan._scan_side_by_side(
        data, want_roots=set(), on_event=lambda e: seen.append(e.done), cancel=None, on_entry=read.append
    )
    assert fast is not None and delivered == total == len(read)
    assert seen == [*range(0, total, 10), total]
    stop = threading.Event()
    stop.set()
    for reader in (None, read.append):
        with pytest.raises(Cancelled) as cancelled:
            scan.scan_log(data, cancel=stop, on_entry=reader)
        assert (cancelled.value.title, cancelled.value.hint) == (
            "audit verification cancelled",
            "run `strongroom audit verify` again",
        )

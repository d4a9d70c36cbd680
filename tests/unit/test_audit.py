"""The audit log's own behaviour: appends, chaining, the state cache, checkpoints, reading and filters."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from vault.audit import AuditLog, merkle, parse_time
from vault.audit.checkpoint import parse_checkpoint, verify_checkpoint
from vault.crypto.signing import SigningKey
from vault.errors import Cancelled, IntegrityError, UsageError
from vault.findings import VerifyProgress
from vault.storage.files import canonical_json as canonical

ORIGIN = "strongroom.local/vault/00112233aabbccdd"


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def log(tmp_path: Path, key: SigningKey) -> AuditLog:
    audit = AuditLog(tmp_path / "vault" / "audit", origin=ORIGIN)
    audit.init(key.public_pem())
    return audit


def fill(log: AuditLog, n: int, actor: str = "alice") -> list[dict]:
    return [
        log.append(actor, "operator", "dataset.read", f"set{i % 3}", "ok", {"purpose": "train", "i": i})
        for i in range(n)
    ]


def test_entries_are_canonical_lines_chained_by_merkle_roots(log: AuditLog) -> None:
    written = fill(log, 6)
    raw = log.log_path.read_bytes()
    assert raw.endswith(b"\n")
    lines = raw.split(b"\n")[:-1]
    tree = merkle.MerkleTree()
    for i, line in enumerate(lines):
        entry = json.loads(line)
        assert line == canonical(entry)
        assert entry == written[i]
        assert entry["seq"] == i and entry["v"] == 1
        assert entry["prev"] == tree.root().hex()
        assert entry["time"].endswith("Z")
        parse_time(entry["time"])
        tree.append(merkle.leaf_hash(line))
    assert written[0]["prev"] == merkle.EMPTY_ROOT.hex()
    assert set(written[0]) == {
        "v",
        "seq",
        "time",
        "actor",
        "role",
        "action",
        "subject",
        "outcome",
        "detail",
        "prev",
    }


def test_appends_are_readable_without_any_key(log: AuditLog) -> None:
    fill(log, 3)
    reader = AuditLog(log.dir)
    assert [e["seq"] for e in reader.entries()] == [0, 1, 2]
    assert reader.verify().ok


def test_filters(log: AuditLog) -> None:
    fill(log, 4)
    log.append("bob", "admin", "dataset.delete", "set1", "ok", {})
    log.append("bob", "admin", "datasetx.odd", "set1", "ok", {})
    assert [e["seq"] for e in log.entries(actor="bob")] == [4, 5]
    assert [e["seq"] for e in log.entries(action="dataset")] == [0, 1, 2, 3, 4]
    assert [e["seq"] for e in log.entries(action="dataset.delete")] == [4]
    first = log.entries()[3]["time"]
    assert [e["seq"] for e in log.entries(since=first)] == [3, 4, 5]
    assert log.entries(since="2999-01-01") == []
    assert len(log.entries(since="2000-01-01")) == 6
    with pytest.raises(UsageError):
        log.entries(since="yesterday")


def test_bad_appends_are_refused_before_anything_is_written(log: AuditLog) -> None:
    with pytest.raises(ValueError):
        log.append("alice", "admin", "NotDotted", "x")
    with pytest.raises(TypeError):
        log.append("alice", "admin", "dataset.read", 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        log.append("alice", "admin", "dataset.read", "x", "ok", {"eps": float("nan")})
    with pytest.raises(TypeError):
        log.append("alice", "admin", "dataset.read", "x", "ok", {"blob": b"bytes"})
    assert not log.log_path.exists() or log.log_path.read_bytes() == b""


def test_unicode_and_newlines_in_fields_stay_on_one_line(log: AuditLog) -> None:
    log.append("zoë", "admin", "dataset.import", "naïve\nname\u2028x", "ok", {"note": "a\r\nb\x00"})
    log.append("alice", "admin", "dataset.read", "x")
    lines = log.log_path.read_bytes().split(b"\n")
    assert len(lines) == 3 and lines[-1] == b""
    assert log.entries()[0]["subject"] == "naïve\nname\u2028x"
    assert log.verify().findings == []


def test_state_cache_survives_new_instances_and_foreign_appends(log: AuditLog) -> None:
    fill(log, 5)
    other = AuditLog(log.dir)  # another process's view: starts from state.json
    other.append("bob", "admin", "keys.add", "carol", "ok", {})
    log.append("alice", "operator", "train.start", "run1", "ok", {})  # must catch up, not fork
    assert [e["seq"] for e in log.entries()] == list(range(7))
    assert log.verify().findings == []


def test_state_cache_is_saved_at_checkpoints_and_caught_up_after(log: AuditLog, key: SigningKey) -> None:
    fill(log, 5)
    log.write_checkpoint(key)
    state = json.loads(log.state_path.read_text())
    assert state["size"] == 5 and state["offset"] == log.log_path.stat().st_size
    assert state["signed"]["size"] == 5
    fill(log, 3)
    assert json.loads(log.state_path.read_text())["size"] == 5  # appends do not rewrite it
    entry = AuditLog(log.dir).append("bob", "admin", "keys.add", "carol")  # catches up 3 entries
    assert entry["seq"] == 8 and log.verify(key.public_pem()).findings == []


def test_a_corrupt_or_lying_state_cache_is_ignored(log: AuditLog) -> None:
    fill(log, 5)
    log.state_path.write_text('{"size": 2, "offset": 3, "subtrees": [], "last_leaf": "", "last_len": 1}')
    fresh = AuditLog(log.dir)
    fresh.append("alice", "operator", "train.end", "run1")
    log.state_path.write_text("not json")
    AuditLog(log.dir).append("alice", "operator", "train.end", "run2")
    assert [e["seq"] for e in log.entries()] == list(range(7))
    assert log.verify().findings == []


def test_checkpoint_is_written_atomically_with_history(log: AuditLog, key: SigningKey) -> None:
    fill(log, 3)
    text = log.write_checkpoint(key)
    assert log.checkpoint_path.read_text() == text
    assert (log.checkpoints_dir / "3.txt").read_text() == text
    cp = verify_checkpoint(text, log.pubkey_path.read_bytes())
    assert (cp.origin, cp.size) == (ORIGIN, 3)
    assert cp.root == merkle.root([merkle.leaf_hash(x) for x in log.log_path.read_bytes().split(b"\n")[:-1]])
    fill(log, 2)
    log.write_checkpoint(key)
    assert sorted(p.name for p in log.checkpoints_dir.iterdir()) == ["3.txt", "5.txt"]
    latest = log.latest_checkpoint()
    assert latest is not None and parse_checkpoint(latest).size == 5
    assert not [p for p in log.dir.iterdir() if p.name.startswith(".tmp-")]


def test_checkpoint_of_an_empty_log(tmp_path: Path, key: SigningKey) -> None:
    log = AuditLog(tmp_path / "audit")
    text = log.write_checkpoint(key, ORIGIN)
    assert parse_checkpoint(text).size == 0 and parse_checkpoint(text).root == merkle.EMPTY_ROOT
    assert log.pubkey_path.exists()
    report = log.verify(key.public_pem(), text)
    assert report.ok and report.truncation_ruled_out


def test_checkpoint_needs_an_origin(tmp_path: Path, key: SigningKey) -> None:
    with pytest.raises(ValueError):
        AuditLog(tmp_path / "audit").write_checkpoint(key)


def test_signing_with_another_key_is_refused(log: AuditLog) -> None:
    fill(log, 1)
    with pytest.raises(IntegrityError, match="does not hold this vault's audit public key"):
        log.write_checkpoint(SigningKey.generate())
    with pytest.raises(IntegrityError):
        log.init(SigningKey.generate().public_pem())
    with pytest.raises(UsageError):
        log.init(b"not a key")


def test_an_edited_log_is_never_signed_over(log: AuditLog, key: SigningKey) -> None:
    fill(log, 4)
    log.write_checkpoint(key)
    fill(log, 2)
    original = log.log_path.read_bytes()
    lines = original.split(b"\n")
    lines[1] = lines[1].replace(b"alice", b"mallo")
    log.log_path.write_bytes(b"\n".join(lines))
    # With the cached signed tree, the new checkpoint extends what was signed, not the edited file.
    text = log.write_checkpoint(key)
    signed = parse_checkpoint(text)
    assert signed.size == 6
    assert signed.root == merkle.root([merkle.leaf_hash(x) for x in original.split(b"\n")[:-1]])
    assert {"prev", "checkpoint_root"} <= {f.kind for f in log.verify(key.public_pem()).findings}
    # Without the cache, the signed prefix is hashed again and the edit is refused outright.
    log.state_path.unlink()
    fresh = AuditLog(log.dir)
    with pytest.raises(IntegrityError, match="was not signed"):
        fresh.write_checkpoint(key, ORIGIN)
    assert parse_checkpoint(log.latest_checkpoint() or "").size == 6


def test_checkpoints_extend_the_cached_signed_tree(log: AuditLog, key: SigningKey) -> None:
    for _ in range(3):
        fill(log, 5)
        log.write_checkpoint(key)
    assert json.loads(log.state_path.read_text())["signed"]["size"] == 15
    fill(log, 2)
    log.state_path.write_text(
        log.state_path.read_text().replace('"signed":{"offset":', '"signed":{"offset":1')
    )
    AuditLog(log.dir).write_checkpoint(key, ORIGIN)  # a wrong cached offset falls back to a full scan
    report = log.verify(key.public_pem())
    assert report.ok and report.signed_size == 17
    state = json.loads(log.state_path.read_text())
    boundary = log.log_path.read_bytes().index(b"\n") + 1  # a line boundary, but the wrong one
    state["signed"]["offset"] = boundary
    log.state_path.write_text(json.dumps(state))
    log.append("alice", "operator", "session.end", "v")
    AuditLog(log.dir).write_checkpoint(key, ORIGIN)
    assert log.verify(key.public_pem()).ok


def test_unsigned_new_entries_that_do_not_chain_are_not_signed(log: AuditLog, key: SigningKey) -> None:
    fill(log, 3)
    log.write_checkpoint(key)
    forged = {**log.entries()[2], "seq": 3, "actor": "mallory"}
    with open(log.log_path, "ab") as f:
        f.write(canonical(forged) + b"\n")
    with pytest.raises(IntegrityError, match="entry 3"):
        log.write_checkpoint(key)


def test_a_truncated_log_is_never_signed_over(log: AuditLog, key: SigningKey) -> None:
    fill(log, 5)
    log.write_checkpoint(key)
    lines = log.log_path.read_bytes().split(b"\n")
    log.log_path.write_bytes(b"\n".join(lines[:3]) + b"\n")
    with pytest.raises(IntegrityError):
        log.write_checkpoint(key)


def test_torn_tail_is_reported_then_repaired_by_the_next_append(log: AuditLog, key: SigningKey) -> None:
    fill(log, 3)
    log.write_checkpoint(key)
    size = log.log_path.stat().st_size
    with open(log.log_path, "ab") as f:
        f.write(b'{"action":"dataset.re')
    assert log.torn_tail() == (size, 21)
    report = log.verify(key.public_pem())
    assert not report.ok
    assert [f.kind for f in report.findings] == ["torn_tail"]
    assert report.findings[0].seq == 2
    assert f"torn tail at byte {size} after seq 2" in report.findings[0].message
    assert len(log.entries()) == 3  # show skips it; verify reports it

    entry = log.append("bob", "admin", "session.unlock", "v")
    entries = log.entries()
    assert [e["action"] for e in entries] == ["dataset.read"] * 3 + ["audit.repair", "session.unlock"]
    repair = entries[3]["detail"]
    assert repair["torn_offset"] == size and repair["torn_bytes"] == 21 and repair["after_seq"] == 2
    assert (log.dir / repair["kept_as"]).read_bytes() == b'{"action":"dataset.re'
    assert entry["seq"] == 4
    report = log.verify(key.public_pem())
    assert report.findings == [] and report.notes and "cut off" in report.notes[0]
    log.write_checkpoint(key)
    assert log.verify(key.public_pem()).ok


def test_cancel_and_progress_events(log: AuditLog) -> None:
    fill(log, 3)
    events: list[VerifyProgress] = []
    log.verify(on_event=events.append)
    assert events[-1].done == events[-1].total == 3
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        log.verify(cancel=stop)


def test_inclusion_proof_for_an_entry(log: AuditLog, key: SigningKey) -> None:
    fill(log, 7)
    cp = parse_checkpoint(log.write_checkpoint(key))
    line = log.log_path.read_bytes().split(b"\n")[4]
    proof = log.inclusion_proof(4, cp.size)
    merkle.verify_inclusion(merkle.leaf_hash(line), 4, cp.size, proof, cp.root)


def test_audit_dir_is_created_with_the_log(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "new" / "audit")
    log.append("alice", "admin", "vault.init", "x")
    assert log.log_path.exists()
    assert oct(log.dir.stat().st_mode & 0o777) == oct(0o700 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_temp_files_of_a_killed_writer_are_removed(log: AuditLog, key: SigningKey) -> None:
    fill(log, 1)
    stale = log.dir / ".tmp-0123456789abcdef"
    stale.write_text("half a checkpoint")
    log.write_checkpoint(key)
    assert not stale.exists()
    assert log.verify(key.public_pem()).ok


def test_a_cache_with_a_wrong_tree_is_caught_by_the_checkpoint(log: AuditLog, key: SigningKey) -> None:
    fill(log, 5)
    log.write_checkpoint(key)
    state = json.loads(log.state_path.read_text())
    state["subtrees"] = [("00" * 32) for _ in state["subtrees"]]
    log.state_path.write_text(json.dumps(state))
    AuditLog(log.dir).append("bob", "admin", "session.unlock", "v")
    assert log.verify(key.public_pem()).findings == []


def test_lazy_entries_match_entries_and_parse_on_demand(tmp_path):
    from vault.audit import AuditLog

    log = AuditLog(tmp_path / "audit")
    for i in range(30):
        log.append("admin", "admin", "dataset.read", f"d{i}", "ok", {"n": i})
    lazy = log.lazy_entries()
    assert len(lazy) == 30 and lazy._parsed == {}
    assert lazy[-1] == log.entries()[-1] and len(lazy._parsed) == 1
    assert list(lazy) == log.entries() and lazy[2:4] == log.entries()[2:4]


def test_each_command_opens_an_epoch_certified_by_the_last_until_the_sealed_state_is_lost(
    tmp_path: Path, key: SigningKey
) -> None:
    from vault.audit import epochs

    root = tmp_path / "audit"
    AuditLog(root, origin=ORIGIN).init(key.public_pem())

    def command(n: int) -> None:  # one process: its own AuditLog and Sealer, ending with a checkpoint
        log = AuditLog(root, origin=ORIGIN)
        log.attach_sealer(key.raw(), "alice", "operator")
        for i in range(n):
            log.append("alice", "operator", "dataset.read", f"set{i}", "ok", {"i": i})
        log.write_checkpoint(key)

    command(2)
    command(1)
    (root / epochs.STATE_FILE).unlink()
    command(1)
    lines = (root / "log.jsonl").read_bytes().split(b"\n")[:-1]
    opened = [
        json.loads(epochs.split_seal(line)[0] if epochs.split_seal(line) else line)
        for line in lines
        if b'"audit.epoch"' in line
    ]
    every = [(e["detail"]["epoch"], e["detail"]["idle"], e["detail"]["reason"]) for e in opened]
    missing = "the sealed epoch state was missing or unreadable: this epoch is not certified by the last one"
    assert every == [
        (0, False, "the first epoch of this log"),
        (1, True, "the command ended"),
        (2, False, "a new command"),
        (3, True, "the command ended"),
        (4, False, missing),
        (5, True, "the command ended"),
    ], "one epoch for each command's entries and one idle epoch between commands, no more"
    opened = [e for e in opened if e["action"] == epochs.EPOCH_ACTION and not e["detail"]["idle"]]
    assert [e["detail"]["epoch"] for e in opened] == [0, 2, 4]
    first, carried, restarted = (e["detail"] for e in opened)
    assert (first["reason"], first["certificate"], first["reveal"]) == ("the first epoch of this log", "", "")
    assert carried["reason"] == "a new command" and carried["certificate"] and carried["reveal"]
    assert restarted["certificate"] == "" and restarted["reason"] == (
        "the sealed epoch state was missing or unreadable: this epoch is not certified by the last one"
    )
    assert {e["actor"] for e in opened} == {"alice"} and {e["role"] for e in opened} == {"operator"}


def test_the_seal_read_is_the_top_level_one_at_the_end_of_the_line() -> None:
    from vault.audit import epochs

    nested = b'{"detail":{"seal":"' + b"a" * 64 + b'"},"seal":"' + b"b" * 64 + b'"}'
    assert epochs.split_seal(nested) == (b'{"detail":{"seal":"' + b"a" * 64 + b'"},"seal":""}', b"b" * 64)
    assert epochs.split_seal(b'"seal":"' + b"c" * 64 + b'"') == (b'"seal":""', b"c" * 64)
    assert epochs.split_seal(b'{"seal":"' + b"c" * 63 + b'"}') is None, "a seal of the wrong length"
    assert epochs.split_seal(b'{"a":1}') is None


def test_the_lines_of_an_epoch_that_its_key_did_not_seal_are_named_by_seq() -> None:
    from vault.audit import epochs

    key, other = b"k" * 32, b"o" * 32

    def line(action: str, n: int) -> bytes:
        return canonical({"action": action, "n": n, "seal": ""})

    opening = line("audit.epoch", 0)  # the opening entry is checked by the walk, not here
    ours = epochs.seal_line(key, line("dataset.read", 1))
    theirs = epochs.seal_line(other, line("dataset.read", 2))
    plain = line("dataset.read", 3)
    keyless = line("session.unlock_failed", 4)  # written before any key was open: unsealed by design
    forged_keyless = epochs.seal_line(other, line("session.unlock_failed", 5))
    tampered = ours.replace(b'"n":1', b'"n":7')
    lines = [opening, ours, theirs, plain, keyless, forged_keyless, tampered, ours]
    assert epochs.unsealed_in(lines, 10, key) == [12, 13, 15, 16]
    assert epochs.unsealed_in([opening, keyless, ours], 0, key) == []
    assert epochs.unsealed_in([ours, plain], 5, other) == [6]


# ---------------------------------------------------------------- descriptors kept between appends


def test_appends_follow_a_log_replaced_under_a_long_lived_writer(log: AuditLog, key: SigningKey) -> None:
    """A writer keeps the log open between appends; once the path names another file it writes
    there, chained over that file, and never into the inode that was moved away."""
    fill(log, 3)
    moved = log.log_path.with_name("moved.jsonl")
    os.rename(log.log_path, moved)
    kept = moved.read_bytes()
    log.log_path.write_bytes(kept[: kept.index(b"\n") + 1])  # the path now names a one-entry log
    entry = log.append("bob", "operator", "dataset.read", "set9", "ok", {})
    assert moved.read_bytes() == kept
    lines = log.log_path.read_bytes().split(b"\n")[:-1]
    assert len(lines) == 2 and entry["seq"] == 1
    tree = merkle.MerkleTree()
    tree.append(merkle.leaf_hash(lines[0]))
    assert entry["prev"] == tree.root().hex()
    log.write_checkpoint(key)
    assert log.verify(key.public_pem()).ok


def test_a_forked_child_waits_for_its_parents_lock(log: AuditLog) -> None:
    """A forked child shares its parent's open file descriptions, and with them an flock: its appends
    must still wait while the parent holds the writer lock, and release nothing of the parent's."""
    fill(log, 1)  # the parent's lock and log descriptors are now open
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: append with the object it inherited, once the parent holds the lock
        code = 1
        try:
            assert os.read(go_r, 1) == b"g"
            log.append("child", "operator", "dataset.read", "set1", "ok", {})
            os.write(done_w, b"d")
            code = 0
        finally:
            os._exit(code)
    os.set_blocking(done_r, False)
    with log.writer_lock():
        os.write(go_w, b"g")
        threading.Event().wait(1.0)  # long enough for an unguarded child to finish its append
        with pytest.raises(BlockingIOError):
            os.read(done_r, 1)
        size_while_held = log.log_path.stat().st_size
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    os.set_blocking(done_r, True)
    assert os.read(done_r, 1) == b"d"
    for fd in (go_r, go_w, done_r, done_w):
        os.close(fd)
    lines = log.log_path.read_bytes().split(b"\n")[:-1]
    assert sum(len(line) + 1 for line in lines[:1]) == size_while_held
    assert [json.loads(line)["actor"] for line in lines] == ["alice", "child"]
    parent_entry = log.append("parent", "operator", "dataset.read", "set2", "ok", {})
    assert parent_entry["seq"] == 2


@pytest.mark.parametrize("block", [7, 64, 1 << 20])
def test_the_first_and_the_newest_record_of_a_detail_are_read_from_either_end(
    log: AuditLog, block: int
) -> None:
    """`authority` is matched against the first line recording it, other facts against the newest:
    read in blocks that cut lines anywhere, past lines that are not JSON, a torn tail ignored."""
    from vault.audit.reader import earliest_detail, latest_detail

    log.append("admin", "admin", "vault.init", "v", "ok", {"authority": "first", "n": 1})
    log.append("admin", "admin", "session.open", "v", "ok", {"authority": "second"})
    with open(log.log_path, "ab") as f:
        f.write(b'not json "authority": at all\n{"detail":{"authority":"torn"')
    assert earliest_detail(log.log_path, "authority", block) == (0, "first")
    assert latest_detail(log.log_path, "authority") == (1, "second")
    assert log.latest("authority", earliest=True) == (0, "first")
    assert earliest_detail(log.log_path, "nowhere", block) is None
    assert earliest_detail(log.log_path.parent / "missing.jsonl", "authority", block) is None


@pytest.mark.parametrize("block", [5, 50, 1 << 23])
def test_the_lines_above_a_bound_are_found_in_one_pass_for_every_key(tmp_path: Path, block: int) -> None:
    from vault.audit import reader

    path = tmp_path / "log.jsonl"
    rows = [
        {"seq": 0, "detail": {"a": 1, "b": 1}},
        {"seq": 1, "detail": {"a": 3}},
        {"seq": 2, "detail": {"note": 'text with "a": 9 inside', "b": 2}},
        {"seq": 3, "detail": {"a": "x", "b": 5}},
    ]
    path.write_bytes(b"".join(canonical(r) + b"\n" for r in rows) + b'{"seq":4,"detail":{"a":99')
    lines = list(reader.lines_holding(path, b'"a":', b'"b":', block=block))
    assert [json.loads(x)["seq"] for x in lines] == [0, 1, 2, 3]  # each once, the torn tail left out
    assert reader.above_detail(path, {"a": 2, "b": 1}) == {"a": [(1, 3), (3, "x")], "b": [(2, 2), (3, 5)]}
    assert reader.above_detail(path, {"a": 3, "b": 5}) == {"a": [(3, "x")], "b": []}

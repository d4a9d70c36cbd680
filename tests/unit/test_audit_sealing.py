"""The sealer's bookkeeping of epochs, entry by entry: a line it did not write is named at the end of
its epoch (seq, leaf hash, reason), a long epoch moves on, a command's end leaves one idle epoch, and
an epoch whose opening a crash left unwritten is finished by the next writer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vault.audit import AuditLog, epochs, merkle, sealing
from vault.crypto.signing import SigningKey

ORIGIN = "strongroom.local/vault/4d4d4d4d4d4d4d4d"


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


def writer(root: Path, key: SigningKey, actor: str = "alice", role: str = "operator") -> AuditLog:
    log = AuditLog(root, origin=ORIGIN)
    if not log.log_path.exists():
        log.init(key.public_pem())
    log.attach_sealer(key.raw(), actor, role)
    return log


def entries(log: AuditLog) -> list[dict]:
    return [
        json.loads(epochs.split_seal(line)[0] if epochs.split_seal(line) else line) for line in lines(log)
    ]


def lines(log: AuditLog) -> list[bytes]:
    if not log.log_path.exists():
        return []
    return log.log_path.read_bytes().split(b"\n")[:-1]


def root_of(log: AuditLog) -> str:
    return merkle.root([merkle.leaf_hash(line) for line in lines(log)]).hex()


def opened(log: AuditLog) -> list[tuple[int, bool, str]]:
    return [
        (e["detail"]["epoch"], e["detail"]["idle"], e["detail"]["reason"])
        for e in entries(log)
        if e["action"] == epochs.EPOCH_ACTION
    ]


def test_a_line_the_sealer_did_not_write_is_named_when_its_epoch_ends(
    tmp_path: Path, key: SigningKey
) -> None:
    log = writer(tmp_path / "audit", key, "carol", "admin")
    log.append("carol", "admin", "dataset.read", "a", "ok", {})
    at = len(lines(log))
    AuditLog(tmp_path / "audit", origin=ORIGIN).append("mallory", "admin", "dataset.read", "b", "ok", {})
    log.append("carol", "admin", "dataset.read", "c", "ok", {})
    log.write_checkpoint(key)
    found = [e for e in entries(log) if e["action"] == epochs.UNSEALED_ACTION]
    assert len(found) == 1, found
    named = found[0]
    assert (named["actor"], named["role"], named["subject"], named["outcome"]) == (
        "carol",
        "admin",
        "log.jsonl",
        "found",
    )
    assert (
        named["detail"]["reason"]
        == "lines this vault did not write (no valid seal): never sealed or signed as ours"
    )
    assert named["detail"]["seqs"] == [at], "mallory's line, written without the vault's sealing key"
    assert named["detail"]["leaf_hashes"] == [merkle.leaf_hash(lines(log)[at]).hex()]
    assert entries(log)[at]["actor"] == "mallory"


def test_an_epoch_that_ran_too_long_moves_on_at_the_next_entry(
    tmp_path: Path, key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = writer(tmp_path / "audit", key)
    log.append("alice", "operator", "dataset.read", "a", "ok", {})
    first = log.sealer.current
    monkeypatch.setattr(sealing, "ROTATE_AFTER", -1.0)
    log.append("alice", "operator", "dataset.read", "b", "ok", {})
    moved = log.sealer.current
    assert moved.epoch == first.epoch + 1 and moved.mac_key != first.mac_key and not moved.idle
    assert opened(log) == [(0, False, "the first epoch of this log"), (1, False, "15 minutes passed")]
    rotated = [e for e in entries(log) if e["action"] == epochs.EPOCH_ACTION][1]
    assert (rotated["actor"], rotated["role"], rotated["subject"]) == ("alice", "operator", "epoch 1")
    monkeypatch.setattr(sealing, "ROTATE_AFTER", 3600.0)
    log.append("alice", "operator", "dataset.read", "c", "ok", {})
    assert log.sealer.current.epoch == 1, "within the time, the epoch stays"
    log.write_checkpoint(key)
    assert AuditLog(tmp_path / "audit").verify(key.public_pem(), initial_key=log.initial_key()).ok


def test_moving_on_rotates_only_a_running_epoch(tmp_path: Path, key: SigningKey) -> None:
    log = writer(tmp_path / "audit", key)
    log.move_sealing_on()
    assert opened(log) == [], "no epoch yet: nothing to move on"
    log.append("alice", "operator", "dataset.read", "a", "ok", {})
    log.move_sealing_on()
    assert opened(log)[-1] == (1, False, "15 minutes passed")
    log.write_checkpoint(key)  # the command ends: idle
    count = len(opened(log))
    log.move_sealing_on()
    assert len(opened(log)) == count, "an idle epoch waits for the next entry"


def test_a_commands_end_leaves_one_idle_epoch_however_often_it_is_closed(
    tmp_path: Path, key: SigningKey
) -> None:
    log = writer(tmp_path / "audit", key)
    log.append("alice", "operator", "dataset.read", "a", "ok", {})
    log.write_checkpoint(key)
    log.write_checkpoint(key)
    assert opened(log) == [(0, False, "the first epoch of this log"), (1, True, "the command ended")]
    idle = log.sealer.current
    assert idle.idle and idle.start_seq == len(lines(log)) - 1
    log.append("alice", "operator", "dataset.read", "b", "ok", {})
    assert opened(log)[-1] == (2, False, "a new command")
    fresh = writer(tmp_path / "audit", key)  # a new process whose first act is the end of a command
    fresh.write_checkpoint(key)
    assert opened(fresh)[-1] == (3, True, "the command ended")
    assert AuditLog(tmp_path / "audit").verify(key.public_pem(), initial_key=log.initial_key()).ok


def test_a_closed_log_without_epochs_opens_its_first_one_at_the_end(tmp_path: Path, key: SigningKey) -> None:
    log = writer(tmp_path / "audit", key)
    log.write_checkpoint(key)
    assert opened(log) == [(0, False, "the first epoch of this log"), (1, True, "the command ended")]


def crashed_before_opening(root: Path, key: SigningKey) -> tuple[AuditLog, epochs.LiveEpoch, int]:
    """A command that saved its next epoch (with the signed opening) and died before writing it."""
    log = writer(root, key)
    log.append("alice", "operator", "dataset.read", "a", "ok", {})
    live = epochs.read_live_state(root, key.raw())
    size = len(lines(log))
    nxt = epochs.new_epoch(live.epoch + 1, size, log.log_path.stat().st_size)
    nxt.opening = epochs.epoch_detail(live, nxt, size, root_of(log), "a new command", False)
    epochs.write_live_state(root, key.raw(), nxt)
    return log, nxt, size


def test_an_opening_a_crash_left_unwritten_is_written_by_the_next_writer(
    tmp_path: Path, key: SigningKey
) -> None:
    root = tmp_path / "audit"
    log, nxt, size = crashed_before_opening(root, key)
    later = writer(root, key, "bob", "admin")
    later.append("bob", "admin", "dataset.read", "b", "ok", {})
    assert opened(later)[-1] == (1, False, "a new command")
    written = [e for e in entries(later) if e["action"] == epochs.EPOCH_ACTION][-1]
    assert written["seq"] == size and (written["actor"], written["role"]) == ("bob", "admin")
    assert written["detail"] == nxt.opening
    assert epochs.read_live_state(root, key.raw()).opening is None
    later.write_checkpoint(key)
    assert AuditLog(root).verify(key.public_pem(), initial_key=log.initial_key()).ok


def test_a_crash_before_the_opening_ends_the_command_with_the_opening_first(
    tmp_path: Path, key: SigningKey
) -> None:
    root = tmp_path / "audit"
    log, nxt, _ = crashed_before_opening(root, key)
    closing = writer(root, key, "bob", "admin")
    closing.write_checkpoint(key)
    assert opened(closing)[-2:] == [(1, False, "a new command"), (2, True, "the command ended")]
    assert AuditLog(root).verify(key.public_pem(), initial_key=log.initial_key()).ok


def test_a_damaged_epoch_state_starts_an_uncertified_epoch_and_says_why(
    tmp_path: Path, key: SigningKey
) -> None:
    root = tmp_path / "audit"
    log = writer(root, key)
    log.append("alice", "operator", "dataset.read", "a", "ok", {})
    log.write_checkpoint(key)
    (root / epochs.STATE_FILE).write_bytes(b"garbage")
    later = writer(root, key, "bob", "admin")
    later.append("bob", "admin", "dataset.read", "b", "ok", {})
    assert opened(later)[-1] == (
        2,
        False,
        "the sealed epoch state was missing or unreadable: this epoch is not certified by the last one",
    )
    epoch_entries = [e for e in entries(later) if e["action"] == epochs.EPOCH_ACTION]
    assert {e["outcome"] for e in epoch_entries} == {"ok"}
    assert epoch_entries[-1]["detail"]["certificate"] == "" and epoch_entries[-1]["detail"]["reveal"] == ""
    assert later.sealer.current.epoch == 2 and not later.sealer.current.idle

"""The walk over a log's epochs (epochs.check_seals), finding by finding and note by note: a changed
entry, a line added in an idle epoch, a broken, renumbered or forged epoch opening, a reveal that is
not the committed MAC key, another initial key; and the notes for entries before the first epoch, a
failed unlock, a line a later command recorded, a running epoch and a MAC key never revealed."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import finding_json as finding
from vault.audit import AuditLog, epochs
from vault.audit.epochs import check_seals, fingerprint
from vault.crypto.signing import SigningKey
from vault.storage.files import canonical_json

ORIGIN = "strongroom.local/vault/7a7a7a7a7a7a7a7a"
NOT_OURS = "entry {} was not written by Strongroom: someone without the epoch's key added or changed it"
NOT_SIGNED = "the log before this entry is not the log the previous epoch's key signed"
FORGED_AT_4 = finding(
    4,
    "epoch_certificate",
    "epoch 1 certified by epoch 0's key",
    "epoch 1 with a certificate that does not verify",
    NOT_SIGNED,
)


def command(
    root: Path, key: SigningKey, entries: int, *, close: bool = True, actor: str = "alice"
) -> AuditLog:
    """One process's entries in its own epoch, ended by a checkpoint as a command ends."""
    log = AuditLog(root, origin=ORIGIN)
    log.attach_sealer(key.raw(), actor, "operator")
    for i in range(entries):
        log.append(actor, "operator", "dataset.read", f"set{i}", "ok", {"i": i})
    if close:
        log.write_checkpoint(key)
    return log


def lines_of(root: Path) -> list[bytes]:
    return (root / "log.jsonl").read_bytes().split(b"\n")[:-1]


@pytest.fixture(scope="module")
def two_commands(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[bytes], bytes]:
    """Epochs: 0 (entries 1-3), 1 idle (4), 2 (6-7), 3 idle (8, the running one)."""
    root = tmp_path_factory.mktemp("epochs") / "audit"
    key = SigningKey.generate()
    AuditLog(root, origin=ORIGIN).init(key.public_pem())
    first = command(root, key, 3)
    command(root, key, 2)
    lines = lines_of(root)
    opened = [
        (json.loads(line)["detail"]["epoch"], i) for i, line in enumerate(lines) if b'"audit.epoch"' in line
    ]
    assert opened == [(0, 0), (1, 4), (2, 5), (3, 8)]
    initial = first.initial_key()
    assert initial is not None
    return lines, initial


def unsealed(*seqs: int, recorded: bool = False) -> list[dict]:
    found = "no valid seal" + (" (recorded by a later command)" if recorded else "")
    return [
        finding(s, "unsealed", "an entry sealed by the epoch it was written in", found, NOT_OURS.format(s))
        for s in seqs
    ]


def changed(lines: list[bytes], at: int, change: Callable[[dict], None]) -> list[bytes]:
    entry = json.loads(lines[at])
    change(entry)
    return [*lines[:at], canonical_json(entry), *lines[at + 1 :]]


def walk(lines: list[bytes], initial: bytes | None) -> tuple[list[dict], epochs.SealCheck]:
    result = check_seals(lines, initial)
    return [f.to_json() for f in result.findings], result


def test_an_intact_log_walks_its_epochs_without_a_finding(two_commands) -> None:
    lines, initial = two_commands
    found, result = walk(lines, initial)
    assert found == [] and result.notes == [] and result.unsealed == set()
    assert (result.epochs, result.open_epoch, result.open_entries, result.legacy) == (4, 3, 1, 0)
    assert result.initial_key == initial


def test_another_initial_key_means_the_log_was_rewritten(two_commands) -> None:
    lines, initial = two_commands
    other = SigningKey.generate().public_raw()
    found, result = walk(lines, other)
    assert found == [
        finding(
            0,
            "epoch_key",
            f"the first epoch's key {fingerprint(other)} (the initial key given)",
            fingerprint(initial),
            "the log's chain of epochs does not start at the key the auditor holds: it was rewritten",
        )
    ]
    assert result.initial_key == initial and result.epochs == 4


@pytest.mark.parametrize("at", [2, 7])
def test_a_changed_entry_has_no_valid_seal(two_commands, at: int) -> None:
    lines, initial = two_commands
    found, result = walk(changed(lines, at, lambda e: e.update(subject="changed")), initial)
    assert found == unsealed(at) and result.unsealed == {at}


def test_a_line_added_in_an_idle_epoch_is_not_ours(two_commands) -> None:
    lines, initial = two_commands
    extra = json.loads(lines[7])
    extra.update(seq=9, subject="late")
    found, result = walk([*lines, canonical_json(extra)], initial)
    assert found == unsealed(9) and result.open_entries == 1


def test_a_forged_certificate_is_named_and_its_opening_is_not_ours(two_commands) -> None:
    lines, initial = two_commands
    forged = changed(lines, 4, lambda e: e["detail"].update(certificate=base64.b64encode(bytes(64)).decode()))
    found, _ = walk(forged, initial)
    assert found == [
        FORGED_AT_4,
        *unsealed(4),
    ]


def test_a_reveal_that_is_not_the_committed_key_leaves_the_whole_epoch_unchecked(two_commands) -> None:
    lines, initial = two_commands
    found, result = walk(changed(lines, 4, lambda e: e["detail"].update(reveal="00" * 32)), initial)
    assert found == [
        FORGED_AT_4,
        finding(4, "epoch_reveal", "the MAC key committed in epoch 0", "another", ""),
        *unsealed(0, 1, 2, 3, 4),
    ]
    assert result.unsealed == {0, 1, 2, 3, 4}


def test_an_epoch_entry_without_its_fields_is_invalid_and_the_walk_goes_on(two_commands) -> None:
    lines, initial = two_commands
    found, result = walk(changed(lines, 5, lambda e: e["detail"].update(key="not base64!")), initial)
    assert found == [
        finding(5, "epoch_invalid", "an epoch entry with its fields", "a bad one", ""),
        finding(
            8,
            "epoch_certificate",
            "epoch 2 certified by epoch 1's key",
            "epoch 3 with a certificate that does not verify",
            NOT_SIGNED,
        ),
        finding(8, "epoch_reveal", "the MAC key committed in epoch 1", "another", ""),
        *unsealed(6, 7, 4),
    ]
    assert result.epochs == 3


@pytest.mark.parametrize("field", ["key", "certificate"])
def test_an_epoch_field_that_is_not_strict_base64_is_invalid(two_commands, field: str) -> None:
    lines, initial = two_commands
    found, _ = walk(
        changed(lines, 5, lambda e: e["detail"].update({field: "*" + e["detail"][field]})), initial
    )
    assert found[0] == finding(5, "epoch_invalid", "an epoch entry with its fields", "a bad one", "")


def test_a_reveal_that_is_not_hex_is_not_the_committed_key(two_commands) -> None:
    lines, initial = two_commands
    found, _ = walk(changed(lines, 4, lambda e: e["detail"].update(reveal="zz")), initial)
    assert found[:2] == [
        FORGED_AT_4,
        finding(4, "epoch_reveal", "the MAC key committed in epoch 0", "another", ""),
    ]


def test_a_renumbered_epoch_is_out_of_order_for_the_next_one(two_commands) -> None:
    lines, initial = two_commands
    found, _ = walk(changed(lines, 5, lambda e: e["detail"].update(epoch=7)), initial)
    assert found == [
        finding(
            5,
            "epoch_certificate",
            "epoch 2 certified by epoch 1's key",
            "epoch 7 with a certificate that does not verify",
            NOT_SIGNED,
        ),
        finding(
            8,
            "epoch_certificate",
            "epoch 8 certified by epoch 7's key",
            "epoch 3, certificate out of order",
            NOT_SIGNED,
        ),
        *unsealed(5),
    ]


def test_the_notes_say_what_the_walk_could_not_check_and_why(tmp_path: Path) -> None:
    root = tmp_path / "audit"
    key = SigningKey.generate()
    plain = AuditLog(root, origin=ORIGIN)
    plain.init(key.public_pem())
    for i in range(2):  # written before the log had epochs
        plain.append("alice", "operator", "dataset.read", f"old{i}", "ok", {})
    first = command(root, key, 2)  # epochs 0 (2-4) and 1 idle (5)
    plain.append("nobody", "none", "session.unlock_failed", "x", "denied", {})  # 6: no key open
    command(root, key, 3, close=False)  # epoch 2 (7-10), never closed
    (root / epochs.STATE_FILE).unlink()  # its sealed state is lost: its MAC key is never revealed
    command(root, key, 1)  # epoch 3 (11-12), 4 idle (13)
    AuditLog(root, origin=ORIGIN).append("mallory", "admin", "dataset.read", "x", "ok", {})  # 14
    command(root, key, 1, close=False)  # records 14 (15), epoch 5 (16-17), running
    lines = lines_of(root)
    assert json.loads(lines[15])["detail"]["seqs"] == [14]
    found, result = walk(lines, first.initial_key())
    assert found == [
        finding(
            11,
            "epoch_certificate",
            "epoch 3 certified by epoch 2's key",
            "epoch 3 with a certificate that does not verify",
            NOT_SIGNED,
        ),
        *unsealed(14, recorded=True),
    ]
    assert result.notes == [
        "seq 6: a failed unlock, written without any key (not sealed)",
        "entries 8..10 of epoch 2 cannot be checked: its MAC key was never revealed (its sealed state was lost)",
        "entries 17..17 are in the running epoch 5: sealed, and checked when it closes (at the end of the "
        "command that writes them, or at the next command)",
        "entries 0..1 were written before the log's first epoch: sealed by the legacy checkpoints only",
    ]
    assert (result.legacy, result.epochs, result.open_epoch, result.open_entries) == (2, 6, 5, 2)
    assert result.unsealed == {14}


def test_the_seal_read_is_the_entrys_own_and_an_entry_without_one_is_not_ours(tmp_path: Path) -> None:
    root = tmp_path / "audit"
    key = SigningKey.generate()
    AuditLog(root, origin=ORIGIN).init(key.public_pem())
    log = AuditLog(root, origin=ORIGIN)
    log.attach_sealer(key.raw(), "alice", "operator")
    log.append("alice", "operator", "dataset.read", "a", "ok", {"seal": "a field named seal, in the detail"})
    log.append("alice", "operator", "dataset.read", "b", "ok", {})
    log.write_checkpoint(key)
    lines = lines_of(root)
    found, _ = walk(lines, log.initial_key())
    assert found == [], "the detail's own `seal` key is not the entry's seal"
    stripped = json.loads(lines[2])
    del stripped["seal"]
    found, result = walk([*lines[:2], canonical_json(stripped), *lines[3:]], log.initial_key())
    assert found == unsealed(2) and result.unsealed == {2}


def test_a_forged_record_of_unsealed_lines_without_its_seqs_is_not_ours(two_commands) -> None:
    lines, initial = two_commands
    forged = json.loads(lines[7])
    forged.update(action=epochs.UNSEALED_ACTION, seq=9, detail={"reason": "no seqs"})
    again = {**forged, "seq": 10}
    found, result = walk([*lines, canonical_json(forged), canonical_json(again)], initial)
    assert found == [] and result.notes == [
        "entries 9..10 follow the opening of the idle epoch 3: records of lines found unsealed, checked when "
        "the next command reveals the epoch's key (a command interrupted between the two, or lines added since)"
    ], (
        "at rest the sealer writes nothing after an idle opening: the auditor is told, and the next command checks"
    )


def test_a_record_added_after_an_idle_opening_is_found_by_the_next_command(tmp_path: Path) -> None:
    root = tmp_path / "audit"
    key = SigningKey.generate()
    AuditLog(root, origin=ORIGIN).init(key.public_pem())
    first = command(root, key, 1)  # epochs 0 (0-1), 1 idle (2)
    forger = AuditLog(root, origin=ORIGIN)  # no sealing key: what an insider with a shell can append
    forger.append("alice", "operator", epochs.UNSEALED_ACTION, "log.jsonl", "found", {"reason": "no seqs"})
    _, before = walk(lines_of(root), first.initial_key())
    assert before.notes[-1].startswith("entries 3..3 follow the opening of the idle epoch 1")
    command(root, key, 1)  # records 3 (4), opens epoch 2 (5) revealing epoch 1's key
    found, after = walk(lines_of(root), first.initial_key())
    assert found == unsealed(3, recorded=True) and after.unsealed == {3}
    assert json.loads(lines_of(root)[4])["detail"]["seqs"] == [3]


def test_a_log_without_epochs_has_only_legacy_entries(tmp_path: Path) -> None:
    root = tmp_path / "audit"
    log = AuditLog(root, origin=ORIGIN)
    for i in range(3):
        log.append("alice", "operator", "dataset.read", f"set{i}", "ok", {})
    found, result = walk(lines_of(root), None)
    assert found == [] and result.notes == [], "no epochs: nothing to say about them"
    assert (result.legacy, result.epochs, result.open_epoch, result.open_entries) == (3, 0, None, 0)
    assert result.initial_key is None


def test_the_notes_count_the_entries_an_epoch_holds(tmp_path: Path) -> None:
    root = tmp_path / "audit"
    key = SigningKey.generate()
    AuditLog(root, origin=ORIGIN).init(key.public_pem())
    first = command(root, key, 1, close=False)  # epoch 0: its opening (0) and one entry (1)
    (root / epochs.STATE_FILE).unlink()
    command(root, key, 1)  # epoch 1 (2-3), 2 idle (4)
    (root / epochs.STATE_FILE).unlink()  # lost while idle: nothing of epoch 2 to check
    moving = command(root, key, 2, close=False)  # epoch 3 (5-7)
    moving.move_sealing_on()  # epoch 4 (8): running, with nothing but its opening
    _, result = walk(lines_of(root), first.initial_key())
    assert result.notes == [
        "entries 1..1 of epoch 0 cannot be checked: its MAC key was never revealed (its sealed state was lost)"
    ]
    assert (result.open_epoch, result.open_entries) == (4, 1)
    command(root, key, 2, close=False)  # epoch 4 runs on: 9-10
    _, result = walk(lines_of(root), first.initial_key())
    assert result.notes[-1] == (
        f"entries 9..10 are in the running epoch {result.open_epoch}: sealed, and checked when it closes "
        "(at the end of the command that writes them, or at the next command)"
    )


def test_the_newest_record_counts_only_lines_the_vaults_seals_vouch_for(tmp_path: Path) -> None:
    """Three commands each record a generation; lines written by hand (at the end, inside an
    earlier epoch, or as a fake epoch opening revealing a key of their own) record an older one and
    are passed over, whichever epoch they sit in."""
    root = tmp_path / "audit"
    key = SigningKey.generate()
    AuditLog(root, origin=ORIGIN).init(key.public_pem())
    for generation in (5, 6, 7):
        log = AuditLog(root, origin=ORIGIN)
        log.attach_sealer(key.raw(), "alice", "admin")
        log.append("alice", "admin", "catalog.commit", "catalog", "ok", {"catalog_generation": generation})
        log.append("alice", "admin", "dataset.read", "set", "ok", {})
        log.write_checkpoint(key)
    live = epochs.read_live_state(root, key.raw())
    assert live is not None and live.idle
    lines = lines_of(root)

    def newest(lines: list[bytes]) -> tuple[int, object] | None:
        return next(epochs.vouched(reversed(lines), "catalog_generation", live), None)

    real = newest(lines)
    assert (
        real is not None and real[1] == 7 and json.loads(lines[real[0]])["detail"]["catalog_generation"] == 7
    )
    forged = json.loads(lines[real[0]])
    forged["detail"]["catalog_generation"] = 1
    forged_line = canonical_json(forged)  # its seal no longer matches: no key to make a new one
    at = real[0] + 1  # inside the epoch that wrote generation 7
    assert newest([*lines[:at], forged_line, *lines[at:]]) == real
    assert newest([*lines, forged_line]) == real
    fake_key = b"\x01" * 32
    opening = json.loads(lines[-1])
    opening["detail"]["reveal"] = fake_key.hex()
    fake_opening = epochs.seal_line(fake_key, canonical_json({**opening, "seal": ""}))
    sealed_by_fake = epochs.seal_line(fake_key, canonical_json({**forged, "seal": ""}))
    assert newest([*lines, sealed_by_fake, fake_opening]) == real
    assert next(epochs.vouched(reversed(lines), "no_such_key", live), None) is None
    every = [value for _, value in epochs.vouched(reversed(lines), "catalog_generation", live)]
    assert every == [7, 6, 5]
    # sealed with the idle epoch's key, which every role can read between commands: after an idle
    # opening the vault writes nothing, so it is not the vault's either
    assert newest([*lines, epochs.seal_line(live.mac_key, canonical_json({**forged, "seal": ""}))]) == real

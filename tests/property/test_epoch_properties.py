"""The epoch chain, as properties: a log verifies against its initial key alone; any change to an
entry sealed in an earlier epoch is found, even by an insider who re-chains the log, re-seals every
line with every MAC key the log has revealed and the running one, and re-signs every certificate
after the change with the running epoch's key (all that the vault holds today)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.audit import AuditLog, merkle
from vault.audit.epochs import cert_message, check_seals, read_live_state, seal_line
from vault.crypto.signing import SigningKey
from vault.storage.files import canonical_json

ORIGIN = "strongroom.local/vault/e0e0e0e0e0e0e0e0"
COMMANDS, PER_COMMAND = 4, 5


@pytest.fixture(scope="module")
def sealed_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[bytes], bytes, object]:
    """A log written by four commands (each closing its epoch), the initial key, the live state."""
    root = tmp_path_factory.mktemp("epochs") / "audit"
    key = SigningKey.generate()
    log = AuditLog(root, origin=ORIGIN)
    log.init(key.public_pem())
    log.attach_sealer(key.raw(), "alice", "operator")
    for command in range(COMMANDS):
        for i in range(PER_COMMAND):
            log.append("alice", "operator", "dataset.read", f"set{command}.{i}", "ok", {"i": i})
        log.write_checkpoint(key)
    lines = log.log_path.read_bytes().split(b"\n")[:-1]
    initial = log.initial_key()
    assert initial is not None
    return lines, initial, read_live_state(root, key.raw())


def root_of(lines: list[bytes]) -> str:
    tree = merkle.MerkleTree()
    for line in lines:
        tree.append_data(line)
    return tree.root().hex()


def test_the_log_verifies_against_its_initial_key_alone(sealed_log) -> None:
    lines, initial, _ = sealed_log
    check = check_seals(lines, initial)
    assert check.findings == [] and check.epochs == 2 * COMMANDS and not check.unsealed
    other = check_seals(lines, SigningKey.generate().public_raw())
    assert [f.kind for f in other.findings] == ["epoch_key"]


def forge(lines: list[bytes], at: int, change: dict, live) -> list[bytes]:
    """The insider's best: the change at `at`, everything after it re-chained, each line re-sealed
    with its epoch's MAC key (revealed in the log, or the running one), certificates re-signed with
    the running epoch's key."""
    entries = [json.loads(line) for line in lines]
    macs: dict[int, bytes] = {live.epoch: live.mac_key}
    epoch_of: list[int] = []
    epoch = -1
    for entry in entries:
        if entry["action"] == "audit.epoch":
            if entry["detail"]["reveal"]:
                macs[epoch] = bytes.fromhex(entry["detail"]["reveal"])
            epoch = entry["detail"]["epoch"]
        epoch_of.append(epoch)
    out = list(lines[:at])
    for pos in range(at, len(entries)):
        entry = {**entries[pos], "seq": pos, "prev": root_of(out), "seal": ""}
        if pos == at:
            entry.update(change)
            entry["seal"] = ""
        detail = entry["detail"]
        if entry["action"] == "audit.epoch" and detail.get("certificate"):
            message = cert_message(
                detail["epoch"], pos, entry["prev"], detail["key"], detail["mac_commit"], detail["reveal"]
            )
            entry["detail"] = {**detail, "certificate": base64.b64encode(live.signing.sign(message)).decode()}
        out.append(seal_line(macs[epoch_of[pos]], canonical_json(entry)))
    return out


CHANGES = st.sampled_from(
    [
        {"actor": "mallory"},
        {"subject": "another dataset"},
        {"outcome": "denied"},
        {"action": "dataset.delete"},
        {"detail": {"i": 99}},
        {"time": "2020-01-01T00:00:00Z"},
    ]
)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), change=CHANGES)
def test_any_change_to_an_entry_of_an_earlier_epoch_is_found(sealed_log, data, change) -> None:
    lines, initial, live = sealed_log
    closed = [pos for pos in range(len(lines)) if pos < live.start_seq]
    at = data.draw(st.sampled_from(closed))
    if json.loads(lines[at])["action"] == "audit.epoch" and "detail" in change:
        change = {"actor": "mallory"}
    forged = forge(lines, at, change, live)
    assert forged != lines
    assert check_seals(forged, initial).findings, f"a change at entry {at} went unnoticed"


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_removing_any_entry_of_an_earlier_epoch_is_found(sealed_log, data) -> None:
    lines, initial, live = sealed_log
    at = data.draw(st.integers(min_value=0, max_value=live.start_seq - 1))
    shorter = lines[:at] + lines[at + 1 :]
    rechained = forge(shorter, at, {}, live) if at < len(shorter) else shorter
    assert check_seals(rechained, initial).findings, f"removing entry {at} went unnoticed"


def test_a_verifier_needs_only_the_initial_key(sealed_log, tmp_path: Path) -> None:
    lines, initial, _ = sealed_log
    audit = tmp_path / "audit"
    audit.mkdir()
    (audit / "log.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
    report = AuditLog(audit).verify(initial_key=initial)
    kinds = {f.kind for f in report.findings}
    assert not kinds & {"epoch_key", "epoch_certificate", "unsealed", "epoch_reveal"}, report.findings
    assert report.epochs == 2 * COMMANDS

"""Tampering and bad input: every case of the audit contract must make verify fail, and say where."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vault.audit import AuditLog, merkle
from vault.audit.checkpoint import sign_checkpoint
from vault.crypto.signing import SigningKey
from vault.errors import IntegrityError
from vault.storage.files import canonical_json as canonical

ORIGIN = "strongroom.local/vault/0f0f0f0f0f0f0f0f"


class Vaultish:
    """A log with entries and checkpoints written the way the Vault writes them."""

    def __init__(self, root: Path, n: int = 8, checkpoint_every: int = 4) -> None:
        self.key = SigningKey.generate()
        self.log = AuditLog(root / "audit", origin=ORIGIN)
        self.log.init(self.key.public_pem())
        self.saved: dict[int, str] = {}
        for i in range(n):
            self.log.append(
                "alice", "operator", "dataset.read", f"set{i}", "ok", {"purpose": "train", "i": i}
            )
            if (i + 1) % checkpoint_every == 0:
                self.saved[i + 1] = self.log.write_checkpoint(self.key)

    @property
    def lines(self) -> list[bytes]:
        return self.log.log_path.read_bytes().split(b"\n")[:-1]

    def write_lines(self, lines: list[bytes]) -> None:
        self.log.log_path.write_bytes(b"".join(line + b"\n" for line in lines))

    def verify(self, **kw):
        return self.log.verify(self.key.public_pem(), **kw)


def kinds(report) -> set[str]:
    return {f.kind for f in report.findings}


@pytest.fixture
def v(tmp_path: Path) -> Vaultish:
    return Vaultish(tmp_path)


def test_an_untouched_log_is_intact(v: Vaultish) -> None:
    report = v.verify(checkpoint_text=v.saved[4])
    assert report.ok and report.findings == [] and report.truncation_ruled_out
    assert report.entries == 8 and report.signed_size == 8 and report.unsigned == 0
    assert report.key_source == "given" and report.origin == ORIGIN


def test_without_a_checkpoint_truncation_cannot_be_ruled_out(v: Vaultish) -> None:
    report = v.log.verify()
    assert report.ok and not report.truncation_ruled_out
    assert "truncation or rollback of the log cannot be ruled out" in report.message
    assert "audit/pubkey.pem from the vault itself" in report.message


def test_modified_entry(v: Vaultish) -> None:
    lines = v.lines
    lines[2] = lines[2].replace(b'"actor":"alice"', b'"actor":"bobby"')
    v.write_lines(lines)
    report = v.verify()
    assert not report.ok
    prev = [f for f in report.findings if f.kind == "prev"]
    assert prev[0].seq == 3 and "entry 2" in prev[0].message
    assert "checkpoint_root" in kinds(report)


def test_modified_last_entry_is_caught_by_the_signed_checkpoint(v: Vaultish) -> None:
    lines = v.lines
    lines[7] = lines[7].replace(b'"outcome":"ok"', b'"outcome":"no"')
    v.write_lines(lines)
    report = v.verify()
    assert [f.kind for f in report.findings] == ["checkpoint_root"]  # checkpoint and 8.txt are one text
    assert report.findings[0].seq == 7


def test_modified_entry_without_any_checkpoint(tmp_path: Path) -> None:
    v = Vaultish(tmp_path, n=5, checkpoint_every=100)
    lines = v.lines
    lines[1] = lines[1].replace(b'"purpose":"train"', b'"purpose":"audit"')
    v.write_lines(lines)
    report = v.verify()
    assert not report.ok and {f.seq for f in report.findings if f.kind == "prev"} == {2}
    summary = [f for f in report.findings if f.kind == "prev"][-1]
    assert "2 later entries" in summary.found


def test_deleted_entry(v: Vaultish) -> None:
    lines = v.lines
    del lines[3]
    v.write_lines(lines)
    report = v.verify()
    seq = [f for f in report.findings if f.kind == "seq"]
    assert seq[0].seq == 3 and seq[0].expected == "seq 3" and seq[0].found == "seq 4"
    assert {"prev", "checkpoint_newer", "checkpoint_root"} <= kinds(report)


def test_two_entries_swapped(v: Vaultish) -> None:
    lines = v.lines
    lines[1], lines[2] = lines[2], lines[1]
    v.write_lines(lines)
    report = v.verify()
    assert not report.ok
    assert [(f.seq, f.expected, f.found) for f in report.findings if f.kind == "seq"][:2] == [
        (1, "seq 1", "seq 2"),
        (2, "seq 3", "seq 1"),
    ]
    assert "prev" in kinds(report)


def test_swapped_entries_with_renumbered_seq_are_still_caught(tmp_path: Path) -> None:
    v = Vaultish(tmp_path, n=4, checkpoint_every=100)
    entries = [json.loads(x) for x in v.lines]
    entries[1], entries[2] = {**entries[2], "seq": 1}, {**entries[1], "seq": 2}
    v.write_lines([canonical(e) for e in entries])
    report = v.verify()
    assert [f.kind for f in report.findings if f.kind != "prev"] == []
    assert [f.seq for f in report.findings if f.kind == "prev"][0] == 1


def test_inserted_forged_entry(v: Vaultish) -> None:
    lines = v.lines
    forged = {**json.loads(lines[4]), "actor": "mallory", "action": "dataset.delete"}
    lines.insert(5, canonical(forged))
    v.write_lines(lines)
    report = v.verify()
    assert not report.ok
    assert any(f.kind == "seq" and f.seq == 5 for f in report.findings)
    assert any(f.kind == "prev" and f.seq == 5 for f in report.findings)


def test_forged_entry_appended_at_the_end(v: Vaultish) -> None:
    lines = v.lines
    forged = {**json.loads(lines[-1]), "seq": 8, "actor": "mallory"}
    v.write_lines([*lines, canonical(forged)])
    report = v.verify()
    assert [(f.seq, f.kind) for f in report.findings] == [(8, "prev")]


def test_replaced_public_key_against_pubkey(v: Vaultish) -> None:
    mallory = SigningKey.generate()
    v.log.pubkey_path.write_bytes(mallory.public_pem())
    # Mallory also re-signs the checkpoints: they verify under the replaced file, not the given key.
    for path in [v.log.checkpoint_path, *v.log.checkpoints_dir.iterdir()]:
        size = int(path.read_text().split("\n")[1])
        root = merkle.root([merkle.leaf_hash(x) for x in v.lines[:size]])
        path.write_text(sign_checkpoint(mallory, ORIGIN, size, root))
    assert AuditLog(v.log.dir).verify().ok  # the vault's own (replaced) key agrees with itself
    report = v.verify()
    assert not report.ok
    assert "pubkey_replaced" in kinds(report) and "checkpoint_signature" in kinds(report)
    replaced = next(f for f in report.findings if f.kind == "pubkey_replaced")
    assert replaced.seq is None and replaced.expected != replaced.found


def test_truncated_log_given_a_saved_checkpoint(v: Vaultish) -> None:
    saved = v.saved[8]
    # Cut back to 4 entries and make the vault's own files agree (an older checkpoint, history pruned).
    v.write_lines(v.lines[:4])
    shutil.copy(v.log.checkpoints_dir / "4.txt", v.log.checkpoint_path)
    (v.log.checkpoints_dir / "8.txt").unlink()
    alone = v.verify()
    assert alone.ok and not alone.truncation_ruled_out and "cannot be ruled out" in alone.message
    report = v.verify(checkpoint_text=saved)
    assert not report.ok and not report.truncation_ruled_out
    newer = next(f for f in report.findings if f.kind == "checkpoint_newer")
    assert newer.seq == 4 and newer.expected.startswith("at least 8") and newer.found == "4 complete entries"


def test_truncation_is_seen_from_the_vaults_own_checkpoints(v: Vaultish) -> None:
    v.write_lines(v.lines[:6])
    report = v.log.verify()
    assert "checkpoint_newer" in kinds(report)


def test_rollback_then_regrowth_fails_the_consistency_proof(v: Vaultish) -> None:
    saved = v.saved[8]
    v.write_lines(v.lines[:4])
    shutil.copy(v.log.checkpoints_dir / "4.txt", v.log.checkpoint_path)
    (v.log.checkpoints_dir / "8.txt").unlink()
    fresh = AuditLog(v.log.dir, origin=ORIGIN)
    for i in range(6):
        fresh.append("alice", "operator", "dataset.read", f"other{i}", "ok", {})
    fresh.write_checkpoint(v.key)  # the vault signs the regrown log: it does extend size 4
    assert v.verify().ok
    report = v.verify(checkpoint_text=saved)
    assert not report.ok and not report.truncation_ruled_out
    assert kinds(report) & {"checkpoint_root", "consistency"}


def test_latest_checkpoint_replaced_by_an_older_one(v: Vaultish) -> None:
    shutil.copy(v.log.checkpoints_dir / "4.txt", v.log.checkpoint_path)
    assert "checkpoint_rollback" in kinds(v.verify())


def test_latest_checkpoint_removed(v: Vaultish) -> None:
    v.log.checkpoint_path.unlink()
    assert "checkpoint_missing" in kinds(v.verify())


# ---------------------------------------------------------------------------- bad input
def test_a_log_that_is_not_json(tmp_path: Path) -> None:
    v = Vaultish(tmp_path, n=2, checkpoint_every=100)
    v.log.log_path.write_bytes(b"this is not json\n\xff\xfe binary\n[1, 2]\n")
    report = v.verify()
    assert [(f.seq, f.kind) for f in report.findings[:3]] == [(0, "json"), (1, "json"), (2, "json")]
    with pytest.raises(IntegrityError, match="line 1 is not a JSON object"):
        v.log.entries()


def test_a_line_split_across_two_lines_is_not_json(tmp_path: Path) -> None:
    v = Vaultish(tmp_path, n=3, checkpoint_every=100)
    lines = v.lines
    lines[1] = lines[1].replace(b'"detail":', b'"detail":\n')
    v.write_lines(lines)
    report = v.verify()
    assert (1, "json") in [(f.seq, f.kind) for f in report.findings]
    assert (2, "json") in [(f.seq, f.kind) for f in report.findings]


def test_unknown_entry_version(tmp_path: Path) -> None:
    v = Vaultish(tmp_path, n=3, checkpoint_every=100)
    lines = v.lines
    lines[1] = lines[1].replace(b'"v":1', b'"v":2')
    v.write_lines(lines)
    report = v.verify()
    version = next(f for f in report.findings if f.kind == "version")
    assert (version.seq, version.expected, version.found) == (1, "entry version 1", "version 2")


def test_missing_fields(tmp_path: Path) -> None:
    v = Vaultish(tmp_path, n=2, checkpoint_every=100)
    entry = json.loads(v.lines[1])
    del entry["actor"]
    entry["seq"] = "1"
    v.write_lines([v.lines[0], canonical(entry)])
    fields = next(f for f in v.verify().findings if f.kind == "fields")
    assert "actor" in fields.found and "seq" in fields.found


def test_missing_public_key(v: Vaultish) -> None:
    v.log.pubkey_path.unlink()
    assert "pubkey_missing" in kinds(v.verify())
    alone = AuditLog(v.log.dir).verify()
    assert not alone.ok and "pubkey_missing" in kinds(alone) and alone.key_source == "none"


def test_wrong_public_key_given(v: Vaultish) -> None:
    report = v.log.verify(SigningKey.generate().public_pem())
    assert {"pubkey_replaced", "checkpoint_signature"} <= kinds(report)


def test_garbage_public_keys(v: Vaultish) -> None:
    assert "pubkey_invalid" in kinds(
        v.log.verify(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    )
    v.log.pubkey_path.write_bytes(b"garbage")
    assert "pubkey_invalid" in kinds(AuditLog(v.log.dir).verify())


def test_checkpoint_from_another_vault(v: Vaultish, tmp_path: Path) -> None:
    other = Vaultish(tmp_path / "other", n=8)
    other.log.origin = "strongroom.local/vault/ffffffffffffffff"
    foreign = other.log.write_checkpoint(other.key, "strongroom.local/vault/ffffffffffffffff")
    report = v.verify(checkpoint_text=foreign)
    assert not report.ok and not report.truncation_ruled_out
    assert {"checkpoint_origin", "checkpoint_signature"} <= kinds(report)


def test_checkpoint_from_another_vault_with_the_same_origin_name(v: Vaultish, tmp_path: Path) -> None:
    other = Vaultish(tmp_path / "other", n=8)
    report = v.verify(checkpoint_text=other.saved[8])
    assert "checkpoint_signature" in kinds(report)


def test_checkpoint_newer_than_the_log(v: Vaultish) -> None:
    future = sign_checkpoint(v.key, ORIGIN, 20, merkle.EMPTY_ROOT)
    report = v.verify(checkpoint_text=future)
    newer = next(f for f in report.findings if f.kind == "checkpoint_newer")
    assert newer.seq == 8 and "at least 20" in newer.expected


def test_given_checkpoint_that_is_not_one(v: Vaultish) -> None:
    report = v.verify(checkpoint_text="hello\n")
    assert "checkpoint_invalid" in kinds(report) and not report.truncation_ruled_out


def test_forged_checkpoint_signature(v: Vaultish) -> None:
    text = v.log.checkpoint_path.read_text()
    v.log.checkpoint_path.write_text(text.replace("\n8\n", "\n7\n"))
    assert "checkpoint_signature" in kinds(v.verify())


def test_deeply_nested_json_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    v = Vaultish(tmp_path, n=2, checkpoint_every=100)
    v.write_lines([*v.lines, b"[" * 200_000 + b"]" * 200_000])
    report = v.verify()
    assert (2, "json") in [(f.seq, f.kind) for f in report.findings]
    with pytest.raises(IntegrityError):
        v.log.entries()


def test_a_replaced_key_and_a_garbled_checkpoint_are_named_with_key_labels(v: Vaultish) -> None:
    import hashlib

    mallory = SigningKey.generate()
    v.log.pubkey_path.write_bytes(mallory.public_pem())
    v.log.checkpoint_path.write_bytes(b"not a checkpoint\n")
    report = v.verify()
    label = "sha256:" + hashlib.sha256(v.key.public_raw()).hexdigest()[:16]
    replaced = next(f for f in report.findings if f.kind == "pubkey_replaced")
    assert replaced.expected == f"audit/pubkey.pem = the given key {label}"
    assert replaced.found == "another key sha256:" + hashlib.sha256(mallory.public_raw()).hexdigest()[:16]
    garbled = next(f for f in report.findings if f.kind == "checkpoint_invalid")
    assert (garbled.seq, garbled.object, garbled.message) == (None, None, "")
    assert garbled.expected == "a signed checkpoint in audit/checkpoint"
    assert garbled.found == "not a valid signed checkpoint: no blank line between the text and its signatures"


def test_a_checkpoint_that_fails_its_signature_or_origin_covers_nothing(v: Vaultish) -> None:
    root8 = merkle.root([merkle.leaf_hash(x) for x in v.lines[:8]])
    for path in (v.log.checkpoint_path, v.log.checkpoints_dir / "8.txt"):
        path.write_text(sign_checkpoint(SigningKey.generate(), ORIGIN, 8, root8))
    report = v.verify()
    assert (report.signed_size, report.unsigned) == (4, report.size - 4), "only 4.txt is signed by the key"
    forged = next(f for f in report.findings if f.kind == "checkpoint_signature")
    assert (
        forged.seq is None
        and forged.found
        and forged.expected.startswith("audit/checkpoint signed by sha256:")
    )
    assert forged.message == "the checkpoint was forged or changed, or is from another vault"
    for path in (v.log.checkpoint_path, v.log.checkpoints_dir / "8.txt"):
        path.write_text(sign_checkpoint(v.key, "strongroom.local/vault/ffffffffffffffff", 8, root8))
    report = v.verify()
    assert report.signed_size == 4 and not report.ok
    other = next(f for f in report.findings if f.expected == f"origin {ORIGIN}")
    assert other.found == "origin strongroom.local/vault/ffffffffffffffff" and other.seq is None
    assert other.message.endswith("is a checkpoint of another log")

"""What `audit verify` concludes from a snapshot, finding by finding: the kind, the entry, what was
expected and found, and the sentence an auditor reads, for every key, checkpoint, witness and epoch
problem, and the report's other fields (signed and unsigned entries, the key's source, the epochs).

An auditor's script reads `kind` and `seq`; a person reads the rest. Both are the contract, so each
finding is compared whole."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.support import finding_json
from vault.audit import AuditLog, epochs, merkle
from vault.audit.checkpoint import parse_checkpoint, sign_checkpoint
from vault.audit.verify import verify_snapshot
from vault.audit.witness import WitnessKey, cosign_line, key_id
from vault.crypto.signing import SigningKey

ORIGIN = "strongroom.local/vault/3c3c3c3c3c3c3c3c"


def label(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:16]


class Written:
    """A log of 8 entries with a checkpoint after every fourth, as the vault writes it; `sealed` adds
    epochs (and their entries: `saved` is keyed by the size each checkpoint covers)."""

    def __init__(self, root: Path, *, sealed: bool = False, n: int = 8) -> None:
        self.key = SigningKey.generate()
        self.log = AuditLog(root / "audit", origin=ORIGIN)
        self.log.init(self.key.public_pem())
        if sealed:
            self.log.attach_sealer(self.key.raw(), "alice", "operator")
        self.saved: dict[int, bytes] = {}
        for i in range(n):
            self.log.append("alice", "operator", "dataset.read", f"set{i}", "ok", {"i": i})
            if (i + 1) % 4 == 0:
                text = self.log.write_checkpoint(self.key).encode()
                self.saved[parse_checkpoint(text).size] = text

    @property
    def data(self) -> bytes:
        return self.log.log_path.read_bytes()

    @property
    def history(self) -> list[tuple[str, bytes]]:
        return [(f"checkpoints/{size}.txt", text) for size, text in sorted(self.saved.items())]

    def verify(self, **changes):
        given = {
            "pubkey_file": self.key.public_pem(),
            "trusted_pubkey": self.key.public_pem(),
            "checkpoints": self.history,
            "latest": self.saved[max(self.saved)],
            "external": None,
            "origin": None,
        }
        given.update(changes)
        return verify_snapshot(self.data, **given)

    def root(self, size: int) -> bytes:
        return merkle.root([merkle.leaf_hash(line) for line in self.data.split(b"\n")[:size]])


@pytest.fixture
def w(tmp_path: Path) -> Written:
    return Written(tmp_path)


def findings(report) -> list[dict]:
    return [f.to_json() for f in report.findings]


def finding(kind: str, expected: str, found: str, message: str, seq: int | None = None) -> dict:
    return finding_json(seq, kind, expected, found, message)


# ---------------------------------------------------------------------------------------- intact
def test_an_intact_log_with_a_saved_checkpoint_rules_out_truncation(w: Written) -> None:
    report = w.verify(external=w.saved[4])
    root = w.root(8).hex()
    assert report.ok and findings(report) == [] and report.truncation_ruled_out
    assert (report.entries, report.size, report.signed_size, report.unsigned) == (8, 8, 8, 0)
    assert (report.root, report.origin, report.key_source) == (root, ORIGIN, "given")
    assert (report.epochs, report.initial_key, report.initial_key_checked, report.unsealed_seqs) == (
        0,
        None,
        False,
        [],
    )
    assert report.message == (
        f"intact: 8 entries, root {root}.\n"
        "A signed checkpoint covers all 8 entries.\n"
        "The log extends the given checkpoint of 4 entries: nothing it covers was removed or rewritten, "
        "so truncation and rollback since then are ruled out."
    )


def test_entries_after_the_last_checkpoint_are_counted_and_named(w: Written) -> None:
    w.log.append("alice", "operator", "dataset.read", "late", "ok", {})
    one = w.verify()
    assert (one.ok, one.signed_size, one.unsigned) == (True, 8, 1)
    assert (
        "A signed checkpoint covers the first 8 entries; entry 8 is protected by the hash chain"
        in one.message
    )
    w.log.append("alice", "operator", "dataset.read", "later", "ok", {})
    seen: list[dict] = []
    two = w.verify(on_entry=seen.append)
    assert (two.signed_size, two.unsigned) == (8, 2)
    assert "entries 8..9 are protected by the hash chain only until the next checkpoint" in two.message
    assert [e["seq"] for e in seen] == list(range(10)), "each entry reaches the reader once"
    assert two.message.endswith(
        "No saved checkpoint was given, so truncation or rollback of the log cannot be ruled out. Keep the "
        "output of `strongroom audit checkpoint` off this machine and pass it with --checkpoint."
    )


def test_the_latest_checkpoint_names_the_origin_when_none_is_given(w: Written) -> None:
    assert w.verify().origin == ORIGIN
    assert w.verify(latest=None, checkpoints=[]).origin is None
    other = "strongroom.local/vault/0000000000000000"
    report = w.verify(origin=other)
    assert report.origin == other and not report.ok
    assert findings(report)[0] == finding(
        "checkpoint_origin",
        f"origin {other}",
        f"origin {ORIGIN}",
        "audit/checkpoint is a checkpoint of another log",
    )


# ---------------------------------------------------------------------------------------- keys
def test_every_key_problem_is_named(w: Written) -> None:
    stranger = SigningKey.generate()
    other = stranger.public_pem()
    garbage = b"-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n"
    file_invalid = w.verify(pubkey_file=garbage, trusted_pubkey=None)
    assert findings(file_invalid) == [
        finding("pubkey_invalid", "an Ed25519 public key in audit/pubkey.pem", "something else", "")
    ]
    assert (file_invalid.key_source, file_invalid.signed_size) == ("none", 0), "no key: nothing is signed"
    given_invalid = w.verify(trusted_pubkey=garbage)
    assert findings(given_invalid) == [
        finding(
            "pubkey_invalid",
            "an Ed25519 public key (PEM) in --pubkey",
            "something else",
            "the given public key cannot be used",
        )
    ]
    assert given_invalid.key_source == "none" and given_invalid.signed_size == 0
    removed = w.verify(pubkey_file=None, trusted_pubkey=w.key.public_raw())
    assert findings(removed) == [
        finding("pubkey_missing", "audit/pubkey.pem", "no such file", "the public key file was removed")
    ]
    assert removed.key_source == "given" and removed.signed_size == 8, "a raw 32-byte key is used as given"
    replaced = w.verify(pubkey_file=other)
    assert findings(replaced) == [
        finding(
            "pubkey_replaced",
            f"audit/pubkey.pem = the given key {label(w.key.public_raw())}",
            f"another key {label(stranger.public_raw())}",
            "the vault's public key file was replaced",
        )
    ]
    neither = w.verify(pubkey_file=None, trusted_pubkey=None)
    assert findings(neither) == [
        finding(
            "pubkey_missing",
            "audit/pubkey.pem",
            "no such file",
            "checkpoint signatures cannot be checked; pass --pubkey with a copy you keep",
        )
    ]
    assert neither.key_source == "none" and neither.signed_size == 0
    from_vault = w.verify(trusted_pubkey=None)
    assert from_vault.ok and from_vault.key_source == "vault" and from_vault.signed_size == 8
    assert "Signatures were checked with audit/pubkey.pem from the vault itself" in from_vault.message


# ---------------------------------------------------------------------------------------- checkpoints
def test_every_checkpoint_problem_is_named(w: Written) -> None:
    stranger = SigningKey.generate()
    forged = sign_checkpoint(stranger, ORIGIN, 4, w.root(4)).encode()
    report = w.verify(checkpoints=[("checkpoints/4.txt", forged), ("checkpoints/8.txt", w.saved[8])])
    assert findings(report) == [
        finding(
            "checkpoint_signature",
            f"checkpoints/4.txt signed by {label(w.key.public_raw())}",
            report.findings[0].found,
            "the checkpoint was forged or changed, or is from another vault",
        )
    ]
    assert report.findings[0].found  # the signature check's own words
    invalid = w.verify(checkpoints=[("checkpoints/4.txt", b"not a checkpoint\n")])
    assert [f.kind for f in invalid.findings] == ["checkpoint_invalid"]
    assert (
        invalid.findings[0].expected == "a signed checkpoint in checkpoints/4.txt"
        and invalid.findings[0].found
    )
    assert invalid.findings[0].message == ""
    renamed = w.verify(checkpoints=[("checkpoints/5.txt", w.saved[4])])
    assert findings(renamed) == [
        finding("checkpoint_name", "4.txt", "5.txt", "checkpoints/5.txt was renamed")
    ]
    rolled_back = w.verify(latest=w.saved[4])
    assert findings(rolled_back) == [
        finding(
            "checkpoint_rollback",
            "audit/checkpoint covering 8 entries (the newest in checkpoints/)",
            "one covering 4",
            "the latest checkpoint was replaced by an older one",
        )
    ]
    assert rolled_back.signed_size == 8
    removed = w.verify(latest=None)
    assert findings(removed) == [
        finding("checkpoint_missing", "audit/checkpoint", "no such file", "the latest checkpoint was removed")
    ]
    assert w.verify(latest=None, checkpoints=[]).ok, "a log never checkpointed lacks nothing"
    same_twice = w.verify(checkpoints=[("checkpoints/8.txt", w.saved[8]), ("checkpoints/8.txt", w.saved[8])])
    assert same_twice.ok and same_twice.signed_size == 8


def test_a_log_shorter_or_other_than_its_checkpoints_is_named(w: Written) -> None:
    lines = w.data.split(b"\n")[:-1]
    short = b"".join(line + b"\n" for line in lines[:6])
    report = verify_snapshot(
        short,
        pubkey_file=w.key.public_pem(),
        trusted_pubkey=None,
        checkpoints=w.history,
        latest=w.saved[8],
        external=None,
        origin=None,
    )
    newer = finding(
        "checkpoint_newer",
        "at least 8 entries (audit/checkpoint)",
        "6 complete entries",
        "the log is shorter than audit/checkpoint: entries 6..7 were removed (truncation or rollback)",
        seq=6,
    )
    assert findings(report) == [newer], "checkpoints/8.txt is the same text: named once"
    assert report.signed_size == 4 and report.unsigned == 2
    other = sign_checkpoint(w.key, ORIGIN, 8, bytes([7]) * 32).encode()
    changed = w.verify(latest=other, checkpoints=[("checkpoints/4.txt", w.saved[4])])
    assert findings(changed) == [
        finding(
            "checkpoint_root",
            f"root {'07' * 8}... over the first 8 entries (audit/checkpoint)",
            f"root {w.root(8).hex()[:16]}...",
            "entries covered by this signed checkpoint were changed",
            seq=7,
        )
    ]
    assert changed.signed_size == 4


# ---------------------------------------------------------------------------------------- external
def test_a_saved_checkpoint_the_log_does_not_extend_is_named(w: Written, tmp_path: Path) -> None:
    elsewhere = Written(tmp_path / "elsewhere")
    theirs = sign_checkpoint(w.key, ORIGIN, 4, elsewhere.root(4)).encode()
    report = w.verify(external=theirs)
    kinds = [f["kind"] for f in findings(report)]
    assert kinds == ["checkpoint_root"] and not report.truncation_ruled_out
    assert report.message.endswith("The log does not verify against the given checkpoint: see the findings.")
    assert report.findings[0].expected.endswith("(the given checkpoint)")
    unsigned = w.verify(external=w.saved[4], trusted_pubkey=None, pubkey_file=None)
    assert not unsigned.truncation_ruled_out, "without a key, a saved checkpoint proves nothing"
    empty = sign_checkpoint(w.key, ORIGIN, 0, merkle.MerkleTree().root()).encode()
    from_nothing = w.verify(external=empty)
    assert from_nothing.ok and from_nothing.truncation_ruled_out
    assert "The log extends the given checkpoint of 0 entries" in from_nothing.message


def test_the_consistency_proof_failure_is_named_at_the_checkpoints_last_entry(
    w: Written, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args) -> None:
        raise merkle.ProofError("the proof does not lead to the given root")

    monkeypatch.setattr(merkle, "verify_consistency", refuse)
    report = w.verify(external=w.saved[4])
    assert findings(report) == [
        finding(
            "consistency",
            "today's log to extend the given checkpoint",
            "the proof does not lead to the given root",
            "",
            seq=3,
        )
    ]
    assert not report.truncation_ruled_out


def test_a_witness_that_did_not_cosign_the_saved_checkpoint_is_named(w: Written) -> None:
    signer = SigningKey.generate()
    witness = WitnessKey("witness.example/alice", signer.public_raw())
    body = w.saved[4].decode().split("\n\n")[0] + "\n"
    cosigned = w.saved[4] + cosign_line(witness.name, signer, body, 1_700_000_000).encode()
    good = w.verify(external=cosigned, witnesses=(witness,))
    assert good.ok and good.truncation_ruled_out
    other = WitnessKey("witness.example/bob", SigningKey.generate().public_raw())
    report = w.verify(external=cosigned, witnesses=(witness, other))
    assert findings(report) == [
        finding(
            "witness_signature",
            "the given checkpoint cosigned by witness witness.example/bob",
            "no valid cosignature by that key",
            "the checkpoint is not one this witness cosigned (changed, or another witness's)",
        )
    ]
    assert not report.truncation_ruled_out
    assert key_id(witness.name, witness.public) != key_id(other.name, other.public)
    broken = w.verify(external=b"not a checkpoint\n", witnesses=(witness,))
    assert [f.kind for f in broken.findings] == ["checkpoint_invalid", "witness_signature"]


# ---------------------------------------------------------------------------------------- epochs
def test_epochs_are_reported_and_checked_against_the_key_the_auditor_keeps(tmp_path: Path) -> None:
    sealed = Written(tmp_path / "sealed", sealed=True)
    initial = sealed.log.initial_key()
    assert initial is not None
    report = sealed.verify(initial_key=initial)
    assert report.ok and report.epochs >= 1 and report.unsealed_seqs == []
    assert report.initial_key == epochs.fingerprint(initial) and report.initial_key_checked
    unchecked = sealed.verify()
    assert unchecked.ok and unchecked.initial_key == epochs.fingerprint(initial)
    assert not unchecked.initial_key_checked, "nothing to compare with: not checked"
    plain = Written(tmp_path / "plain")
    replaced = plain.verify(initial_key=initial)
    assert findings(replaced) == [
        finding(
            "epoch_key",
            f"a log whose epochs start at the given key {epochs.fingerprint(initial)}",
            "a log with no epochs",
            "the log was replaced by one written without the vault's sealing keys",
        )
    ]
    assert (replaced.epochs, replaced.initial_key, replaced.initial_key_checked) == (0, None, False)


def test_a_long_log_checks_its_seals_beside_the_scan_with_the_same_conclusion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vault.audit import verify as verify_module

    sealed = Written(tmp_path / "sealed", sealed=True)
    initial = sealed.log.initial_key()
    lines = sealed.data.split(b"\n")[:-1]
    in_order = sealed.verify(initial_key=initial)
    monkeypatch.setattr(verify_module, "SIDE_BY_SIDE_FROM", 1)
    beside = sealed.verify(initial_key=initial)
    assert beside.to_json() == in_order.to_json() and beside.initial_key_checked
    unsealed = lines[:]
    opened = next(i for i, line in enumerate(unsealed) if epochs.split_seal(line) and i > 2)
    unsealed[opened] = epochs.split_seal(unsealed[opened])[0]
    data = b"".join(line + b"\n" for line in unsealed)
    common = dict(
        pubkey_file=sealed.key.public_pem(),
        trusted_pubkey=None,
        checkpoints=[],
        latest=None,
        external=None,
        origin=None,
        initial_key=initial,
    )
    with_child = verify_snapshot(data, **common)
    monkeypatch.setattr(verify_module, "SIDE_BY_SIDE_FROM", 10**9)
    without = verify_snapshot(data, **common)
    assert with_child.to_json() == without.to_json() and not without.ok
    assert opened in without.unsealed_seqs or any(f.seq == opened for f in without.findings)


def test_a_failing_report_says_so_first_and_how_the_key_was_checked(w: Written) -> None:
    report = w.verify(trusted_pubkey=None, latest=None)
    assert report.truncation_ruled_out is False and not report.ok
    assert report.message == (
        "NOT intact: 1 finding(s) in a log of 8 entries.\n"
        "A signed checkpoint covers all 8 entries.\n"
        "Signatures were checked with audit/pubkey.pem from the vault itself; pass --pubkey with a copy kept "
        "elsewhere to rule out a replaced key.\n"
        "No saved checkpoint was given, so truncation or rollback of the log cannot be ruled out. Keep the output "
        "of `strongroom audit checkpoint` off this machine and pass it with --checkpoint."
    )
    unsigned = w.verify(latest=None, checkpoints=[])
    assert unsigned.ok and unsigned.signed_size == 0 and unsigned.unsigned == 8
    assert unsigned.message.splitlines()[1] == (
        "A signed checkpoint covers the first 0 entries; entries 0..7 are protected by the hash chain only "
        "until the next checkpoint (a command may still be running, or the last one ended without signing)."
    )


def test_an_empty_checkpoint_with_another_root_names_no_entry(w: Written) -> None:
    wrong = sign_checkpoint(w.key, ORIGIN, 0, bytes(32)).encode()
    report = w.verify(external=wrong)
    assert [(f.kind, f.seq) for f in report.findings] == [("checkpoint_root", None)]
    assert report.truncation_ruled_out is False


def test_a_long_log_names_another_initial_key_as_the_scan_in_order_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vault.audit import verify as verify_module

    sealed = Written(tmp_path / "sealed", sealed=True)
    other = SigningKey.generate().public_raw()
    in_order = sealed.verify(initial_key=other)
    monkeypatch.setattr(verify_module, "SIDE_BY_SIDE_FROM", 1)
    beside = sealed.verify(initial_key=other)
    assert [f.kind for f in in_order.findings] == ["epoch_key"]
    assert beside.to_json() == in_order.to_json() and not beside.initial_key_checked

"""History insiders cannot rewrite (issue 14), each attack mounted as the insider would:

1. A hand-written, correctly chained line appended with the standard library alone.
2. History rewritten with every key the vault holds (catalog signing key, the live epoch state),
   re-chained, re-sealed and re-signed, then checked against the auditor's initial key.
3. A catalog or header copied back over the current one (a spent budget restored).
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support import PASSPHRASE, REPO, launcher
from vault.audit import merkle
from vault.audit.checkpoint import sign_checkpoint
from vault.crypto.signing import SigningKey
from vault.door import Vault
from vault.errors import IntegrityError
from vault.storage import catalog as catalogs
from vault.storage import keyring
from vault.storage.files import canonical_json

OPERATOR = b"olivia's passphrase"


def strongroom(vault: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "STRONGROOM_VAULT": str(vault),
        "STRONGROOM_PASSPHRASE": PASSPHRASE,
        "PATH": "/usr/bin:/bin",
        "LC_ALL": "C.UTF-8",
    }
    return subprocess.run(
        [*launcher(), *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )


def lines_of(vault: Path) -> list[bytes]:
    return (vault / "audit" / "log.jsonl").read_bytes().split(b"\n")[:-1]


def root_of(lines: list[bytes]) -> bytes:
    tree = merkle.MerkleTree()
    for line in lines:
        tree.append_data(line)
    return tree.root()


def hand_written(vault: Path, **fields: Any) -> bytes:
    """An entry chained correctly to the log, written with json and hashlib only."""
    lines = lines_of(vault)
    last = json.loads(lines[-1])
    entry = {
        "v": 1,
        "seq": len(lines),
        "time": last["time"],
        "actor": "aaron",
        "role": "auditor",
        "action": "dataset.read",
        "subject": "clinic",
        "outcome": "ok",
        "detail": {"purpose": "sample"},
        "prev": root_of(lines).hex(),
        **fields,
    }
    line = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return _append(vault, line)


def sealed_by_hand(vault: Path, **fields: Any) -> bytes:
    """As `hand_written`, sealed with the running epoch's MAC key, which every role's catalog key
    opens (epoch.sealed): the best an insider can do between commands."""
    from vault.audit.epochs import seal_line

    _, live = insider_keys(vault)
    hand_written(vault, **fields)  # chained and shaped as above, then sealed in its place
    lines = lines_of(vault)
    entry = {**json.loads(lines[-1]), "seal": ""}
    line = seal_line(live.mac_key, canonical_json(entry))
    (vault / "audit" / "log.jsonl").write_bytes(b"".join(x + b"\n" for x in [*lines[:-1], line]))
    return line


def _append(vault: Path, line: bytes) -> bytes:
    with open(vault / "audit" / "log.jsonl", "ab") as f:
        f.write(line + b"\n")
    return line


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    path = tmp_path / "vault"
    with Vault.create(path, passphrase=PASSPHRASE.encode()) as v:
        v.keys_add("olivia", "operator", OPERATOR)
    return path


def session(path: Path) -> None:
    """One command: open and close the vault."""
    Vault.open(path, user="admin", passphrase=PASSPHRASE.encode()).close()


# ----------------------------------------------------------------------------- 1: a hand-written line
def test_a_hand_appended_line_is_reported_and_never_signed(vault: Path) -> None:
    forged = hand_written(vault)
    seq = json.loads(forged)["seq"]
    session(vault)  # the next command must not seal or checkpoint it as if it were ours
    result = strongroom(vault, "audit", "verify", "--json")
    assert result.returncode == 4, result.stdout + result.stderr
    report = json.loads(result.stdout)
    unsealed = [f for f in report["findings"] if f["kind"] == "unsealed"]
    assert [f["seq"] for f in unsealed] == [seq]
    # The log carried on after it and recorded what it found.
    recorded = [json.loads(line) for line in lines_of(vault) if b'"audit.unsealed"' in line]
    assert recorded and recorded[0]["detail"]["seqs"] == [seq]
    shown = strongroom(vault, "audit", "show", "--json")
    assert shown.returncode == 0
    rows = {e["seq"]: e for e in json.loads(shown.stdout)}
    assert rows[seq]["sealed"] is False and rows[seq - 1]["sealed"] is True


def test_a_hand_written_line_that_borrows_a_seq_is_still_shown_unsealed(vault: Path) -> None:
    """`audit show` marks what verification found unsealed. It matched the entries by their `seq`
    field, which the insider writes: a forged line that copied an earlier seq was shown sealed (and
    the real entry with that seq unsealed), and a seq that is an object stopped the command."""
    first = len(lines_of(vault))
    hand_written(vault, seq=1)
    hand_written(vault, seq={"not": "a number"})
    result = strongroom(vault, "audit", "show", "--json")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    shown = json.loads(result.stdout)
    assert [e["sealed"] for e in shown[first:]] == [False, False]
    assert shown[1]["seq"] == 1 and shown[1]["sealed"] is True
    assert all(e["sealed"] for e in shown[:first])
    table = strongroom(vault, "audit", "show")
    assert table.returncode == 0 and table.stdout.count("UNSEALED") == 2, table.stdout + table.stderr
    filtered = json.loads(strongroom(vault, "audit", "show", "--json", "--actor", "aaron").stdout)
    assert [e["sealed"] for e in filtered] == [False, False]


def test_a_line_appended_inside_a_running_command_is_found_when_its_epoch_closes(vault: Path) -> None:
    v = Vault.open(vault, user="admin", passphrase=PASSPHRASE.encode())
    v.audit.append("admin", "admin", "vault.verify", "x", "ok", {})
    forged = hand_written(vault)
    v.audit.append("admin", "admin", "vault.verify", "y", "ok", {})
    v.close()
    report = v.audit.verify()
    assert [f.seq for f in report.findings if f.kind == "unsealed"] == [json.loads(forged)["seq"]]


# ----------------------------------------------------------------------------- 2: a rewrite with every key
def insider_keys(vault: Path) -> tuple[SigningKey, Any]:
    """What an admin's slot opens: the checkpoint key in the catalog and the live epoch state."""
    from vault.audit.epochs import read_live_state
    from vault.storage.header import read_header

    header = read_header(vault)
    slot, kek = keyring.passphrase_key(header, "admin", PASSPHRASE.encode())
    secrets, _ = keyring.open_secrets(slot, kek, header)
    vault_keys = keyring.open_keys(slot, secrets.private)
    catalog = catalogs.read_catalog(vault, header["vault_id"], keyring.catalog_key(vault_keys.meta))
    signing = SigningKey.from_raw(keyring.unb64(catalog["signing_key"], "signing_key"))
    return signing, read_live_state(vault / "audit", signing.raw())


def forge_relog(kept: list[dict[str, Any]], live: Any) -> list[bytes]:
    """The insider's best with the keys of today: every entry re-chained and re-sealed under the
    running epoch's MAC key, every epoch certificate re-signed with the running epoch's key."""
    from vault.audit.epochs import cert_message, seal_line

    lines: list[bytes] = []
    for seq, entry in enumerate(kept):
        entry = {**entry, "seq": seq, "prev": root_of(lines).hex(), "seal": ""}
        detail = entry["detail"]
        if entry["action"] == "audit.epoch" and detail["certificate"]:
            message = cert_message(
                detail["epoch"], seq, entry["prev"], detail["key"], detail["mac_commit"], detail["reveal"]
            )
            detail = {**detail, "certificate": base64.b64encode(live.signing.sign(message)).decode()}
            entry["detail"] = detail
        lines.append(seal_line(live.mac_key, canonical_json(entry)))
    return lines


def rewrite(vault: Path, drop: str) -> None:
    """Remove every entry of action `drop`, re-chain, re-seal with the live epoch's keys, re-sign
    epoch certificates with the live epoch key, and re-sign the checkpoint."""
    signing, live = insider_keys(vault)
    kept = [json.loads(line) for line in lines_of(vault) if json.loads(line)["action"] != drop]
    lines = forge_relog(kept, live)
    (vault / "audit" / "log.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
    origin = (vault / "audit" / "checkpoint").read_text().split("\n")[0]
    text = sign_checkpoint(signing, origin, len(lines), root_of(lines))
    (vault / "audit" / "checkpoint").write_text(text)
    shutil.rmtree(vault / "audit" / "checkpoints")
    (vault / "audit" / "checkpoints").mkdir()
    (vault / "audit" / "checkpoints" / f"{len(lines)}.txt").write_text(text)
    (vault / "audit" / "state.json").unlink(missing_ok=True)


def test_history_rewritten_with_every_vault_key_fails_against_the_initial_key(
    vault: Path, tmp_path: Path
) -> None:
    key_file = tmp_path / "initial.pem"
    saved = strongroom(vault, "audit", "key", "--out", str(key_file))
    assert saved.returncode == 0, saved.stderr
    assert "SHA256:" in saved.stdout or "sha256:" in saved.stdout
    with Vault.open(vault, user="admin", passphrase=PASSPHRASE.encode()) as v:
        v.keys_remove("olivia")
    session(vault)
    before = strongroom(vault, "audit", "verify", "--key", str(key_file))
    assert before.returncode == 0, before.stdout + before.stderr
    rewrite(vault, drop="keys.remove")
    assert b'"keys.remove"' not in (vault / "audit" / "log.jsonl").read_bytes()
    after = strongroom(vault, "audit", "verify", "--key", str(key_file), "--json")
    assert after.returncode == 4, after.stdout + after.stderr
    kinds = {f["kind"] for f in json.loads(after.stdout)["findings"]}
    assert kinds & {"epoch_certificate", "epoch_key", "unsealed"}, kinds


# ----------------------------------------------------------------------------- 3: state copied back
def test_an_older_catalog_copied_back_is_refused_naming_both_generations(vault: Path, tmp_path: Path) -> None:
    old = (vault / "catalog.sealed").read_bytes()
    rows = "label\ttext\n" + "".join(f"{'ham' if i % 2 else 'spam'}\tmessage number {i}\n" for i in range(24))
    (tmp_path / "msgs.tsv").write_text(rows, "utf-8")
    with Vault.open(vault, user="admin", passphrase=PASSPHRASE.encode()) as v:
        v.import_dataset(tmp_path / "msgs.tsv", name="msgs", sensitivity="medium")
    (vault / "catalog.sealed").write_bytes(old)
    with pytest.raises(IntegrityError) as caught:
        session(vault)
    assert caught.value.exit_code == 4
    assert "catalog" in caught.value.title and "generation" in caught.value.title
    found, logged = caught.value.detail["catalog_generation"], caught.value.detail["logged_generation"]
    assert found < logged and str(found) in caught.value.title and str(logged) in caught.value.title
    result = strongroom(vault, "datasets")
    assert result.returncode == 4 and "catalog" in result.stderr


def test_an_older_header_copied_back_is_refused(vault: Path) -> None:
    old = (vault / "vault.json").read_bytes()
    with Vault.open(vault, user="admin", passphrase=PASSPHRASE.encode()) as v:
        v.keys_remove("olivia")
    (vault / "vault.json").write_bytes(old)
    with pytest.raises(IntegrityError) as caught:
        session(vault)
    assert caught.value.exit_code == 4 and "generation" in caught.value.title


def test_every_commit_records_the_catalog_generation_in_a_sealed_entry(vault: Path) -> None:
    with Vault.open(vault, user="admin", passphrase=PASSPHRASE.encode()) as v:
        v.keys_remove("olivia")
    commits = [json.loads(line) for line in lines_of(vault) if b'"catalog_generation"' in line]
    generations = [e["detail"]["catalog_generation"] for e in commits]
    assert generations == sorted(generations) and len(generations) >= 2
    assert all(e["seal"] for e in commits)


def test_canonical_json_matches_what_the_forger_writes() -> None:
    entry = {"b": 1, "a": "ü"}
    assert (
        canonical_json(entry)
        == json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    assert hashlib.sha256(b"").hexdigest() == merkle.MerkleTree().root().hex()


# ----------------------------------------------------------------------------- witnesses
def test_a_witness_cosigns_and_catches_a_whole_folder_rollback(vault: Path, tmp_path: Path) -> None:
    key = tmp_path / "media" / "witness.key"
    key.parent.mkdir()
    made = strongroom(vault, "audit", "keygen", "--out", str(key), "--name", "witness.example/aaron")
    assert made.returncode == 0, made.stderr
    assert (key.stat().st_mode & 0o777) == 0o600 and Path(f"{key}.pub").read_text().startswith(
        "witness.example/aaron+"
    )
    first = strongroom(vault, "audit", "cosign", "--key", str(key), "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["previous_size"] is None
    snapshot = tmp_path / "snapshot"
    shutil.copytree(vault, snapshot)  # the whole folder, log included, as it is now
    session(vault)
    second = strongroom(vault, "audit", "cosign", "--key", str(key), "--json")
    assert second.returncode == 0, second.stderr
    done = json.loads(second.stdout)
    assert done["previous_size"] < done["size"]
    memory = f"{key}.checkpoint"
    assert "— witness.example/aaron " in (vault / "audit" / "checkpoint").read_text()
    ok = strongroom(vault, "audit", "verify", "--witness", f"{key}.pub", "--checkpoint", memory)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # The whole folder put back: every file agrees with every other, only the witness knows better.
    shutil.rmtree(vault)
    shutil.copytree(snapshot, vault)
    assert strongroom(vault, "audit", "verify").returncode == 0
    caught = strongroom(vault, "audit", "verify", "--witness", f"{key}.pub", "--checkpoint", memory, "--json")
    assert caught.returncode == 4, caught.stdout
    assert "checkpoint_newer" in {f["kind"] for f in json.loads(caught.stdout)["findings"]}
    refused = strongroom(vault, "audit", "cosign", "--key", str(key))
    assert refused.returncode == 4 and "rolled back" in refused.stderr


def test_a_witness_refuses_a_rewritten_history_and_a_forged_cosignature(vault: Path, tmp_path: Path) -> None:
    key = tmp_path / "witness.key"
    assert strongroom(vault, "audit", "keygen", "--out", str(key)).returncode == 0
    assert strongroom(vault, "audit", "cosign", "--key", str(key)).returncode == 0
    memory = Path(f"{key}.checkpoint")
    other = tmp_path / "other.key"
    assert strongroom(vault, "audit", "keygen", "--out", str(other)).returncode == 0
    wrong = strongroom(
        vault, "audit", "verify", "--witness", f"{other}.pub", "--checkpoint", str(memory), "--json"
    )
    assert wrong.returncode == 4
    assert "witness_signature" in {f["kind"] for f in json.loads(wrong.stdout)["findings"]}
    session(vault)
    rewrite(vault, drop="keys.add")
    caught = strongroom(vault, "audit", "verify", "--witness", f"{key}.pub", "--checkpoint", str(memory))
    assert caught.returncode == 4
    refused = strongroom(vault, "audit", "cosign", "--key", str(key))
    assert refused.returncode == 4 and "rewritten" in refused.stderr
    missing = strongroom(vault, "audit", "verify", "--witness", f"{key}.pub")
    assert missing.returncode == 2 and "--checkpoint" in missing.stderr


def test_a_long_session_moves_its_sealing_keys_on_and_destroys_the_old_ones(vault: Path) -> None:
    v = Vault.open(vault, user="admin", passphrase=PASSPHRASE.encode())
    before = (vault / "audit" / "epoch.sealed").read_bytes()
    signing, live = insider_keys(vault)
    v.audit.move_sealing_on()  # what the TUI does every 15 minutes
    v.audit.append("admin", "admin", "vault.verify", "x", "ok", {})
    _, moved = insider_keys(vault)
    assert moved.epoch == live.epoch + 1 and moved.mac_key != live.mac_key
    assert (vault / "audit" / "epoch.sealed").read_bytes() != before
    assert live.mac_key.hex() not in (vault / "audit" / "epoch.sealed").read_text("latin-1")
    v.close()
    entries = [json.loads(line) for line in lines_of(vault)]
    reasons = [e["detail"]["reason"] for e in entries if e["action"] == "audit.epoch"]
    assert "15 minutes passed" in reasons
    assert v.audit.verify(initial_key=v.audit.initial_key()).ok


def test_a_deleted_epoch_state_does_not_stop_the_vault_and_verify_says_the_chain_broke(
    vault: Path, tmp_path: Path
) -> None:
    key_file = tmp_path / "initial.pem"
    assert strongroom(vault, "audit", "key", "--out", str(key_file)).returncode == 0
    (vault / "audit" / "epoch.sealed").write_bytes(b"garbage")
    session(vault)
    result = strongroom(vault, "audit", "verify", "--key", str(key_file), "--json")
    assert result.returncode == 4
    report = json.loads(result.stdout)
    assert [f["kind"] for f in report["findings"]] == ["epoch_certificate"]  # and nothing called unsealed

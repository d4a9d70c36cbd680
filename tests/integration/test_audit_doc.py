"""docs/AUDIT.md's manual checks, run exactly as written: openssl, coreutils and python3 only."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO
from vault.audit import AuditLog, merkle
from vault.crypto.signing import SigningKey

DOC = REPO / "docs" / "AUDIT.md"
BLOCK = re.compile(r"<!-- doc-test: (?P<name>[\w.-]+) -->\n```(?P<lang>\w+)\n(?P<body>.*?)\n```", re.S)


def documented() -> dict[str, str]:
    blocks = {m["name"]: m["body"] + "\n" for m in BLOCK.finditer(DOC.read_text("utf-8"))}
    assert {"signature", "key-hash", "one-leaf", "recompute.py", "recompute"} <= set(blocks)
    return blocks


def run_block(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    bin_dir = str(Path(sys.executable).parent)  # `python3` as the officer would have it
    env = {"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True, text=True
    )


@pytest.fixture
def officer_dir(tmp_path: Path) -> Path:
    """A directory holding copies of a vault's audit files, as the officer would make it."""
    key = SigningKey.generate()
    log = AuditLog(tmp_path / "vault" / "audit", origin="strongroom.local/vault/5eed5eed5eed5eed")
    log.init(key.public_pem())
    for i in range(11):
        log.append(
            "zoë", "operator", "dataset.read", f"x-rays {i}", "ok", {"purpose": "train", "note": "naïve ✓"}
        )
    log.write_checkpoint(key)
    log.append("zoë", "operator", "train.end", "run-1", "ok", {})
    work = tmp_path / "officer"
    work.mkdir()
    for name in ("checkpoint", "pubkey.pem", "log.jsonl"):
        shutil.copy(log.dir / name, work / name)
    (work / "recompute.py").write_text(documented()["recompute.py"])
    return work


def test_signature_check_with_openssl(officer_dir: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    script = documented()["signature"]
    assert "openssl pkeyutl -verify -pubin -inkey pubkey.pem -rawin -in body.txt -sigfile sig.bin" in script
    ok = run_block(script, officer_dir)
    assert ok.returncode == 0, ok.stderr
    assert "Signature Verified Successfully" in ok.stdout
    text = (officer_dir / "checkpoint").read_text()
    lines = text.split("\n")
    lines[1] = str(int(lines[1]) - 1)
    (officer_dir / "checkpoint").write_text("\n".join(lines))
    bad = run_block(script, officer_dir)
    assert bad.returncode != 0 and "Signature Verification Failure" in bad.stdout + bad.stderr


def test_key_hash_matches_the_signature_line(officer_dir: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    result = run_block(documented()["key-hash"], officer_dir)
    assert result.returncode == 0, result.stderr
    computed, from_signature = result.stdout.split()
    assert computed == from_signature and len(computed) == 8


def test_one_leaf_hash_with_coreutils(officer_dir: Path) -> None:
    result = run_block(documented()["one-leaf"], officer_dir)
    assert result.returncode == 0, result.stderr
    first = (officer_dir / "log.jsonl").read_bytes().split(b"\n")[0]
    assert result.stdout.split()[0] == merkle.leaf_hash(first).hex()


def test_recompute_script_agrees_and_catches_edits(officer_dir: Path) -> None:
    script = documented()["recompute"]
    ok = run_block(script, officer_dir)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    lines = (officer_dir / "log.jsonl").read_bytes().split(b"\n")[:-1]
    assert f"12 entries, root {merkle.root([merkle.leaf_hash(x) for x in lines]).hex()}" in ok.stdout
    assert "root over the first 11 entries matches the checkpoint" in ok.stdout

    edited = list(lines)
    edited[4] = edited[4].replace(b"x-rays 4", b"x-rays 5")
    (officer_dir / "log.jsonl").write_bytes(b"".join(x + b"\n" for x in edited))
    bad = run_block(script, officer_dir)
    assert bad.returncode == 1 and "entry 5 does not chain" in bad.stdout

    (officer_dir / "log.jsonl").write_bytes(b"".join(x + b"\n" for x in lines[:9]))
    short = run_block(script, officer_dir)
    assert short.returncode == 1 and "shorter than the checkpoint" in short.stdout

    swapped = list(lines)
    swapped[2], swapped[3] = swapped[3], swapped[2]
    (officer_dir / "log.jsonl").write_bytes(b"".join(x + b"\n" for x in swapped))
    assert run_block(script, officer_dir).returncode == 1


def test_recompute_script_uses_only_the_standard_library() -> None:
    source = documented()["recompute.py"]
    imported = set(re.findall(r"^import (\w+)", source, re.M)) | set(re.findall(r"^from (\w+)", source, re.M))
    assert imported <= {"base64", "hashlib", "json", "sys"}


# ----------------------------------------------------------------------------- seals, epochs, witnesses
@pytest.fixture
def sealed_dir(tmp_path: Path) -> Path:
    """An officer's directory with a real vault's log after three commands, its initial key, and a
    witness's public key and cosigned checkpoint."""
    from tests.support import PASSPHRASE
    from vault.audit.cosign import cosign_vault
    from vault.audit.epochs import key_pem
    from vault.audit.witness import keygen
    from vault.door import Vault

    vault = tmp_path / "vault"
    Vault.create(vault, passphrase=PASSPHRASE.encode()).close()
    for _ in range(2):
        Vault.open(vault, user="admin", passphrase=PASSPHRASE.encode()).close()
    log = AuditLog(vault / "audit")
    key = tmp_path / "media" / "witness.key"
    key.parent.mkdir()
    keygen(key, "witness.example/aaron")
    cosign_vault(log, key)
    work = tmp_path / "officer"
    work.mkdir()
    shutil.copy(log.log_path, work / "log.jsonl")
    (work / "initial.pem").write_bytes(key_pem(log.initial_key()))
    shutil.copy(f"{key}.pub", work / "witness.pub")
    shutil.copy(f"{key}.checkpoint", work / "witness.checkpoint")
    (work / "seals.py").write_text(documented()["seals.py"])
    (work / "recompute.py").write_text(documented()["recompute.py"])
    return work


def test_seals_script_and_epoch_certificates_as_written(sealed_dir: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    ok = run_block(documented()["seals"], sealed_dir)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "epoch 0 is the initial key" in ok.stdout
    assert ok.stdout.count("Signature Verified Successfully") == 5  # epochs 1..5 over three commands
    lines = (sealed_dir / "log.jsonl").read_bytes().split(b"\n")[:-1]
    assert f"{len(lines)} entries in epochs 0..5; 0 before the first epoch" in ok.stdout


def test_seals_script_catches_a_hand_written_line_and_an_edit(sealed_dir: Path) -> None:
    lines = (sealed_dir / "log.jsonl").read_bytes().split(b"\n")[:-1]
    entry = json.loads(lines[-1])
    entry.update(seq=len(lines), action="dataset.read", subject="clinic", detail={"purpose": "sample"})
    entry["prev"] = merkle.root([merkle.leaf_hash(x) for x in lines]).hex()
    forged = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
    (sealed_dir / "log.jsonl").write_bytes(b"".join(x + b"\n" for x in [*lines, forged]))
    result = run_block("python3 seals.py log.jsonl", sealed_dir)
    assert result.returncode == 1 and f"entry {len(lines)} follows an idle epoch" in result.stdout

    edited = list(lines)
    edited[3] = edited[3].replace(b'"admin"', b'"aaron"', 1)
    assert edited[3] != lines[3]
    (sealed_dir / "log.jsonl").write_bytes(b"".join(x + b"\n" for x in edited))
    result = run_block("python3 seals.py log.jsonl", sealed_dir)
    assert result.returncode == 1 and "entry 3 is not sealed" in result.stdout


def test_a_forged_certificate_fails_in_openssl(sealed_dir: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    lines = (sealed_dir / "log.jsonl").read_bytes().split(b"\n")[:-1]
    at = max(i for i, line in enumerate(lines) if b'"audit.epoch"' in line)
    entry = json.loads(lines[at])
    entry["detail"]["certificate"] = base64.b64encode(SigningKey.generate().sign(b"x")).decode()
    lines[at] = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    (sealed_dir / "log.jsonl").write_bytes(b"".join(x + b"\n" for x in lines))
    result = run_block(documented()["seals"], sealed_dir)
    assert result.returncode != 0 and "Signature Verification Failure" in result.stdout + result.stderr


def test_cosignature_check_as_written(sealed_dir: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    script = documented()["cosignature"]
    ok = run_block(script, sealed_dir)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Signature Verified Successfully" in ok.stdout
    extends = run_block("python3 recompute.py log.jsonl witness.checkpoint", sealed_dir)
    assert extends.returncode == 0 and "matches the checkpoint" in extends.stdout
    text = (sealed_dir / "witness.checkpoint").read_text().split("\n")
    text[1] = str(int(text[1]) - 1)
    (sealed_dir / "witness.checkpoint").write_text("\n".join(text))
    bad = run_block(script, sealed_dir)
    assert bad.returncode != 0 and "Signature Verification Failure" in bad.stdout + bad.stderr


def test_seals_script_uses_only_the_standard_library() -> None:
    source = documented()["seals.py"]
    imported = set(re.findall(r"^import (\w+)", source, re.M)) | set(re.findall(r"^from (\w+)", source, re.M))
    assert imported <= {"base64", "hashlib", "json", "sys"}

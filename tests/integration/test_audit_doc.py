"""docs/AUDIT.md's manual checks, run exactly as written: openssl, coreutils and python3 only."""

from __future__ import annotations

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

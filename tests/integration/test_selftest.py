"""`strongroom selftest`: the known-answer checks find a changed vector, and the whole self-test passes
on this host as the installed command, with its JSON contract, leaving nothing behind."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import pytest

from tests.support import VECTORS
from vault.selftest import known_answers

STEP_NAMES = [
    "known answers: C2SP chunked encryption",
    "known answers: AES-GCM (Wycheproof)",
    "known answers: AES key wrap (Wycheproof)",
    "known answers: RFC 6962 Merkle proofs",
    "vault round trip (init, import, verify)",
    "DP training, epsilon checked",
    "audit verify",
    "tamper found (verify exit 4)",
    "network drill (netcheck)",
    "sandbox drill (sandbox-check)",
]


def test_the_shipped_vectors_are_the_vendored_ones() -> None:
    for family in (known_answers.CHUNKED, known_answers.MERKLE):
        shipped = sorted(
            p.relative_to(known_answers.VECTORS / family)
            for p in (known_answers.VECTORS / family).rglob("*")
            if p.is_file()
        )
        vendored = sorted(
            p.relative_to(VECTORS / family) for p in (VECTORS / family).rglob("*") if p.is_file()
        )
        assert shipped == vendored and shipped


@pytest.mark.parametrize("family", sorted(known_answers.FAMILIES))
def test_every_family_agrees_with_this_install(family: str) -> None:
    outcome = known_answers.FAMILIES[family](known_answers.VECTORS)
    assert outcome.failed == []
    assert outcome.ran > 30


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "vectors"
    shutil.copytree(known_answers.VECTORS, root, symlinks=False)
    return root


def test_a_changed_chunked_vector_is_named(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / known_answers.CHUNKED / "c2sp_chunked_encryption_aes_256_gcm_test.json"
    data = json.loads(path.read_text())
    test = next(t for g in data["testGroups"] for t in g["tests"] if t["result"] == "valid")
    ciphertext = bytearray(zlib.decompress(bytes.fromhex(test["ct"])))
    ciphertext[-1] ^= 0x01
    test["ct"] = zlib.compress(bytes(ciphertext)).hex()
    path.write_text(json.dumps(data))
    outcome = known_answers.chunked(root)
    assert outcome.ran == 35
    assert len(outcome.failed) == 1 and outcome.failed[0].startswith(f"{path.name} tc{test['tcId']}")


def test_a_changed_key_wrap_vector_is_named(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / known_answers.CHUNKED / "aes_wrap_test.json"
    data = json.loads(path.read_text())
    test = next(
        t for g in data["testGroups"] for t in g["tests"] if t["result"] == "valid" and len(t["key"]) == 64
    )
    test["msg"] = ("00" if test["msg"][:2] != "00" else "01") + test["msg"][2:]
    path.write_text(json.dumps(data))
    assert known_answers.aes_key_wrap(root).failed == [f"aes_wrap_test.json tc{test['tcId']}"]


def test_a_merkle_proof_with_a_changed_root_is_named(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / known_answers.MERKLE / "testdata" / "inclusion" / "1" / "happy-path.json"
    v = json.loads(path.read_text())
    assert not v["wantErr"]
    v["root"] = v["leafHash"]  # a root that is not this tree's
    path.write_text(json.dumps(v))
    outcome = known_answers.merkle_proofs(root)
    assert [name.split(" ")[0] for name in outcome.failed] == ["inclusion/1/happy-path.json"]


def test_a_vector_file_missing_tests_is_refused(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    path = root / known_answers.CHUNKED / "aes_gcm_test.json"
    data = json.loads(path.read_text())
    data["testGroups"][0]["tests"].pop()
    path.write_text(json.dumps(data))
    with pytest.raises(Exception, match="not the .* it declares"):
        known_answers.aes_gcm(root)


@pytest.mark.slow
def test_selftest_passes_on_this_host_and_leaves_nothing_behind() -> None:
    """The real thing: the installed command, real key derivation, real isolation, real training."""
    tmp = Path(tempfile.gettempdir())
    before = {p.name for p in tmp.iterdir() if p.name.startswith("strongroom")}
    done = subprocess.run(
        [sys.executable, "-I", "-m", "vault.cli", "selftest", "--json"],
        capture_output=True,
        text=True,
        timeout=1200,
        stdin=subprocess.DEVNULL,
    )
    report = json.loads(done.stdout)
    failed = [s for s in report["steps"] if not s["passed"]]
    assert done.returncode == 0 and report["passed"] is True, failed
    assert [s["name"] for s in report["steps"]] == STEP_NAMES
    for step in report["steps"]:
        assert set(step) == {"name", "passed", "seconds", "detail"}
        assert step["seconds"] >= 0 and step["detail"]
    after = {p.name for p in tmp.iterdir() if p.name.startswith("strongroom")}
    assert after <= before, f"left behind in {tmp}: {sorted(after - before)}"


def test_a_broken_product_fails_its_steps_and_the_whole() -> None:
    """A product that exits 3 to everything: the vault steps fail or are not run, the drills fail,
    the known answers still pass, and the whole is a failure."""
    from vault import selftest

    seen: list[selftest.Step] = []
    broken = [sys.executable, "-I", "-c", "import sys; sys.exit(3)"]
    report = selftest.run(on_step=seen.append, product=broken)
    assert report["passed"] is False
    passed = {s["name"]: s["passed"] for s in report["steps"]}
    assert [s.name for s in seen] == STEP_NAMES
    assert all(passed[name] for name in STEP_NAMES[:4])
    assert not any(passed[name] for name in STEP_NAMES[4:])
    details = {s["name"]: s["detail"] for s in report["steps"]}
    assert details["audit verify"] == "not run: the vault round trip failed"
    assert "exited 3" in details["vault round trip (init, import, verify)"]

"""Models out, never data: export with a signed manifest, two-person approval, raw records refused."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import PASSPHRASE, REPO
from vault.errors import AuthError, InputError, PolicyDenied

STRICT = (REPO / "policies" / "strict.toml").read_text()
ROWS = [("ham", f"see you at {h} o'clock, ok?") for h in range(1, 13)] + [
    ("spam", f"WIN a {p} prize now, txt CLAIM to 8{p}") for p in range(100, 112)
]


def small_text(path: Path) -> Path:
    path.write_text("label\ttext\n" + "".join(f"{label}\t{text}\n" for label, text in ROWS), "utf-8")
    return path


def trained(v, tmp_path: Path) -> str:
    v.import_dataset(small_text(tmp_path / "msgs.tsv"), name="msgs", sensitivity="medium")
    result = v.train(
        {
            "dataset": "msgs",
            "model": "bow",
            "dp": True,
            "epsilon": 2.0,
            "epochs": 2,
            "batch_size": 8,
            "val_split": 0.25,
            "seed": 1,
        }
    )
    return result["model"]


def test_export_writes_model_card_and_a_manifest_openssl_verifies(new_vault, tmp_path):
    v = new_vault()
    model = trained(v, tmp_path)
    out = tmp_path / "release"
    result = v.export(model, out)
    assert sorted(result["files"]) == [
        "MANIFEST.sha256",
        "MANIFEST.sig",
        "approvals.json",
        "authority.pub.pem",
        "card.json",
        "card.md",
        "export.json",
        "model.onnx",
        "model.safetensors",
        "predict.py",
        "preprocess.json",
        "signer.pub.pem",
    ]
    manifest = (out / "MANIFEST.sha256").read_text().splitlines()
    for line in manifest:
        digest, name = line.split("  ")
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    assert (out / "signer.pub.pem").read_bytes() == (v.path / "audit" / "pubkey.pem").read_bytes()
    card = json.loads((out / "card.json").read_text())
    assert card["dataset"]["name"] == "msgs"
    carried = b"".join(
        (out / name).read_bytes()
        for name in ("card.json", "model.safetensors", "model.onnx", "preprocess.json")
    )
    for text in (t for _, t in ROWS):  # the card, the weights and the graph never carry records
        assert text.encode() not in carried
    if shutil.which("openssl"):
        verify = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "signer.pub.pem", "-rawin"]
        verify += ["-in", "MANIFEST.sha256", "-sigfile", "MANIFEST.sig"]
        ok = subprocess.run(
            verify,
            cwd=out,
            capture_output=True,
        )
        assert ok.returncode == 0, ok.stderr
        (out / "MANIFEST.sha256").write_text("\n".join(manifest[::-1]) + "\n")
        bad = subprocess.run(
            verify,
            cwd=out,
            capture_output=True,
        )
        assert bad.returncode != 0
    if shutil.which("sha256sum"):
        (out / "MANIFEST.sha256").write_text("\n".join(manifest) + "\n")
        assert (
            subprocess.run(["sha256sum", "-c", "MANIFEST.sha256"], cwd=out, capture_output=True).returncode
            == 0
        )
    entries = v.audit.entries(action="model.export")
    assert entries and entries[-1]["subject"] == model


def test_raw_records_cannot_be_exported(new_vault, tmp_path):
    v = new_vault()
    v.import_dataset(small_text(tmp_path / "msgs.tsv"), name="msgs", sensitivity="low")
    with pytest.raises(PolicyDenied) as refused:
        v.export("msgs", tmp_path / "out")
    assert refused.value.exit_code == 3 and refused.value.detail["rule"] == "export.raw_data"
    assert not (tmp_path / "out").exists()


def test_two_person_export_under_strict_policy(new_vault, tmp_path):
    v = new_vault(policy_text=STRICT)
    v.keys_add("olivia", "operator", b"olivia's passphrase")
    v.keys_add("aaron", "auditor", b"aaron's passphrase")
    model = trained(v, tmp_path)
    with pytest.raises(PolicyDenied) as alone:
        v.export(model, tmp_path / "a")
    assert alone.value.detail["rule"] == "export.approvals_required"
    with pytest.raises(InputError, match="cannot approve their own export"):
        v.export(model, tmp_path / "b", approver="admin", approver_passphrase=PASSPHRASE.encode())
    with pytest.raises(AuthError):
        v.export(model, tmp_path / "c", approver="olivia", approver_passphrase=b"a wrong passphrase")
    with pytest.raises(PolicyDenied):  # an auditor may not approve exports
        v.export(model, tmp_path / "d", approver="aaron", approver_passphrase=b"aaron's passphrase")
    done = v.export(model, tmp_path / "e", approver="olivia", approver_passphrase=b"olivia's passphrase")
    assert done["approvals"] == [{"user": "olivia", "role": "operator"}]
    assert not any((tmp_path / d).exists() and any((tmp_path / d).iterdir()) for d in "abcd")
    approvals = [e for e in v.audit.entries(action="model.export") if e["action"] == "model.export.approval"]
    assert [e["outcome"] for e in approvals] == ["denied", "denied", "ok", "ok"]


@pytest.mark.slow
def test_two_person_export_through_the_command(cli, vault_path, tmp_path):
    policy = tmp_path / "strict.toml"
    policy.write_text(STRICT)
    assert cli("init", "--policy", str(policy)).code == 0
    assert (
        cli(
            "keys",
            "add",
            "olivia",
            "--role",
            "operator",
            env={"STRONGROOM_NEW_PASSPHRASE": "olivia's passphrase"},
        ).code
        == 0
    )
    assert (
        cli("import", str(small_text(tmp_path / "m.tsv")), "--name", "msgs", "--sensitivity", "medium").code
        == 0
    )
    trained_run = cli(
        "train",
        "msgs",
        "--model",
        "bow",
        "--dp",
        "--epsilon",
        "2",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--val-split",
        "0.25",
        "--json",
    )
    assert trained_run.code == 0, trained_run.err
    model = trained_run.json()["model"]
    refused = cli("export", model, "--out", str(tmp_path / "x"))
    assert refused.code == 3 and "export.approvals_required" in refused.err
    ok = cli(
        "export",
        model,
        "--out",
        str(tmp_path / "release"),
        "--json",
        env={"STRONGROOM_APPROVER": "olivia", "STRONGROOM_APPROVER_PASSPHRASE": "olivia's passphrase"},
    )
    assert ok.code == 0, ok.err
    assert (tmp_path / "release" / "model.safetensors").is_file()
    assert ok.json()["approvals"] == [{"user": "olivia", "role": "operator"}]


def test_an_unknown_model_is_refused_by_name(new_vault, tmp_path):
    from vault.errors import NotFound

    v = new_vault()
    with pytest.raises(NotFound, match="no model 'nope'"):
        v.export("nope", tmp_path / "out")
    assert not (tmp_path / "out").exists()

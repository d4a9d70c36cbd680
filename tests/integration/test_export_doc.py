"""docs/EXPORT.md's checks of a two-person bundle, run exactly as written: sha256sum, openssl and
python3's standard library only, in the exported folder, with nothing of Strongroom's."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import PASSPHRASE, REPO

DOC = REPO / "docs" / "EXPORT.md"
BLOCK = re.compile(r"<!-- doc-test: (?P<name>[\w.-]+) -->\n```(?P<lang>\w+)\n(?P<body>.*?)\n```", re.S)
STRICT = (REPO / "policies" / "strict.toml").read_text()
ROWS = [("ham", f"see you at {h} o'clock, ok?") for h in range(1, 13)] + [
    ("spam", f"WIN a {p} prize now, txt CLAIM to 8{p}") for p in range(100, 112)
]

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None or shutil.which("sha256sum") is None, reason="openssl or sha256sum absent"
)


def documented() -> dict[str, str]:
    blocks = {m["name"]: m["body"] + "\n" for m in BLOCK.finditer(DOC.read_text("utf-8"))}
    assert set(blocks) == {"manifest", "authority", "signers", "log-key", "predict"}
    return blocks


def run_block(name: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    bin_dir = str(Path(sys.executable).parent)  # `python3` as the receiving team would have it
    env = {"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", documented()[name]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    from vault.door import Vault

    root = tmp_path_factory.mktemp("export-doc")
    source = root / "msgs.tsv"
    source.write_text("label\ttext\n" + "".join(f"{a}\t{b}\n" for a, b in ROWS), "utf-8")
    with Vault.create(root / "vault", passphrase=PASSPHRASE.encode(), policy_text=STRICT) as admin:
        admin.keys_add("olivia", "operator", b"olivia's passphrase")
        admin.import_dataset(source, name="msgs", sensitivity="medium")
        authority = admin.authority_fingerprint
    with Vault.open(root / "vault", user="olivia", passphrase=b"olivia's passphrase") as olivia:
        model = olivia.train(
            {
                "dataset": "msgs",
                "model": "bow",
                "dp": True,
                "epsilon": 2.0,
                "epochs": 1,
                "batch_size": 8,
                "val_split": 0.25,
                "seed": 1,
            }
        )["model"]
        olivia.export(model, root / "release", approver="admin", approver_passphrase=PASSPHRASE.encode())
    assert authority is not None
    return root / "release", authority


def copy_of(bundle: tuple[Path, str], tmp_path: Path) -> Path:
    return shutil.copytree(bundle[0], tmp_path / "received")


def test_the_documented_checks_pass_on_a_two_person_bundle(bundle: tuple[Path, str], tmp_path: Path) -> None:
    folder = copy_of(bundle, tmp_path)
    manifest = run_block("manifest", folder)
    assert manifest.returncode == 0 and "model.safetensors: OK" in manifest.stdout, manifest.stderr
    authority = run_block("authority", folder)
    assert authority.returncode == 0 and authority.stdout.strip() == bundle[1], authority.stderr
    signers = run_block("signers", folder)
    assert signers.returncode == 0, signers.stderr
    assert signers.stdout.count("Signature Verified Successfully") == 4  # two certificates, two signatures
    assert "0 olivia operator requester" in signers.stdout and "1 admin admin approver" in signers.stdout
    assert signers.stdout.count("certificate names this key") == 2
    assert run_block("log-key", folder).returncode == 0


def test_a_changed_byte_fails_the_manifest_and_a_matching_manifest_fails_every_signature(
    bundle: tuple[Path, str], tmp_path: Path
) -> None:
    folder = copy_of(bundle, tmp_path)
    weights = bytearray((folder / "model.safetensors").read_bytes())
    weights[-1] ^= 0x01
    (folder / "model.safetensors").write_bytes(bytes(weights))
    assert run_block("manifest", folder).returncode != 0
    lines = (folder / "MANIFEST.sha256").read_text().splitlines()
    fixed = [
        f"{hashlib.sha256(bytes(weights)).hexdigest()}  model.safetensors"
        if line.endswith("  model.safetensors")
        else line
        for line in lines
    ]
    (folder / "MANIFEST.sha256").write_text("\n".join(fixed) + "\n")
    assert run_block("manifest", folder).returncode == 0
    assert run_block("signers", folder).returncode != 0
    assert run_block("log-key", folder).returncode != 0


def test_the_documented_prediction_runs_on_the_checked_bundle(
    bundle: tuple[Path, str], tmp_path: Path
) -> None:
    pytest.importorskip("onnxruntime", reason="onnxruntime (the dev extra) runs predict.py here")
    folder = copy_of(bundle, tmp_path)
    assert run_block("manifest", folder).returncode == 0
    done = run_block("predict", folder)
    assert done.returncode == 0, done.stderr
    lines = [line.split("\t") for line in done.stdout.splitlines()]
    assert [line[0] for line in lines] == ["texts.txt:1", "texts.txt:2"]
    assert all(line[1] in ("ham", "spam") and 0.5 <= float(line[2]) <= 1.0 for line in lines)
    weights = bytearray((folder / "model.onnx").read_bytes())
    weights[-1] ^= 0x01
    (folder / "model.onnx").write_bytes(bytes(weights))
    changed = run_block("predict", folder)
    assert changed.returncode == 3 and "model.onnx does not match MANIFEST.sha256" in changed.stderr

"""Objects of one owner rearranged on disk: two shards of one dataset version swapped, one copied
over another, one dropped; the same for a model's parts. Every one is an integrity error (exit 4)
that names the object, from the reading command and from `strongroom verify`.

The shards of one version share a data key, so only each object's context (its index in the
version, its id) tells them apart; the vault is made by this build (tests/vectors/vault-v2/make.py
into a temporary folder: three shards per dataset, a model of three parts), so a build that stops
binding the context writes and reads without it, and these tests catch that.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO, VECTORS, launcher
from vault.door import Vault


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("made")
    proc = subprocess.run(
        [sys.executable, str(VECTORS / "vault-v2" / "make.py"), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    expected = json.loads((out / "EXPECTED.json").read_text("utf-8"))
    admin = expected["users"]["admin"]["passphrase"]
    with Vault.open(out / "vault", user="admin", passphrase=admin.encode()) as v:
        catalog = v._session.read_catalog()
    (out / "vault" / "lock").unlink(missing_ok=True)
    (model_id,) = catalog["models"]
    return {
        "vault": out / "vault",
        "passphrase": admin,
        "shards": {name: d["objects"] for name, d in expected["datasets"].items()},
        "model": model_id,
        "parts": {part: ref["id"] for part, ref in catalog["models"][model_id]["objects"].items()},
    }


def path_of(vault: Path, object_id: str) -> Path:
    return vault / "objects" / object_id[:2] / object_id


def swap(vault: Path, a: str, b: str) -> None:
    first, second = path_of(vault, a), path_of(vault, b)
    data = first.read_bytes()
    first.write_bytes(second.read_bytes())
    second.write_bytes(data)


def duplicate(vault: Path, a: str, b: str) -> None:
    """`a`'s sealed bytes also stand where `b` was."""
    shutil.copyfile(path_of(vault, a), path_of(vault, b))


def drop(vault: Path, _: str, b: str) -> None:
    path_of(vault, b).unlink()


TAMPER: dict[str, Callable[[Path, str, str], None]] = {"swap": swap, "duplicate": duplicate, "drop": drop}


def strongroom(made: dict[str, Any], vault: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")}
    env.update(STRONGROOM_VAULT=str(vault), STRONGROOM_PASSPHRASE=made["passphrase"])
    return subprocess.run(
        [*launcher("waive"), *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
    )


def tampered_copy(made: dict[str, Any], tmp_path: Path, how: str, a: str, b: str) -> Path:
    vault = Path(shutil.copytree(made["vault"], tmp_path / "vault"))
    TAMPER[how](vault, a, b)
    return vault


def assert_integrity_error_naming(proc: subprocess.CompletedProcess[str], object_id: str) -> None:
    assert proc.returncode == 4, (proc.returncode, proc.stdout[-1000:], proc.stderr[-1000:])
    assert object_id in proc.stdout + proc.stderr, (proc.stdout[-1000:], proc.stderr[-1000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]


def test_the_untouched_copy_reads(made: dict[str, Any], tmp_path: Path) -> None:
    vault = Path(shutil.copytree(made["vault"], tmp_path / "vault"))
    proc = strongroom(made, vault, "verify", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = strongroom(made, vault, "show", "digits", "--sample", "60", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["digits", "notes"])
@pytest.mark.parametrize("how", sorted(TAMPER))
def test_shards_of_one_version_rearranged_are_an_integrity_error(
    made: dict[str, Any], tmp_path: Path, dataset: str, how: str
) -> None:
    first, second, _ = made["shards"][dataset]
    vault = tampered_copy(made, tmp_path, how, first, second)
    # the shard now wrong is `second` (dropped, or holding another shard's bytes); a swap also
    # leaves `first` wrong, and whichever is read first is named
    named = (first, second) if how == "swap" else (second,)
    read = strongroom(made, vault, "show", dataset, "--sample", "6", "--json")
    assert read.returncode == 4, (read.returncode, read.stdout[-1000:], read.stderr[-1000:])
    assert any(o in read.stderr + read.stdout for o in named), read.stderr[-1000:]
    assert "Traceback" not in read.stderr, read.stderr[-2000:]
    verify = strongroom(made, vault, "verify", "--json")
    for object_id in named:
        assert_integrity_error_naming(verify, object_id)


@pytest.mark.slow
@pytest.mark.parametrize("how", sorted(TAMPER))
def test_parts_of_one_model_rearranged_are_an_integrity_error(
    made: dict[str, Any], tmp_path: Path, how: str
) -> None:
    parts = made["parts"]
    vault = tampered_copy(made, tmp_path, how, parts["card.json"], parts["model.safetensors"])
    evaluate = strongroom(made, vault, "evaluate", made["model"], "digits", "--json")
    assert_integrity_error_naming(evaluate, parts["model.safetensors"])
    verify = strongroom(made, vault, "verify", "--json")
    assert_integrity_error_naming(verify, parts["model.safetensors"])
    if how == "swap":
        assert parts["card.json"] in verify.stdout + verify.stderr

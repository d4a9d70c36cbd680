"""docs/FORMAT.md is the contract: a reader written from it alone opens Strongroom's vaults.

docs/examples/read_vault.py (the standard library and `cryptography`, no Strongroom code) reads the
known-answer vaults (tests/vectors/vault-v2, made by format 2's code; the format 1 vaults beside it)
and a fresh vault made by this build, and refuses what the document says to refuse, as Strongroom
does. So the document, the reader and the code cannot drift apart unnoticed.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import REPO, VECTORS
from vault.errors import StrongroomError
from vault.storage.files import canonical_json

READER = REPO / "docs" / "examples" / "read_vault.py"
V2 = VECTORS / "vault-v2"
EXPECTED = json.loads((V2 / "EXPECTED.json").read_text("utf-8"))
ADMIN = EXPECTED["users"]["admin"]["passphrase"]


def _reader_module() -> Any:
    spec = importlib.util.spec_from_file_location("read_vault", READER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reader = _reader_module()


def read(vault: Path, user: str = "admin", passphrase: str = ADMIN, *, test_kdf: bool = True) -> Any:
    """Run the reader on `vault` in a fresh interpreter: the parsed JSON, or the refusal's text."""
    proc = subprocess.run(
        [sys.executable, "-I", str(READER), str(vault), "--user", user, "--passphrase-file", "-"]
        + (["--test-kdf"] if test_kdf else []),
        input=passphrase + "\n",
        text=True,
        capture_output=True,
        timeout=300,
    )
    if proc.returncode:
        assert proc.returncode == 1 and proc.stderr.startswith("refused: "), proc.stderr
        return proc.stderr
    return json.loads(proc.stdout)


def assert_reads_as_expected(got: dict[str, Any], expected: dict[str, Any], role: str = "admin") -> None:
    assert got["format"] == 2 and got["vault_id"] == expected["vault_id"] and got["role"] == role
    assert sorted(got["datasets"]) == sorted(expected["datasets"])
    assert sorted(got["models"]) == sorted(expected["models"])
    if role == "auditor":  # no data key: what the catalog lists, and nothing decrypted
        assert all(d["versions"] == [1] for d in got["datasets"].values())
        assert all(isinstance(m, str) for m in got["models"].values())
        return
    for name, want in expected["datasets"].items():
        (version,) = got["datasets"][name]["versions"]
        assert {key: version[key] for key in want} == want, name
    for model_id, want in expected["models"].items():
        model = got["models"][model_id]
        for key in ("model", "dataset", "parts", "weights_sha256", "tensors", "metadata"):
            assert model[key] == want[key], key
        assert model["card"]["model"]["id"] == want["card"]["model.id"]
        assert model["card"]["dataset"]["digest"] == want["card"]["dataset.digest"]


# ----------------------------------------------------------------------------- the reader stands alone
def test_the_reader_imports_only_the_standard_library_and_cryptography(tmp_path: Path) -> None:
    tree = ast.parse(READER.read_text("utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    outside = {name for name in imported if name.split(".")[0] not in sys.stdlib_module_names}
    assert outside and all(name.split(".")[0] == "cryptography" for name in outside), outside
    # And at run time: what a whole read loads (no Strongroom, numpy, safetensors or torch).
    (tmp_path / "pass").write_text(ADMIN + "\n")
    driver = (
        "import runpy, sys\n"
        f"sys.argv = ['read_vault', {str(V2 / 'vault')!r}, '--passphrase-file', {str(tmp_path / 'pass')!r},"
        " '--test-kdf']\n"
        "try:\n"
        f"    runpy.run_path({str(READER)!r}, run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names)), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-I", "-c", driver], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    loaded = set(ast.literal_eval(proc.stderr.strip().splitlines()[-1]))
    assert "cryptography" in loaded and not loaded & {"vault", "numpy", "safetensors", "torch", "tests"}
    # What the interpreter loads before any reader code (site's .pth hooks: setuptools', an editable
    # install's finder) is not the reader's.
    bare = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            "import sys; print(sorted({m.split('.')[0] for m in sys.modules}"
            " - set(sys.stdlib_module_names)))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    startup = set(ast.literal_eval(bare.stdout.strip()))
    assert loaded - startup <= {"cryptography", "_openssl", "_cffi_backend", "cffi"}, loaded - startup


# ----------------------------------------------------------------------------- it reads what Strongroom wrote
@pytest.mark.parametrize("user", sorted(EXPECTED["users"]))
def test_the_reader_opens_the_format2_vector_as_each_user(user: str) -> None:
    person = EXPECTED["users"][user]
    assert_reads_as_expected(read(V2 / "vault", user, person["passphrase"]), EXPECTED, person["role"])


@pytest.mark.parametrize(("vector", "user"), [("vault-v1", "admin"), ("vault-v1-users", "olivia")])
def test_the_reader_opens_the_format1_vectors_as_the_appendix_says(vector: str, user: str) -> None:
    expected = json.loads((VECTORS / vector / "EXPECTED.json").read_text())
    passphrase = expected.get("passphrase") or expected["users"][user]
    got = read(VECTORS / vector / "vault", user, passphrase)
    assert got["format"] == 1
    (version,) = got["datasets"][expected["dataset"]]["versions"]
    assert version["texts"] == expected["texts"] and version["labels"] == expected["labels"]
    assert version["digest"] == expected.get("digest", version["digest"])


def test_the_reader_opens_slots_carried_over_from_format1_before_their_users_adopt_them(
    tmp_path: Path,
) -> None:
    """After an admin's unlock upgraded vault-v1-users, olivia and aaron have not unlocked yet."""
    from vault.door import Vault

    expected = json.loads((VECTORS / "vault-v1-users" / "EXPECTED.json").read_text())
    vault = shutil.copytree(VECTORS / "vault-v1-users" / "vault", tmp_path / "vault")
    Vault.open(vault, user="admin", passphrase=expected["users"]["admin"].encode()).close()
    slots = {s["user"]: s for s in json.loads((vault / "vault.json").read_text())["slots"]}
    assert "sealed_signing" in slots["olivia"] and "wrapped_secrets" not in slots["olivia"]
    olivia = read(vault, "olivia", expected["users"]["olivia"])
    assert (olivia["format"], olivia["role"]) == (2, "operator")
    assert olivia["datasets"]["kat"]["versions"][0]["texts"] == expected["texts"]
    aaron = read(vault, "aaron", expected["users"]["aaron"])
    assert (aaron["role"], aaron["datasets"]["kat"]["versions"]) == ("auditor", [1])


@pytest.mark.slow
def test_the_reader_opens_a_vault_made_by_this_build(tmp_path: Path) -> None:
    """make.py run afresh: the same records give the vector's digests; all else is read as recorded."""
    proc = subprocess.run(
        [sys.executable, str(V2 / "make.py"), str(tmp_path)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    fresh = json.loads((tmp_path / "EXPECTED.json").read_text("utf-8"))
    for name, dataset in fresh["datasets"].items():
        assert dataset["digest"] == EXPECTED["datasets"][name]["digest"]
        assert dataset["shards"] == EXPECTED["datasets"][name]["shards"]
    assert_reads_as_expected(read(tmp_path / "vault"), fresh)
    olivia = fresh["users"]["olivia"]
    assert_reads_as_expected(read(tmp_path / "vault", "olivia", olivia["passphrase"]), fresh, "operator")


# ----------------------------------------------------------------------------- it refuses what it must
def _edit_header(edit: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def apply(vault: Path) -> None:
        header = json.loads((vault / "vault.json").read_text("utf-8"))
        edit(header)
        (vault / "vault.json").write_bytes(canonical_json(header))

    return apply


def _object(vault: Path, dataset: str = "digits", shard: int = 0) -> Path:
    object_id = EXPECTED["datasets"][dataset]["objects"][shard]
    return vault / "objects" / object_id[:2] / object_id


def _flip(vault: Path) -> None:
    data = bytearray(_object(vault).read_bytes())
    data[56 + 1000] ^= 0x01  # a byte inside chunk 0's ciphertext
    _object(vault).write_bytes(bytes(data))


def _role(user: str, role: str) -> Callable[[dict[str, Any]], None]:
    def edit(header: dict[str, Any]) -> None:
        next(slot for slot in header["slots"] if slot["user"] == user)["role"] = role

    return edit


TAMPERING: dict[str, tuple[Callable[[Path], None], str, str]] = {
    # name: (what is done to a copy of the vector, who opens it, what the reader says)
    "wrong passphrase": (lambda vault: None, "admin", "wrong passphrase"),
    "edited role": (_edit_header(_role("olivia", "admin")), "olivia", "signature is not the authority's"),
    "edited policy hash": (
        _edit_header(lambda h: h.update(policy_sha256="0" * 64)),
        "admin",
        "signature is not the authority's",
    ),
    "flipped chunk byte": (_flip, "admin", "chunk 0 fails authentication"),
    "trailing data": (
        lambda vault: _object(vault).write_bytes(_object(vault).read_bytes() + bytes(20)),
        "admin",
        "chunk 1 fails authentication",
    ),
    "cut at a chunk boundary": (
        lambda vault: _object(vault).write_bytes(_object(vault).read_bytes()[: 56 + 16384 + 16]),
        "admin",
        "truncated",
    ),
    "object moved to another name": (
        lambda vault: shutil.copyfile(_object(vault, shard=0), _object(vault, shard=1)),
        "admin",
        "key commitment does not match",
    ),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_the_reader_and_strongroom_refuse_tampering(case: str, tmp_path: Path) -> None:
    from vault.door import Vault

    tamper, user, says = TAMPERING[case]
    vault = tmp_path / "vault"
    shutil.copytree(V2 / "vault", vault)
    tamper(vault)
    passphrase = "not the passphrase" if case == "wrong passphrase" else EXPECTED["users"][user]["passphrase"]
    refusal = read(vault, user, passphrase)
    assert isinstance(refusal, str) and says in refusal, refusal
    try:  # Strongroom refuses it too: at the open, or its verification finds it
        with Vault.open(vault, user=user, passphrase=passphrase.encode()) as v:
            report = v.verify()
        assert not report["ok"], report
    except StrongroomError as exc:
        assert exc.exit_code in (4, 5), exc


def test_the_reader_refuses_the_test_only_kdf_parameters_unless_told() -> None:
    refusal = read(V2 / "vault", test_kdf=False)
    assert isinstance(refusal, str) and "outside the floor (19456, 2, 1)" in refusal


# ----------------------------------------------------------------------------- an interrupted change
def test_an_interrupted_policy_change_reads_the_same_to_the_reader_and_to_strongroom(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signed header committed, the catalog's rename did not: both take catalog.next.sealed."""
    from vault.door import Vault

    vault = tmp_path / "vault"
    shutil.copytree(V2 / "vault", vault)
    real_replace = os.replace

    def crash_at_the_rename(src: Any, dst: Any) -> None:
        if Path(src).name == "catalog.next.sealed":
            raise OSError("simulated crash between the header and the catalog's rename")
        real_replace(src, dst)

    with Vault.open(vault, user="admin", passphrase=ADMIN.encode()) as v:
        text = v.policy_show()["text"] + "\n# edited by the interrupted-change test\n"
        monkeypatch.setattr(os, "replace", crash_at_the_rename)
        with pytest.raises(OSError, match="simulated crash"):
            v.policy_set(text)
        monkeypatch.setattr(os, "replace", real_replace)
    assert (vault / "catalog.next.sealed").exists()
    got = read(vault)
    assert got["catalog"] == "catalog.next.sealed"
    assert got["datasets"]["digits"]["versions"][0]["digest"] == EXPECTED["datasets"]["digits"]["digest"]
    with Vault.open(vault, user="admin", passphrase=ADMIN.encode()) as v:
        assert v.policy_show()["text"] == text
    assert not (vault / "catalog.next.sealed").exists()
    assert read(vault)["catalog"] == "catalog.sealed"


def test_a_leftover_next_catalog_that_the_header_does_not_name_is_ignored(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    shutil.copytree(V2 / "vault", vault)
    (vault / "catalog.next.sealed").write_bytes(bytes(500))
    assert read(vault)["catalog"] == "catalog.sealed"


# ----------------------------------------------------------------------------- canonical JSON by the rules
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(JSON)
def test_the_documents_canonical_json_rules_are_what_strongroom_writes(value: Any) -> None:
    assert reader.canonical(value) == canonical_json(value)


@settings(max_examples=400, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_double_is_laid_out_by_the_rules(x: float) -> None:
    assert reader.canonical(x) == canonical_json(x)
    assert float(reader.canonical(x)) == x

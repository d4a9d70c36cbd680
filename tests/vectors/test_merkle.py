"""Merkle hashing and proofs against the transparency-dev RFC 6962 vectors (vendored in tests/vectors)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.support import VECTORS as VECTOR_ROOT
from vault.audit import merkle

VECTORS = VECTOR_ROOT / "rfc6962-merkle" / "testdata"

# The eight leaves behind the transparency-dev vectors (RFC 6962 reference test tree).
TEST_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
TEST_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
TEST_LEAF_HASHES = [merkle.leaf_hash(leaf) for leaf in TEST_LEAVES]


def _vector_files(kind: str) -> list[Path]:
    files = sorted((VECTORS / kind).rglob("*.json"))
    assert files, f"no {kind} vectors under {VECTORS}"
    return files


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def _proof(value: list[str] | None) -> list[bytes]:
    return [_b64(p) for p in value or []]


def test_empty_root_is_sha256_of_nothing() -> None:
    assert merkle.EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert merkle.root([]) == merkle.EMPTY_ROOT
    assert merkle.MerkleTree().root() == merkle.EMPTY_ROOT


def test_roots_of_reference_tree() -> None:
    tree = merkle.MerkleTree()
    for size, leaf in enumerate(TEST_LEAF_HASHES, start=1):
        tree.append(leaf)
        assert merkle.root(TEST_LEAF_HASHES[:size]).hex() == TEST_ROOTS[size - 1]
        assert tree.root().hex() == TEST_ROOTS[size - 1]
    assert [r.hex() for r in merkle.roots_by_size(TEST_LEAF_HASHES)[1:]] == TEST_ROOTS


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    assert merkle.leaf_hash(b"") == bytes.fromhex(
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    left, right = TEST_LEAF_HASHES[0], TEST_LEAF_HASHES[1]
    assert merkle.node_hash(left, right) != merkle.leaf_hash(left + right)


def test_compact_range_round_trip() -> None:
    tree = merkle.MerkleTree()
    for leaf in TEST_LEAF_HASHES[:7]:
        tree.append(leaf)
    assert len(tree.subtrees) == 3
    again = merkle.MerkleTree(tree.size, tree.subtrees)
    again.append(TEST_LEAF_HASHES[7])
    assert again.root().hex() == TEST_ROOTS[7]
    with pytest.raises(ValueError):
        merkle.MerkleTree(7, tree.subtrees[:2])


@pytest.mark.parametrize("path", _vector_files("inclusion"), ids=lambda p: str(p.relative_to(VECTORS)))
def test_inclusion_vectors(path: Path) -> None:
    v = json.loads(path.read_text())
    args = (_b64(v["leafHash"]), v["leafIdx"], v["treeSize"], _proof(v["proof"]), _b64(v["root"]))
    if v["wantErr"]:
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(*args)
    else:
        merkle.verify_inclusion(*args)


@pytest.mark.parametrize("path", _vector_files("consistency"), ids=lambda p: str(p.relative_to(VECTORS)))
def test_consistency_vectors(path: Path) -> None:
    v = json.loads(path.read_text())
    args = (v["size1"], v["size2"], _proof(v["proof"]), _b64(v["root1"]), _b64(v["root2"]))
    if v["wantErr"]:
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)


def test_vector_directories_are_all_exercised() -> None:
    inclusion, consistency = _vector_files("inclusion"), _vector_files("consistency")
    assert len(inclusion) > 50 and len(consistency) > 50
    assert any(json.loads(p.read_text())["wantErr"] for p in inclusion)
    assert not all(json.loads(p.read_text())["wantErr"] for p in consistency)


@pytest.mark.parametrize("kind", ["inclusion", "consistency"])
def test_generated_proofs_match_happy_path_vectors(kind: str) -> None:
    """Our proof generator reproduces every happy-path proof built on the reference tree."""
    checked = 0
    for path in _vector_files(kind):
        if path.name != "happy-path.json":
            continue
        v = json.loads(path.read_text())
        if kind == "inclusion":
            if _b64(v["root"]) != merkle.root(TEST_LEAF_HASHES[: v["treeSize"]]):
                continue
            got = merkle.inclusion_proof(TEST_LEAF_HASHES, v["leafIdx"], v["treeSize"])
        else:
            if _b64(v["root2"]) != merkle.root(TEST_LEAF_HASHES[: v["size2"]]):
                continue
            got = merkle.consistency_proof(TEST_LEAF_HASHES, v["size1"], v["size2"])
        assert got == _proof(v["proof"]), path
        checked += 1
    assert checked >= 4


def test_all_inclusion_and_consistency_proofs_on_reference_tree() -> None:
    for size in range(1, 9):
        r = bytes.fromhex(TEST_ROOTS[size - 1])
        for index in range(size):
            proof = merkle.inclusion_proof(TEST_LEAF_HASHES, index, size)
            merkle.verify_inclusion(TEST_LEAF_HASHES[index], index, size, proof, r)
            with pytest.raises(merkle.ProofError):
                merkle.verify_inclusion(TEST_LEAF_HASHES[index], index, size, proof, merkle.EMPTY_ROOT)
        for first in range(1, size + 1):
            proof = merkle.consistency_proof(TEST_LEAF_HASHES, first, size)
            merkle.verify_consistency(first, size, proof, bytes.fromhex(TEST_ROOTS[first - 1]), r)


def test_proof_generation_rejects_impossible_ranges() -> None:
    with pytest.raises(merkle.ProofError):
        merkle.inclusion_proof(TEST_LEAF_HASHES, 8, 8)
    with pytest.raises(merkle.ProofError):
        merkle.inclusion_proof(TEST_LEAF_HASHES, 0, 9)
    with pytest.raises(merkle.ProofError):
        merkle.consistency_proof(TEST_LEAF_HASHES, 0, 4)
    with pytest.raises(merkle.ProofError):
        merkle.consistency_proof(TEST_LEAF_HASHES, 5, 4)

"""Property tests: the fast Merkle code agrees with a literal recursive transcription of RFC 9162."""

from __future__ import annotations

from hashlib import sha256

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.audit import merkle


def ref_mth(data: list[bytes]) -> bytes:
    """MTH(D[n]) exactly as RFC 9162 section 2.1.1 writes it."""
    n = len(data)
    if n == 0:
        return sha256(b"").digest()
    if n == 1:
        return sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return sha256(b"\x01" + ref_mth(data[:k]) + ref_mth(data[k:])).digest()


def ref_path(m: int, data: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]), RFC 9162 section 2.1.3.1."""
    n = len(data)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return ref_path(m, data[:k]) + [ref_mth(data[k:])]
    return ref_path(m - k, data[k:]) + [ref_mth(data[:k])]


def ref_subproof(m: int, data: list[bytes], whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b), RFC 9162 section 2.1.4.1."""
    n = len(data)
    if m == n:
        return [] if whole else [ref_mth(data)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return ref_subproof(m, data[:k], whole) + [ref_mth(data[k:])]
    return ref_subproof(m - k, data[k:], False) + [ref_mth(data[:k])]


entries = st.lists(st.binary(max_size=24), min_size=0, max_size=70)
non_empty = st.lists(st.binary(max_size=24), min_size=1, max_size=70, unique=True)


@settings(deadline=None)  # timing on a shared machine is not what is tested
@given(entries)
def test_root_matches_reference(data: list[bytes]) -> None:
    leaves = [merkle.leaf_hash(d) for d in data]
    assert merkle.root(leaves) == ref_mth(data)


@settings(deadline=None)  # timing on a shared machine is not what is tested
@given(entries)
def test_incremental_tree_matches_reference_at_every_size(data: list[bytes]) -> None:
    tree = merkle.MerkleTree()
    assert tree.root() == ref_mth([])
    for i, d in enumerate(data, start=1):
        tree.append_data(d)
        assert tree.size == i
        assert tree.root() == ref_mth(data[:i])
        restored = merkle.MerkleTree(tree.size, tree.subtrees)
        assert restored.root() == tree.root()


@settings(deadline=None)  # timing on a shared machine is not what is tested
@given(non_empty, st.data())
def test_inclusion_proofs_match_reference_and_verify(data: list[bytes], draw: st.DataObject) -> None:
    size = draw.draw(st.integers(1, len(data)))
    index = draw.draw(st.integers(0, size - 1))
    leaves = [merkle.leaf_hash(d) for d in data]
    proof = merkle.inclusion_proof(leaves, index, size)
    assert proof == ref_path(index, data[:size])
    r = ref_mth(data[:size])
    merkle.verify_inclusion(leaves[index], index, size, proof, r)
    # Any other index, a wrong leaf or a changed sibling must fail.
    for other in {index - 1, index + 1} & set(range(size)):
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(leaves[index], other, size, proof, r)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(merkle.leaf_hash(data[index] + b"x"), index, size, proof, r)
    if proof:
        bad = list(proof)
        bad[-1] = bytes([bad[-1][0] ^ 1]) + bad[-1][1:]
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(leaves[index], index, size, bad, r)


@settings(deadline=None)  # timing on a shared machine is not what is tested
@given(non_empty, st.data())
def test_consistency_proofs_match_reference_and_verify(data: list[bytes], draw: st.DataObject) -> None:
    n = draw.draw(st.integers(1, len(data)))
    m = draw.draw(st.integers(1, n))
    leaves = [merkle.leaf_hash(d) for d in data]
    proof = merkle.consistency_proof(leaves, m, n)
    assert proof == ref_subproof(m, data[:n], True)
    # the leaves of a verified log are kept end to end in one bytes object: the same proof from them
    packed = merkle.Hashes(b"".join(leaves))
    assert merkle.consistency_proof(packed, m, n) == proof and list(packed) == leaves
    assert packed[-1] == leaves[-1] and list(packed[m:n]) == leaves[m:n] and len(packed[n:m]) == 0
    r1, r2 = ref_mth(data[:m]), ref_mth(data[:n])
    merkle.verify_consistency(m, n, proof, r1, r2)
    if m < n:
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(m, n, proof, r2, r2)
        bad = list(proof)
        bad[0] = bytes([bad[0][0] ^ 0x80]) + bad[0][1:]
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(m, n, bad, r1, r2)
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(m, n, proof[:-1], r1, r2)


@settings(max_examples=50, deadline=None)
@given(non_empty, st.data())
def test_rewritten_history_is_not_consistent(data: list[bytes], draw: st.DataObject) -> None:
    """A log whose first m entries were changed cannot prove it extends the original size-m tree."""
    n = draw.draw(st.integers(2, max(2, len(data) + 1)))
    data = (data + [b"pad"] * n)[:n]
    m = draw.draw(st.integers(1, n - 1))
    victim = draw.draw(st.integers(0, m - 1))
    forged = list(data)
    forged[victim] = data[victim] + b"!"
    forged_leaves = [merkle.leaf_hash(d) for d in forged]
    proof = merkle.consistency_proof(forged_leaves, m, n)
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(m, n, proof, ref_mth(data[:m]), ref_mth(forged))

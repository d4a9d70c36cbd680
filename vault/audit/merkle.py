"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and proof verification for the audit log.

Leaves and nodes are hashed with domain separation (0x00 for leaves, 0x01 for nodes) so a
leaf can never be passed off as an inner node. `MerkleTree` keeps only the compact range (one
root per perfect subtree, as many as there are set bits in the size), so appending is O(1)
amortised and the root at any size costs at most log2(size) hashes.

Glossary:
  leaf hash   SHA-256(0x00 || entry bytes)
  node hash   SHA-256(0x01 || left || right)
  MTH         Merkle Tree Hash: the root of the leaves 0..n-1; SHA-256("") for n = 0
  compact range  the roots of the perfect subtrees that make up a tree of size n, largest first
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from hashlib import sha256
from typing import Any

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = sha256(b"").digest()


class ProofError(ValueError):
    """A Merkle proof does not verify, or its parameters are impossible."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash of one entry's bytes."""
    return sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash."""
    return sha256(NODE_PREFIX + left + right).digest()


def _split_point(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2): where RFC 6962 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Merkle Tree Hash of already-hashed leaves.

    Pairs neighbours level by level and promotes a lone last node unchanged, which yields
    exactly the RFC 6962 left-balanced tree without recursion.
    """
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    while len(level) > 1:
        paired = [sha256(NODE_PREFIX + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


class Hashes(Sequence[bytes]):
    """Hashes kept end to end in one bytes object, read as a sequence of HASH_SIZE-byte hashes: a
    million leaves held without a million objects (made and freed only when a proof needs them)."""

    __slots__ = ("_blob",)

    def __init__(self, blob: bytes) -> None:
        if len(blob) % HASH_SIZE:
            raise ValueError(f"{len(blob)} bytes are not whole {HASH_SIZE}-byte hashes")
        self._blob = blob

    def __len__(self) -> int:
        return len(self._blob) // HASH_SIZE

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            return Hashes(self._blob[start * HASH_SIZE : max(start, stop) * HASH_SIZE])
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("hash index out of range")
        return self._blob[index * HASH_SIZE : (index + 1) * HASH_SIZE]

    def __iter__(self) -> Iterator[bytes]:
        blob = self._blob
        return (blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE))


class MerkleTree:
    """Append-only tree state held as a compact range of perfect subtree roots."""

    __slots__ = ("_size", "_subtrees")

    def __init__(self, size: int = 0, subtrees: Sequence[bytes] = ()) -> None:
        if size < 0 or len(subtrees) != bin(size).count("1"):
            raise ValueError(f"a compact range for size {size} has {bin(size).count('1')} subtree roots")
        if any(len(h) != HASH_SIZE for h in subtrees):
            raise ValueError("subtree roots must be 32-byte hashes")
        self._size = size
        self._subtrees = list(subtrees)

    @property
    def size(self) -> int:
        return self._size

    @property
    def subtrees(self) -> list[bytes]:
        """The compact range, largest subtree first (a copy)."""
        return list(self._subtrees)

    def copy(self) -> MerkleTree:
        return MerkleTree(self._size, self._subtrees)

    def append(self, leaf: bytes) -> None:
        """Append one leaf hash (not raw data: use leaf_hash first)."""
        stack = self._subtrees
        stack.append(leaf)
        self._size += 1
        n = self._size
        while not n & 1:
            right = stack.pop()
            stack[-1] = sha256(NODE_PREFIX + stack[-1] + right).digest()
            n >>= 1

    def append_data(self, data: bytes) -> bytes:
        """Hash `data` as a leaf, append it and return the leaf hash."""
        leaf = sha256(LEAF_PREFIX + data).digest()
        self.append(leaf)
        return leaf

    def root(self) -> bytes:
        """Root of the tree at its current size."""
        stack = self._subtrees
        if not stack:
            return EMPTY_ROOT
        acc = stack[-1]
        for i in range(len(stack) - 2, -1, -1):
            acc = sha256(NODE_PREFIX + stack[i] + acc).digest()
        return acc


def roots_by_size(leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Roots at every size 0..n (n + 1 values), computed incrementally."""
    tree = MerkleTree()
    out = [EMPTY_ROOT]
    for leaf in leaf_hashes:
        tree.append(leaf)
        out.append(tree.root())
    return out


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, size: int) -> list[bytes]:
    """Audit path for leaf `index` in the tree of the first `size` leaves (RFC 9162 2.1.3.1)."""
    if not 0 <= index < size <= len(leaf_hashes):
        raise ProofError(f"no leaf {index} in a tree of size {size} (have {len(leaf_hashes)} leaves)")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split_point(hi - lo)
        if index < lo + k:
            path.append(root(leaf_hashes[lo + k : hi]))
            hi = lo + k
        else:
            path.append(root(leaf_hashes[lo : lo + k]))
            lo += k
    path.reverse()
    return path


def consistency_proof(leaf_hashes: Sequence[bytes], m: int, n: int) -> list[bytes]:
    """Proof that the tree of size m is a prefix of the tree of size n (RFC 9162 2.1.4.1)."""
    if not 0 < m <= n <= len(leaf_hashes):
        raise ProofError(f"no consistency proof from size {m} to {n} (have {len(leaf_hashes)} leaves)")
    path: list[bytes] = []
    lo, hi = 0, n
    first_is_whole_subtree = True
    while True:
        if m == hi - lo:
            if not first_is_whole_subtree:
                path.append(root(leaf_hashes[lo:hi]))
            break
        k = _split_point(hi - lo)
        if m <= k:
            path.append(root(leaf_hashes[lo + k : hi]))
            hi = lo + k
        else:
            path.append(root(leaf_hashes[lo : lo + k]))
            lo += k
            m -= k
            first_is_whole_subtree = False
    path.reverse()
    return path


def _check_path(proof: Sequence[bytes]) -> None:
    if any(len(h) != HASH_SIZE for h in proof):
        raise ProofError(f"proof holds a hash that is not {HASH_SIZE} bytes")


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes
) -> None:
    """Check an inclusion proof (RFC 9162 2.1.3.2); raises ProofError when it does not hold."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    if len(leaf) != HASH_SIZE:
        raise ProofError(f"leaf hash has {len(leaf)} bytes, not {HASH_SIZE}")
    _check_path(proof)
    fn, sn = index, size - 1
    acc = leaf
    for sibling in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            acc = node_hash(sibling, acc)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            acc = node_hash(acc, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    if acc != expected_root:
        raise ProofError("inclusion proof leads to a different root")


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Check that the tree (size1, root1) is a prefix of (size2, root2) (RFC 9162 2.1.4.2).

    A consistency check from the empty tree proves nothing and is refused, as RFC 9162 only
    defines proofs for 0 < size1 <= size2. Raises ProofError when the proof does not hold.
    """
    if size1 <= 0:
        raise ProofError("a consistency proof needs a first tree of at least one leaf")
    if size2 < size1:
        raise ProofError(f"second tree size {size2} is smaller than the first {size1}")
    if size1 == size2:
        if proof:
            raise ProofError("trees of equal size need an empty consistency proof")
        if root1 != root2:
            raise ProofError("trees of equal size have different roots")
        return
    if not proof:
        raise ProofError("empty consistency proof for trees of different sizes")
    _check_path(proof)
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    first_acc = second_acc = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than expected")
        if fn & 1 or fn == sn:
            first_acc = node_hash(c, first_acc)
            second_acc = node_hash(c, second_acc)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            second_acc = node_hash(second_acc, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than expected")
    if first_acc != root1:
        raise ProofError("consistency proof does not lead to the first root")
    if second_acc != root2:
        raise ProofError("consistency proof does not lead to the second root")

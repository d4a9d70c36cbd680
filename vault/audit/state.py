"""Where the audit log ends and its Merkle tree state there, cached in `state.json` so appends and
checkpoints need not hash the whole log again; checked before use, rebuilt when wrong."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vault.audit import merkle


@dataclass
class TreeState:
    """Where the log ends and its tree state there; `torn` is (offset, bytes) of a partial last line."""

    size: int = 0
    offset: int = 0
    tree: merkle.MerkleTree = field(default_factory=merkle.MerkleTree)
    last_leaf: bytes = b""
    last_len: int = 0
    torn: tuple[int, bytes] | None = None
    signed: dict[str, Any] | None = None  # size, byte offset and compact range at the last checkpoint

    def add(self, line: bytes) -> None:
        """Account for one complete line (without its newline)."""
        self.last_leaf = self.tree.append_data(line)
        self.size += 1
        self.offset += len(line) + 1
        self.last_len = len(line) + 1

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "offset": self.offset,
            "subtrees": [h.hex() for h in self.tree.subtrees],
            "last_leaf": self.last_leaf.hex(),
            "last_len": self.last_len,
            "signed": self.signed,
        }

    @classmethod
    def from_json(cls, obj: Any) -> TreeState | None:
        try:
            tree = merkle.MerkleTree(obj["size"], [bytes.fromhex(h) for h in obj["subtrees"]])
            signed = obj.get("signed")
            return cls(
                obj["size"],
                int(obj["offset"]),
                tree,
                bytes.fromhex(obj["last_leaf"]),
                int(obj["last_len"]),
                signed=signed if isinstance(signed, dict) else None,
            )
        except (KeyError, TypeError, ValueError):
            return None


def split_lines(data: bytes) -> tuple[list[bytes], bytes]:
    """Complete lines (without newlines) and the bytes after the last newline (a torn tail)."""
    lines = data.split(b"\n")
    return lines, lines.pop()

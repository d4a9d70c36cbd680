"""Data-independent text tokenisation: words and word n-grams hashed into a fixed number of buckets.

No vocabulary is built from the records (a vocabulary would disclose which words the private texts
contain, outside DP-SGD). The hash is CRC-32, stable across processes and machines; id 0 is padding.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class HashingTokenizer:
    """Lower-cased words plus n-grams up to `ngrams`, hashed to ids in [1, buckets)."""

    buckets: int = 1 << 15
    ngrams: int = 2
    max_tokens: int = 128

    def to_json(self) -> dict:
        return {"kind": "hashed-ngrams", "hash": "crc32", **asdict(self)}

    @classmethod
    def from_json(cls, data: dict) -> HashingTokenizer:
        return cls(
            buckets=int(data["buckets"]), ngrams=int(data["ngrams"]), max_tokens=int(data["max_tokens"])
        )

    def ids(self, text: str) -> list[int]:
        words = _WORD.findall(text.lower())
        grams: list[str] = []
        for end in range(1, len(words) + 1):
            grams.extend(" ".join(words[end - n : end]) for n in range(1, min(self.ngrams, end) + 1))
            if len(grams) >= self.max_tokens:
                break
        span = self.buckets - 1
        return [zlib.crc32(g.encode("utf-8")) % span + 1 for g in grams[: self.max_tokens]]

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, max_tokens) int64 ids, zero-padded; an empty text becomes all padding."""
        out = torch.zeros(len(texts), self.max_tokens, dtype=torch.int64)
        for row, text in enumerate(texts):
            ids = self.ids(text)
            if ids:
                out[row, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
        return out

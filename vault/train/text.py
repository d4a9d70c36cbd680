"""Data-independent text tokenisation: words and word n-grams hashed into a fixed number of buckets.

No vocabulary is built from the records (a vocabulary would disclose which words the private texts
contain, outside DP-SGD). The hash is CRC-32, stable across processes and machines; id 0 is padding.
Two optional steps are fixed lists and rules, chosen before any record is seen: `stop_words` drops
the words of a published list (English function words, `ENGLISH_STOP_WORDS`), and `digits` "zero"
writes every digit as 0, so a number's shape is a token and not the number itself. `bow` uses both
under DP (docs/TRAINING.md).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vault.errors import UsageError

if TYPE_CHECKING:
    import torch

_WORD = re.compile(r"\w+", re.UNICODE)
_DIGIT = re.compile(r"\d", re.UNICODE)

# English function words: articles, pronouns, auxiliaries, prepositions, conjunctions, and the
# pieces \w+ leaves of contractions (it's -> it, s). Fixed here, the shape of NLTK's English list;
# nothing about any records chose it.
ENGLISH_STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just
    me more most my myself no nor not now of off on once only or other our ours ourselves out over
    own same she should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where which while who
    whom why will with would you your yours yourself yourselves s t d ll m re ve""".split()
)
STOP_WORDS = {"english": ENGLISH_STOP_WORDS}
DIGITS = ("keep", "zero")


@dataclass(frozen=True)
class HashingTokenizer:
    """Lower-cased words (less `stop_words`' list, digits as 0 where `digits` is "zero") plus
    n-grams up to `ngrams`, hashed to ids in [1, buckets)."""

    buckets: int = 1 << 15
    ngrams: int = 2
    max_tokens: int = 128
    stop_words: str | None = None  # a name in STOP_WORDS, or None: every word is kept
    digits: str = "keep"  # "zero": each digit of a word becomes 0

    def __post_init__(self) -> None:
        if self.stop_words is not None and self.stop_words not in STOP_WORDS:
            raise UsageError(
                f"unknown stop-word list {self.stop_words!r}", f"use one of: {', '.join(STOP_WORDS)}"
            )
        if self.digits not in DIGITS:
            raise UsageError(f"unknown digits rule {self.digits!r}", f"use one of: {', '.join(DIGITS)}")

    def to_json(self) -> dict:
        """The config's description; the two optional steps only where they are on, so a tokenizer
        without them is described as before they existed."""
        out = {
            "kind": "hashed-ngrams",
            "hash": "crc32",
            "buckets": self.buckets,
            "ngrams": self.ngrams,
            "max_tokens": self.max_tokens,
        }
        if self.stop_words is not None:
            out["stop_words"] = self.stop_words
        if self.digits != "keep":
            out["digits"] = self.digits
        return out

    @classmethod
    def from_json(cls, data: dict) -> HashingTokenizer:
        return cls(
            buckets=int(data["buckets"]),
            ngrams=int(data["ngrams"]),
            max_tokens=int(data["max_tokens"]),
            stop_words=data.get("stop_words"),
            digits=data.get("digits", "keep"),
        )

    def words(self, text: str) -> list[str]:
        words = _WORD.findall(text.lower())
        if self.stop_words is not None:
            stop = STOP_WORDS[self.stop_words]
            words = [w for w in words if w not in stop]
        if self.digits == "zero":
            words = [_DIGIT.sub("0", w) for w in words]
        return words

    def ids(self, text: str) -> list[int]:
        words = self.words(text)
        grams: list[str] = []
        for end in range(1, len(words) + 1):
            grams.extend(" ".join(words[end - n : end]) for n in range(1, min(self.ngrams, end) + 1))
            if len(grams) >= self.max_tokens:
                break
        span = self.buckets - 1
        return [zlib.crc32(g.encode("utf-8")) % span + 1 for g in grams[: self.max_tokens]]

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, max_tokens) int64 ids, zero-padded; an empty text becomes all padding."""
        import torch  # here, so the tokenizer's settings are read without torch (vault/train/recipes.py)

        out = torch.zeros(len(texts), self.max_tokens, dtype=torch.int64)
        for row, text in enumerate(texts):
            ids = self.ids(text)
            if ids:
                out[row, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
        return out

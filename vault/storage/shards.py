"""Decoded records as tensor shards: safetensors bytes, split so import never holds two copies.

Image shards hold `images` (uint8, N x C x H x W) and `labels` (int64). Text shards hold `utf8`
(uint8, the records' UTF-8 bytes back to back), `offsets` (int64, N+1) and `labels`. The content
digest covers the records and labels, not the shard boundaries, so the same records always give
the same digest whatever their name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from vault.errors import IntegrityError
from vault.storage.files import canonical_json as _canonical

SHARD_BYTES = 32 * 1024 * 1024


def content_digest(
    kind: str, classes: list[str], labels: np.ndarray, images: np.ndarray | None, texts: list[str] | None
) -> str:
    h = hashlib.sha256()
    h.update(_canonical({"kind": kind, "classes": classes}))
    h.update(np.ascontiguousarray(labels, dtype="<i8").tobytes())
    if images is not None:
        h.update(_canonical([int(d) for d in images.shape]))
        h.update(memoryview(np.ascontiguousarray(images)).cast("B"))
    else:
        for text in texts or []:
            data = text.encode("utf-8")
            h.update(len(data).to_bytes(8, "little"))
            h.update(data)
    return "sha256:" + h.hexdigest()


def image_shards(images: np.ndarray, labels: np.ndarray) -> Iterator[tuple[int, int, bytes]]:
    per = max(1, SHARD_BYTES // max(1, int(np.prod(images.shape[1:]))))
    for start in range(0, len(labels), per):
        stop = min(len(labels), start + per)
        yield (
            start,
            stop,
            st_save(
                {
                    "images": np.ascontiguousarray(images[start:stop]),
                    "labels": np.ascontiguousarray(labels[start:stop], dtype=np.int64),
                }
            ),
        )


def text_shards(texts: list[str], labels: np.ndarray) -> Iterator[tuple[int, int, bytes]]:
    start = 0
    while start < len(texts):
        chunks: list[bytes] = []
        size = 0
        stop = start
        while stop < len(texts) and (size < SHARD_BYTES or stop == start):
            data = texts[stop].encode("utf-8")
            chunks.append(data)
            size += len(data)
            stop += 1
        offsets = np.zeros(len(chunks) + 1, dtype=np.int64)
        np.cumsum([len(c) for c in chunks], out=offsets[1:])
        yield (
            start,
            stop,
            st_save(
                {
                    "utf8": np.frombuffer(b"".join(chunks), dtype=np.uint8).copy(),
                    "offsets": offsets,
                    "labels": np.ascontiguousarray(labels[start:stop], dtype=np.int64),
                }
            ),
        )
        start = stop


@dataclass
class ShardContent:
    labels: np.ndarray
    images: np.ndarray | None = None
    texts: list[str] | None = None


def unpack(kind: str, data: bytes, where: str) -> ShardContent:
    try:
        tensors: dict[str, Any] = st_load(data)
        labels = tensors["labels"]
        if kind == "image":
            images = tensors["images"]
            if images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(labels):
                raise ValueError("shape")
            return ShardContent(labels=labels, images=images)
        raw = tensors["utf8"].tobytes()
        offsets = tensors["offsets"].tolist()
        if len(offsets) != len(labels) + 1:
            raise ValueError("offsets")
        return ShardContent(
            labels=labels,
            texts=[raw[a:b].decode("utf-8") for a, b in zip(offsets, offsets[1:], strict=False)],
        )
    except (
        KeyError,
        ValueError,
        UnicodeDecodeError,
        Exception,
    ) as exc:  # safetensors raises its own error type
        if isinstance(exc, IntegrityError):
            raise
        raise IntegrityError(
            f"{where} authenticated but does not hold a valid shard",
            "the vault was written by an incompatible build; restore it from a backup",
        ) from None

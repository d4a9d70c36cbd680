"""Model weights as safetensors bytes (never pickle): a flat map of names to tensors plus a small
string header, so loading weights cannot run code.

The bytes are canonical: the same weights and config give the same file, so `weights_sha256` names
the weights. safetensors writes its header's metadata from a Rust HashMap, whose order changes from
one map to the next (a new random hash key each time); the header is rewritten here with its keys
sorted and no spaces, padded with spaces to a multiple of 8 bytes as safetensors pads it."""

from __future__ import annotations

import json
import struct
from typing import Any

import torch
from safetensors.torch import load as _load
from safetensors.torch import save as _save

from vault.errors import IntegrityError


def weights_to_bytes(
    state_dict: dict[str, torch.Tensor], model_config: dict[str, Any] | None = None
) -> bytes:
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in state_dict.items()}
    metadata = {"format": "strongroom-weights-1"}
    if model_config is not None:
        metadata["model_config"] = json.dumps(model_config, sort_keys=True)
    return _canonical(_save(tensors, metadata=metadata))


def _canonical(blob: bytes) -> bytes:
    """The same file with its JSON header in one order: keys sorted, compact, space-padded so the
    data still starts at a multiple of 8 bytes. Data offsets count from the data's start, so they
    stay as they are."""
    size = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8 : 8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)
    return struct.pack("<Q", len(text)) + text + blob[8 + size :]


def weights_from_bytes(blob: bytes) -> dict[str, torch.Tensor]:
    try:
        return dict(_load(blob))
    except Exception as error:  # safetensors raises its own error types for malformed input
        raise IntegrityError(
            "the model weights are not valid safetensors", "the model object is damaged"
        ) from error

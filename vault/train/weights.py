"""Model weights as safetensors bytes (never pickle): a flat map of names to tensors plus a small
string header, so loading weights cannot run code."""

from __future__ import annotations

import json
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
    return _save(tensors, metadata=metadata)


def weights_from_bytes(blob: bytes) -> dict[str, torch.Tensor]:
    try:
        return dict(_load(blob))
    except Exception as error:  # safetensors raises its own error types for malformed input
        raise IntegrityError(
            "the model weights are not valid safetensors", "the model object is damaged"
        ) from error

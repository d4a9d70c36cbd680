"""Model weights as bytes: the same weights and config give the same bytes, every call and every
process, so a reproducible run's `weights_sha256` (audit log, card) names its weights and nothing
else. safetensors writes its metadata from a Rust HashMap, whose order changes from map to map."""

from __future__ import annotations

import hashlib
import json
import struct

import torch
from safetensors import safe_open
from safetensors.torch import load

from vault.train.weights import weights_from_bytes, weights_to_bytes

CONFIG = {"name": "scatternet", "classes": 10, "input_shape": [1, 28, 28], "order": 1}


def state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return {
        "classifier.weight": torch.randn(10, 33, generator=g),
        "classifier.bias": torch.randn(10, generator=g),
        "Norm.scale": torch.randn(7, generator=g).double(),
    }


def test_the_same_weights_give_the_same_bytes_every_time() -> None:
    digests = {hashlib.sha256(weights_to_bytes(state(), CONFIG)).hexdigest() for _ in range(32)}
    assert len(digests) == 1, f"{len(digests)} different files for one set of weights"


def test_the_bytes_are_standard_safetensors_with_the_metadata(tmp_path) -> None:
    blob = weights_to_bytes(state(), CONFIG)
    size = struct.unpack("<Q", blob[:8])[0]
    assert (8 + size) % 8 == 0  # the data starts aligned, as safetensors writes it
    header = json.loads(blob[8 : 8 + size])
    assert list(header) == sorted(header)
    assert header["__metadata__"] == {
        "format": "strongroom-weights-1",
        "model_config": json.dumps(CONFIG, sort_keys=True),
    }
    loaded = load(blob)
    assert loaded.keys() == state().keys()
    assert all(torch.equal(loaded[k], v) for k, v in state().items())
    assert all(torch.equal(weights_from_bytes(blob)[k], v) for k, v in state().items())
    (tmp_path / "w.safetensors").write_bytes(blob)
    with safe_open(tmp_path / "w.safetensors", "pt") as opened:
        assert json.loads(opened.metadata()["model_config"]) == CONFIG

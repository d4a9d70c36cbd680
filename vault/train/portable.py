"""Models that run outside the room: a trained model as an ONNX graph, and preprocess.json, the plain
description of how a raw input becomes the graph's input and its output a label.

Both are written from the model itself (its config, its tokenizer's own description, its `prepare`),
so a changed model cannot leave a stale description behind: a preparation this module cannot describe
is refused, never guessed. The graph takes what a deployment has: for images the decoded pixels,
uint8 (N, C, H, W), with the model's fixed scaling (and, for scatternet, the wavelet scattering, whose
filters are fixed by formula) inside the graph; for text the hashed token ids, int64 (N, max_tokens).
The batch dimension is dynamic. The graph's weights are exactly those of model.safetensors.
"""

from __future__ import annotations

import importlib.util
import io
import warnings
from collections.abc import Sequence
from typing import Any

import torch

from vault.errors import StrongroomError
from vault.train.evaluate import load_model
from vault.train.text import STOP_WORDS

# ONNX opset 17: the first with LayerNormalization, read by every ONNX Runtime since 1.13 (2022).
OPSET = 17
# torch's TorchScript-based exporter (dynamo=False) needs only the `onnx` package; the dynamo
# exporter would also need onnxscript.
EXPORTER = "torch.onnx.export (TorchScript-based, dynamo=False)"
PREPROCESS_FORMAT = "strongroom-preprocess-1"
IMAGE_INPUT, TEXT_INPUT, OUTPUT = "pixels", "ids", "logits"


class _Deployed(torch.nn.Module):
    """The model with its per-record preparation in front (images only): pixels in, logits out.

    The model's children are registered under their own names, so the graph's initializers carry
    the same names as the tensors of model.safetensors."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        for name, child in model.named_children():
            self.add_module(name, child)
        object.__setattr__(self, "inner", model)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.inner(self.inner.prepare(pixels))


def onnx_model(state_dict: dict[str, torch.Tensor], config: dict[str, Any]) -> bytes:
    """The ONNX graph of a trained model, its batch dimension dynamic."""
    if importlib.util.find_spec("onnx") is None:
        raise StrongroomError(
            "cannot write model.onnx: the onnx package, which torch's exporter needs, is not installed",
            "install Strongroom's dependencies again (make setup)",
        )
    model = load_model(state_dict, config, "cpu")
    if config["kind"] == "image":
        graph: torch.nn.Module = _Deployed(model)
        example = torch.zeros(2, *config["input_shape"], dtype=torch.uint8)
        name = IMAGE_INPUT
    else:
        graph = model
        example = torch.zeros(2, model.tokenizer.max_tokens, dtype=torch.int64)
        name = TEXT_INPUT
    out = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The exporter warns that it is deprecated and that tracing fixes shapes; the batch stays
        # dynamic (the tests run other batch sizes) and every other shape is fixed by the config.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            (example,),
            out,
            dynamo=False,
            opset_version=OPSET,
            input_names=[name],
            output_names=[OUTPUT],
            dynamic_axes={name: {0: "batch"}, OUTPUT: {0: "batch"}},
            do_constant_folding=False,
        )
    return out.getvalue()


def _undescribable(what: str) -> StrongroomError:
    return StrongroomError(
        f"the model's input preparation cannot be described for use outside the vault: {what}",
        "export needs a model whose preparation preprocess.json can state exactly; see docs/EXPORT.md",
    )


def _image_scaling(model: torch.nn.Module, config: dict[str, Any]) -> dict[str, Any]:
    """What the graph does to the pixels, checked against the model's own `prepare`."""
    channels, height, width = config["input_shape"]
    probe = torch.arange(channels * height * width * 2, dtype=torch.int64).remainder(256)
    probe = probe.to(torch.uint8).reshape(2, channels, height, width)
    prepared = model.prepare(probe)
    scattering = getattr(model, "scattering", None)
    if scattering is not None:
        if not torch.equal(prepared, scattering(probe.float() / 255.0)):
            raise _undescribable("scatternet's prepare is no longer pixels / 255 then scattering")
        return {
            "formula": "pixels / 255, then the wavelet scattering transform (in the graph)",
            "scale": 255,
            "mean": 0.0,
            "std": 1.0,
            "scattering": {
                "scales": 2,
                "orientations": scattering.orientations,
                "order": scattering.order,
                "filters": "Morlet and Gaussian, fixed by formula (vault/train/scatter.py); "
                "constants of the graph, not learned",
            },
        }
    norm = config.get("normalisation") or {}
    scale, mean, std = float(norm.get("scale", 0)), float(norm.get("mean", 0)), float(norm.get("std", 0))
    if not (scale and std) or not torch.allclose(prepared, (probe.float() / scale - mean) / std):
        raise _undescribable("the image scaling is not (pixels / scale - mean) / std")
    return {"formula": f"(pixels / {scale:g} - {mean:g}) / {std:g}", "scale": scale, "mean": mean, "std": std}


# How ingest (vault/ingest/pixels.py, `render`) turns an image file into the uint8 pixels the model
# was trained on; predict.py does the same, and the export test holds them to each other.
IMAGE_DECODING = {
    "formats": ["PNG", "JPEG", "BMP", "GIF"],
    "orientation": "the EXIF orientation tag is applied (transposed as Pillow's ImageOps.exif_transpose)",
    "frames": "a GIF gives its first frame",
    "sixteen_bit_grey": "16-bit grey keeps its top 8 bits (value >> 8)",
    "colour": "alpha is dropped; an image whose pixels (or palette) are all grey is read as grey ('L'), "
    "others as 'RGB'; grey is repeated into 3 channels when the model takes 3",
    "resize": {
        "method": "bilinear",
        "library": "Pillow: image.resize((width, height), Image.Resampling.BILINEAR)",
        "aspect_ratio": "not kept",
        "jpeg_draft": "a JPEG of another size is first decoded at a reduced scale by Pillow's "
        "image.draft(None, (width, height)), before orientation and resize",
    },
    "layout": "NCHW: channels first (R, G, B for colour), rows top to bottom",
}


def _text_tokenizer(model: torch.nn.Module) -> dict[str, Any]:
    described = dict(model.tokenizer.to_json())
    if described.get("kind") != "hashed-ngrams" or described.get("hash") != "crc32":
        raise _undescribable(f"tokenizer {described.get('kind')!r} with hash {described.get('hash')!r}")
    buckets, ngrams, max_tokens = described["buckets"], described["ngrams"], described["max_tokens"]
    steps: dict[str, Any] = {}
    if described.get("stop_words") is not None:
        steps["stop_word_list"] = sorted(STOP_WORDS[described["stop_words"]])
        steps["stop_words_rule"] = "a word equal to one in stop_word_list is dropped"
    if described.get("digits") == "zero":
        steps["digits_rule"] = (
            r"then each character of a word that the regular expression \d matches (Python re, "
            "Unicode) becomes 0"
        )
    return {
        **described,
        "seed": None,
        "lowercase": "Python's str.lower() on the whole text",
        "words": r"the matches of the regular expression \w+ (Python re, Unicode), in order",
        **steps,
        "ngrams_order": f"for each word position i from the first: the n-grams ending at word i for n = 1 "
        f"to min({ngrams}, i), the words of each joined by one space",
        "hash_function": "CRC-32 (zlib.crc32, ISO-HDLC polynomial, initial value 0, no seed) of the "
        "n-gram's UTF-8 bytes",
        "id": f"crc32 % {buckets - 1} + 1 (ids 1..{buckets - 1}; 0 is padding)",
        "truncation": f"the first {max_tokens} n-grams in that order; the rest are dropped",
        "padding": f"ids are zero-padded on the right to {max_tokens}; an empty text is all padding",
    }


def preprocess(config: dict[str, Any], classes: Sequence[str], state_dict: dict[str, torch.Tensor]) -> dict:
    """preprocess.json: from a raw input to the graph's input, and from its output to a label."""
    model = load_model(state_dict, config, "cpu")
    document: dict[str, Any] = {
        "format": PREPROCESS_FORMAT,
        "kind": config["kind"],
        "architecture": config["name"],
        "onnx": {"file": "model.onnx", "opset": OPSET, "exporter": f"{EXPORTER}, torch {torch.__version__}"},
        "classes": list(classes),
        "output": {
            "name": OUTPUT,
            "dtype": "float32",
            "shape": ["batch", len(classes)],
            "meaning": "one logit per class, in the order of `classes`; probabilities are their softmax; "
            "the label is the class of the largest logit",
        },
    }
    if config["kind"] == "image":
        channels, height, width = config["input_shape"]
        document["input"] = {
            "name": IMAGE_INPUT,
            "dtype": "uint8",
            "shape": ["batch", channels, height, width],
        }
        document["image"] = {
            "height": height,
            "width": width,
            "channels": channels,
            "mode": "L" if channels == 1 else "RGB",
            **IMAGE_DECODING,
            "normalisation": {"in_graph": True, **_image_scaling(model, config)},
        }
    else:
        tokenizer = _text_tokenizer(model)
        document["input"] = {
            "name": TEXT_INPUT,
            "dtype": "int64",
            "shape": ["batch", tokenizer["max_tokens"]],
        }
        document["text"] = {"tokenizer": tokenizer}
    return document


def card_section(document: dict[str, Any]) -> dict[str, Any]:
    """What the exported card says about model.onnx."""
    return {
        "file": "model.onnx",
        "opset": OPSET,
        "exporter": document["onnx"]["exporter"],
        "input": document["input"],
        "output": {k: document["output"][k] for k in ("name", "dtype", "shape")},
        "preprocess": "preprocess.json",
    }


__all__ = ["OPSET", "card_section", "onnx_model", "preprocess"]

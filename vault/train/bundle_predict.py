"""predict.py: run an exported Strongroom model on image files or lines of text, without Strongroom.

Needs Python 3.10+ with numpy, pillow and onnxruntime only:

    python -m pip install numpy pillow onnxruntime
    python predict.py --bundle DIR photo1.png photo2.jpg          # an image model
    python predict.py --bundle DIR messages.txt                   # a text model: one text per line
    python predict.py --bundle DIR --text "free prize, reply now"  # a text model: texts as arguments
    python predict.py --bundle DIR --json INPUT...                # JSON lines, with the logits

Each input gives one line: the input (for a text file, FILE:LINE), the label, its probability,
separated by tabs. Blank lines of a text file are skipped; `-` reads the texts from standard input.

Before it loads anything, predict.py checks every file the bundle's MANIFEST.sha256 names against
its SHA-256 and stops if one differs or is missing. That shows the files are those the manifest
names, not who made them: check the manifest's signatures first (docs/EXPORT.md), e.g.

    openssl pkeyutl -verify -pubin -inkey signer.pub.pem -rawin -in MANIFEST.sha256 -sigfile MANIFEST.sig

Every step from a raw input to the model's input is stated in preprocess.json; this file is that
description, run. Exit codes: 0 done, 1 an input could not be read, 2 usage, 3 the bundle failed
its check.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import struct
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np

REQUIRED = ("model.onnx", "preprocess.json", "predict.py")
BATCH = 64
_WORD = re.compile(r"\w+", re.UNICODE)
_DIGIT = re.compile(r"\d", re.UNICODE)
_GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_WIDE_GREY_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}


class Refused(Exception):
    """A problem to report in one line, with the exit code it ends with."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def check_bundle(bundle: Path) -> None:
    """Every file MANIFEST.sha256 names has its SHA-256; the model, preprocess.json and this
    script are among them."""
    manifest = bundle / "MANIFEST.sha256"
    if not manifest.is_file():
        raise Refused(f"{manifest} is missing: this is not a whole Strongroom export bundle", 3)
    listed = {}
    for number, line in enumerate(manifest.read_text("utf-8").splitlines(), start=1):
        digest, sep, name = line.partition("  ")
        if not sep or not re.fullmatch(r"[0-9a-f]{64}", digest) or "/" in name or name.startswith("."):
            raise Refused(f"MANIFEST.sha256 line {number} is not '<sha256>  <file>'", 3)
        listed[name] = digest
    for name in REQUIRED:
        if name not in listed:
            raise Refused(f"MANIFEST.sha256 does not name {name}; the bundle is incomplete", 3)
    for name, digest in sorted(listed.items()):
        path = bundle / name
        if not path.is_file():
            raise Refused(f"{name} is named in MANIFEST.sha256 but missing from {bundle}", 3)
        if _sha256(path) != digest:
            raise Refused(
                f"{name} does not match MANIFEST.sha256: the bundle was changed or damaged; nothing was "
                "run. Obtain it again and check its signatures (docs/EXPORT.md)",
                3,
            )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------- text
def token_ids(text: str, tokenizer: dict) -> list[int]:
    """preprocess.json's text.tokenizer: lower-cased \\w+ words (less the stop-word list, digits as
    0 where it says so), n-grams, CRC-32 into buckets."""
    words = _WORD.findall(text.lower())
    if tokenizer.get("stop_words") is not None:
        stop = set(tokenizer["stop_word_list"])
        words = [w for w in words if w not in stop]
    if tokenizer.get("digits") == "zero":
        words = [_DIGIT.sub("0", w) for w in words]
    ngrams, max_tokens, span = (
        int(tokenizer["ngrams"]),
        int(tokenizer["max_tokens"]),
        tokenizer["buckets"] - 1,
    )
    grams: list[str] = []
    for end in range(1, len(words) + 1):
        grams.extend(" ".join(words[end - n : end]) for n in range(1, min(ngrams, end) + 1))
        if len(grams) >= max_tokens:
            break
    return [zlib.crc32(g.encode("utf-8")) % span + 1 for g in grams[:max_tokens]]


def encode_texts(texts: list[str], tokenizer: dict) -> np.ndarray:
    out = np.zeros((len(texts), int(tokenizer["max_tokens"])), dtype=np.int64)
    for row, text in enumerate(texts):
        ids = token_ids(text, tokenizer)
        out[row, : len(ids)] = ids
    return out


def read_texts(inputs: list[str], as_text: bool) -> list[tuple[str, str]]:
    """(name, text) pairs: the arguments themselves, or the non-blank lines of each file."""
    if as_text:
        return [(text, text) for text in inputs]
    records = []
    for source in inputs:
        try:
            content = sys.stdin.read() if source == "-" else Path(source).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise Refused(f"cannot read {source} as UTF-8 text: {error}", 1) from None
        for number, line in enumerate(content.split("\n"), start=1):
            line = line.removesuffix("\r")
            if line.strip():
                records.append((f"{source}:{number}", line))
    return records


# -------------------------------------------------------------------------------------- images
def load_image(path: str, spec: dict) -> np.ndarray:
    """preprocess.json's image section: one file to uint8 (C, H, W)."""
    from PIL import Image

    channels, height, width = int(spec["channels"]), int(spec["height"]), int(spec["width"])
    try:
        im = Image.open(path, formats=spec["formats"])
        orientation = _orientation(im)
        grey = _is_grey(im)
        size = im.size[::-1] if orientation in (5, 6, 7, 8) else im.size
        if im.format == "JPEG" and size != (width, height):
            im.draft(None, (height, width) if orientation in (5, 6, 7, 8) else (width, height))
        im.load()
        if im.mode in _WIDE_GREY_MODES:
            wide = np.clip(np.asarray(im).astype(np.int64), 0, 65535) >> 8
            im = Image.fromarray(wide.astype(np.uint8), mode="L")
        transpose = {
            2: Image.Transpose.FLIP_LEFT_RIGHT,
            3: Image.Transpose.ROTATE_180,
            4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE,
            6: Image.Transpose.ROTATE_270,
            7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90,
        }
        if orientation in transpose:
            im = im.transpose(transpose[orientation])
        # A colour image for a one-channel model is made grey (the model never saw colour).
        mode = "L" if grey or channels == 1 else "RGB"
        if im.mode != mode:
            with warnings.catch_warnings():  # palette transparency warnings: alpha is dropped anyway
                warnings.simplefilter("ignore", UserWarning)
                im = im.convert(mode)
        if im.size != (width, height):
            im = im.resize((width, height), Image.Resampling.BILINEAR)
        pixels = np.asarray(im, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error) as error:
        raise Refused(f"cannot read {path} as an image: {error}", 1) from None
    except Image.DecompressionBombError:
        raise Refused(f"{path} is too large to decode safely; scale it down first", 1) from None
    if pixels.ndim == 2:
        return np.broadcast_to(pixels, (channels, height, width)).copy()
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def _orientation(im) -> int:
    if "exif" not in im.info:
        return 1
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:  # a damaged EXIF block: ingest reads such images unrotated too
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _is_grey(im) -> bool:
    if im.mode in _GREY_MODES:
        return True
    if im.mode in ("P", "PA"):
        palette = im.getpalette("RGB")
        if not palette:
            return False
        rgb = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
        return bool((rgb == rgb[:, :1]).all())
    return False


# ------------------------------------------------------------------------------------ the model
def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def predict(bundle: Path, inputs: list[str], *, as_text: bool = False) -> list[dict]:
    """One result per input: input, label, probability, logits, probabilities."""
    check_bundle(bundle)
    spec = json.loads((bundle / "preprocess.json").read_text("utf-8"))
    if spec["kind"] == "text":
        records = read_texts(inputs, as_text)
        names = [name for name, _ in records]
        tensor = encode_texts([text for _, text in records], spec["text"]["tokenizer"])
    else:
        if as_text:
            raise Refused("--text is for text models; this bundle's model classifies images", 2)
        names = list(inputs)
        shape = (0, spec["image"]["channels"], spec["image"]["height"], spec["image"]["width"])
        tensor = (
            np.stack([load_image(p, spec["image"]) for p in names]) if names else np.zeros(shape, np.uint8)
        )
    # ONNX Runtime's builds carry telemetry that records the host (executable, OS, CPU, a device
    # id) in ~/.cache/Microsoft and sends it when online; it is read once, at import, from this.
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    try:
        import onnxruntime
    except ImportError:
        raise Refused("onnxruntime is not installed: python -m pip install onnxruntime", 2) from None
    session = onnxruntime.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = [
        session.run([spec["output"]["name"]], {spec["input"]["name"]: tensor[i : i + BATCH]})[0]
        for i in range(0, len(tensor), BATCH)
    ]
    all_logits = np.concatenate(logits) if logits else np.zeros((0, len(spec["classes"])), np.float32)
    probabilities = softmax(all_logits.astype(np.float64))
    results = []
    for name, row, probs in zip(names, all_logits, probabilities, strict=True):
        best = int(row.argmax())
        results.append(
            {
                "input": name,
                "label": spec["classes"][best],
                "probability": float(probs[best]),
                "logits": [float(v) for v in row],
                "probabilities": [float(v) for v in probs],
            }
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="predict.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--bundle", type=Path, default=Path(__file__).resolve().parent, help="the export bundle's folder"
    )
    parser.add_argument("--json", action="store_true", help="JSON lines, with logits and probabilities")
    parser.add_argument("--text", action="store_true", help="(text models) the inputs are the texts")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, or text files (- for stdin)")
    args = parser.parse_args(argv)
    try:
        results = predict(args.bundle, args.inputs, as_text=args.text)
    except Refused as refused:
        print(f"predict.py: {refused}", file=sys.stderr)
        return refused.code
    for result in results:
        if args.json:
            print(json.dumps(result, ensure_ascii=False))
        else:
            print(f"{result['input']}\t{result['label']}\t{result['probability']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

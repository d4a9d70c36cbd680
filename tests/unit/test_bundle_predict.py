"""predict.py (vault/train/bundle_predict.py) restates the model's own preparation from
preprocess.json alone: the same token ids as the model's tokenizer, the same pixels as ingest."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from vault.train import bundle_predict
from vault.train.models import MODELS, build_model, model_config
from vault.train.portable import preprocess

TEXT_MODELS = [name for name, spec in MODELS.items() if spec.kind == "text"]


# every text model's tokenizer, and the one its DP recipe sets where it sets one (bow: stop
# words dropped, digits as 0)
TOKENIZERS = [(name, False) for name in TEXT_MODELS] + [
    (name, True) for name in TEXT_MODELS if MODELS[name].dp_recipe.model_options
]


@functools.cache
def tokenizer_of(name: str, dp: bool = False) -> tuple[object, dict]:
    options = MODELS[name].dp_recipe.model_options(None) if dp else None
    config = model_config(name, "text", 2, options=options)
    model = build_model(config)
    document = preprocess(config, ["a", "b"], model.state_dict())
    return model.tokenizer, document["text"]["tokenizer"]


@pytest.mark.parametrize(("name", "dp"), TOKENIZERS)
@settings(max_examples=60, deadline=None)
@given(texts=st.lists(st.text(max_size=400), min_size=1, max_size=4))
def test_predict_py_tokenizes_as_the_model_does(name, dp, texts):
    tokenizer, described = tokenizer_of(name, dp)
    assert bundle_predict.encode_texts(texts, described).tolist() == tokenizer.encode(texts).tolist()


@pytest.mark.parametrize(("name", "dp"), TOKENIZERS)
def test_long_and_unusual_texts_tokenize_alike(name, dp):
    tokenizer, described = tokenizer_of(name, dp)
    texts = [
        " ".join(f"w{i}" for i in range(500)),
        "İstanbul ΣΊΣΥΦΟΣ straße ǅ",
        "tabs\tand\u2028separators\x0bhere",
        "",
        "!!!",
        "Call 0871-277 4 the £1,000 prize: it's ours, ٣٤ and ⅷ",
    ]
    assert bundle_predict.encode_texts(texts, described).tolist() == tokenizer.encode(texts).tolist()


def test_predict_py_decodes_images_as_ingest_does(tmp_path):
    from vault.ingest.pixels import open_image, read_header, render

    rng = np.random.default_rng(0)
    files = {
        "rgb-large.jpg": Image.fromarray(rng.integers(0, 256, (40, 52, 3), dtype=np.uint8), "RGB"),
        "grey-small.png": Image.fromarray(rng.integers(0, 256, (9, 11), dtype=np.uint8), "L"),
        "wide-grey.png": Image.fromarray(rng.integers(0, 65536, (20, 20)).astype("<u2")),
        "palette.gif": Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), "RGB").convert("P"),
        "alpha.png": Image.fromarray(rng.integers(0, 256, (24, 16, 4), dtype=np.uint8), "RGBA"),
    }
    oriented = Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8), "RGB")
    exif = oriented.getexif()
    exif[0x0112] = 6
    for name, image in files.items():
        image.save(tmp_path / name)
    oriented.save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    spec = {"channels": 3, "height": 16, "width": 16, "formats": ["PNG", "JPEG", "BMP", "GIF"]}
    for path in sorted(tmp_path.iterdir()):
        im = open_image(path, path.name)
        header = read_header(im, path.name)
        expected = np.zeros((3, 16, 16), np.uint8)
        render(im, header, expected, path.name)
        assert np.array_equal(bundle_predict.load_image(str(path), spec), expected), path.name

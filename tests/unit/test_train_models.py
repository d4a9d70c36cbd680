"""Model registry, Opacus compatibility, the data-independent tokenizer and split, model cards."""

from __future__ import annotations

import subprocess
import sys
import zlib

import pytest
import torch
from opacus.validators import ModuleValidator

from vault.errors import UsageError
from vault.train import TrainConfig, TrainData
from vault.train.card import card_json, card_markdown
from vault.train.data import split
from vault.train.engine import train
from vault.train.models import MODELS, build_model, default_model, model_config, spec_for
from vault.train.text import HashingTokenizer

SHAPES = {"image": (3, 16, 16), "text": None}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_builds_passes_opacus_validation_and_classifies(name: str) -> None:
    kind = MODELS[name].kind
    config = model_config(name, kind, 4, SHAPES[kind])
    model = build_model(config)
    assert ModuleValidator.validate(model, strict=False) == []
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert not any(getattr(m, "inplace", False) for m in model.modules())
    if kind == "image":
        inputs = model.prepare(torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8))
    else:
        inputs = model.prepare(["a short text", ""])
    assert model(inputs).shape == (2, 4)
    rebuilt = build_model(config)
    rebuilt.load_state_dict(model.state_dict())


def test_registry_checks_kinds_and_names() -> None:
    assert default_model("image", True) == "scatternet" and default_model("text", True) == "bow"
    with pytest.raises(UsageError, match="for text data"):
        spec_for("bow", "image")
    with pytest.raises(UsageError, match="unknown model") as caught:
        spec_for("vgg", "image")
    assert "resnet18" in caught.value.hint
    with pytest.raises(UsageError, match="at least 16 pixels"):
        model_config("scatternet", "image", 2, (1, 8, 8))


def test_tokenizer_is_fixed_and_independent_of_the_records() -> None:
    tokenizer = HashingTokenizer(buckets=1 << 15, ngrams=2, max_tokens=8)
    assert tokenizer.ids("Win CASH now") == [7438, 29485, 18452, 20203, 7806]
    grams = ["win", "cash", "win cash", "now", "cash now"]  # words, each followed by its bigram
    assert tokenizer.ids("Win CASH now") == [zlib.crc32(g.encode()) % ((1 << 15) - 1) + 1 for g in grams]
    other_process = subprocess.run(
        [
            sys.executable,
            "-c",
            "from vault.train.text import HashingTokenizer as H; print(H(max_tokens=8).ids('Win CASH now'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert other_process.stdout.strip() == "[7438, 29485, 18452, 20203, 7806]"
    encoded = tokenizer.encode(["one two three four five six seven", ""])
    assert encoded.shape == (2, 8) and encoded[1].eq(0).all() and encoded[0].ne(0).all()
    assert HashingTokenizer.from_json(tokenizer.to_json()) == tokenizer


def test_split_is_fixed_by_the_seed_and_stratified() -> None:
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    first, again, other = split(labels, 0.2, 7), split(labels, 0.2, 7), split(labels, 0.2, 8)
    assert torch.equal(first.val, again.val) and not torch.equal(first.val, other.val)
    assert torch.bincount(labels[first.val]).tolist() == [10, 6, 4]
    assert set(first.train.tolist()).isdisjoint(first.val.tolist())
    assert first.to_json()["val_indices_sha256"] == again.to_json()["val_indices_sha256"]


def test_model_card_states_the_guarantee_and_the_leakage_check() -> None:
    g = torch.Generator().manual_seed(1)
    data = TrainData(
        "image",
        ["a", "b"],
        torch.randint(0, 255, (120, 1, 16, 16), dtype=torch.uint8, generator=g),
        torch.arange(120) % 2,
    )
    outcome = train(data, TrainConfig(model="scatternet", accountant="rdp", epochs=1, batch_size=20, seed=2))
    card = card_json(outcome, model_id="m-1", dataset={"name": "faces", "version": 2, "digest": "sha256:ab"})
    assert card["privacy"]["dp"] and card["privacy"]["accountant"] == "rdp"
    assert card["privacy"]["noise_multiplier"] == outcome.dp.noise_multiplier
    assert "adding or removing one record" in card["privacy"]["statement"]
    assert card["leakage"]["bound_tpr_at_1pct_fpr"] is not None and card["metrics"]["confusion"]
    text = card_markdown(card)
    assert "faces" in text and "TPR at 1% FPR" in text and "Confusion matrix" in text
    plain = train(data, TrainConfig(model="cnn", dp=False, epochs=1, seed=2))
    statement = card_json(plain, model_id="m-2", dataset={"name": "faces"})["privacy"]["statement"]
    assert "WITHOUT differential privacy" in statement


def test_cli_lists_the_registry_and_starts_without_torch() -> None:
    from vault.cli.train import MODEL_CHOICES

    assert MODEL_CHOICES == ("auto", *MODELS)
    probe = "import sys, vault.cli.train, vault.door.training, vault.privacy.ledger; print('torch' in sys.modules)"
    assert (
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "False"
    )
    shown = subprocess.run(
        [sys.executable, "-m", "vault.cli", "train", "--help"], capture_output=True, text=True
    )
    assert shown.returncode == 0
    for flag in (
        "--model",
        "--no-dp",
        "--epsilon",
        "--delta",
        "--max-grad-norm",
        "--epochs",
        "--batch-size",
        "--lr",
        "--seed",
        "--device",
        "--val-split",
        "--clipping",
        "--name",
        "--json",
    ):
        assert flag in shown.stdout


def test_the_light_model_list_matches_the_registry() -> None:
    """The CLI and the terminal UI offer models from vault.train.config without importing torch."""
    from vault.train.config import MODEL_KINDS, default_model, models_for

    assert MODEL_KINDS == {name: spec.kind for name, spec in MODELS.items()}
    for kind in ("image", "text"):
        assert default_model(kind, True) in models_for(kind) and default_model(kind, False) in models_for(
            kind
        )


def test_cnn_strides_by_default_and_a_max_pooling_cnn_saved_before_still_loads() -> None:
    config = model_config("cnn", "image", 10, [1, 28, 28])
    assert config["stride"] == 2
    net = build_model(config)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in net.modules())
    assert [m.stride for m in net.modules() if isinstance(m, torch.nn.Conv2d)] == [(2, 2)] * 3
    earlier = {k: v for k, v in config.items() if k != "stride"}  # configs written before the stride
    pooled = build_model(earlier)
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in pooled.modules()) == 2
    pooled.load_state_dict(build_model(earlier).state_dict())
    images = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
    assert net(net.prepare(images)).shape == pooled(pooled.prepare(images)).shape == (3, 10)
    for side in (8, 9, 16, 32):  # the smallest image cnn accepts and odd sizes
        small = build_model(model_config("cnn", "image", 4, [3, side, side]))
        assert small(small.prepare(torch.zeros(2, 3, side, side, dtype=torch.uint8))).shape == (2, 4)
    with pytest.raises(UsageError, match="stride"):
        build_model({**config, "stride": 3})


def test_cnn_options_without_dp_and_configs_saved_without_them() -> None:
    config = model_config("cnn", "image", 10, [1, 28, 28])
    torch.manual_seed(0)
    before = build_model(config)  # a config without activation, pool or shift: tanh, 2x2, no shift
    assert sum(isinstance(m, torch.nn.Tanh) for m in before.modules()) == 4
    assert not any(isinstance(m, torch.nn.ReLU) for m in before.modules())
    assert [m.output_size for m in before.modules() if isinstance(m, torch.nn.AdaptiveAvgPool2d)] == [2]
    torch.manual_seed(0)
    explicit = build_model({**config, "activation": "tanh", "pool": 2, "shift": 0})
    images = before.prepare(torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8))
    before.train(), explicit.train()
    assert torch.equal(before(images), explicit(images)), "the defaults are the network saved before"

    plain = build_model({**config, "activation": "relu", "pool": 4, "shift": 2})
    assert sum(isinstance(m, torch.nn.ReLU) for m in plain.modules()) == 4
    assert plain.classifier[1].in_features == 64 * 4 * 4
    plain.eval()
    assert torch.equal(plain(images), plain(images)), "no shift when evaluating"
    plain.train()
    torch.manual_seed(1)
    first = plain(images)
    torch.manual_seed(1)
    assert torch.equal(first, plain(images)), "the shifts come from torch's generator (the run's seed)"
    for name, bad in (("activation", "gelu"), ("pool", 0), ("shift", 5)):
        with pytest.raises(UsageError, match=name):
            build_model({**config, name: bad})


def test_random_shift_moves_each_image_by_whole_pixels_and_fills_black() -> None:
    from vault.train.models import _random_shift

    x = torch.arange(64 * 2 * 6 * 6, dtype=torch.float32).view(64, 2, 6, 6)
    torch.manual_seed(3)
    moved = _random_shift(x, 2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), value=-1.0)
    seen = set()
    for i in range(64):
        found = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(moved[i], padded[i, :, dy : dy + 6, dx : dx + 6])
        ]
        assert len(found) == 1, i  # both channels of an image move together
        seen.add(found[0])
    assert len(seen) > 10, "images move by their own offsets"


def test_scatternet_groups_its_maps_as_asked_and_configs_without_groups_keep_one_map_a_group() -> None:
    old = model_config("scatternet", "image", 3, (1, 16, 16), {"order": 2})
    assert "groups" not in old
    net = build_model(old)
    assert net.norm.num_groups == net.norm.num_channels == 81, "each map alone, as models saved before"
    grouped = build_model({**old, "groups": 27})
    assert grouped.norm.num_groups == 27
    grouped.load_state_dict(net.state_dict())  # the same weights: grouping has no parameters
    features = net.prepare(torch.randint(0, 256, (4, 1, 16, 16), dtype=torch.uint8))
    by_hand = features.reshape(4, 27, 3 * 16)
    by_hand = (by_hand - by_hand.mean(-1, keepdim=True)) / (
        by_hand.var(-1, unbiased=False, keepdim=True) + 1e-5
    ).sqrt()
    assert torch.allclose(grouped.norm(features), by_hand.reshape(features.shape), atol=1e-5)
    for bad in (0, 2, 80, 1.5, True, "27"):
        with pytest.raises(UsageError, match="scatternet groups"):
            build_model({**old, "groups": bad})


def test_scattering_pads_each_input_once_and_computes_the_same_numbers_bit_for_bit() -> None:
    """The forward pass pads an input once for all its filters and low-passes the second order's
    maps in one grouped convolution; the straightforward way (each filter on its own reflect-padded
    copy, one image per map) gives the same coefficients exactly."""
    import torch.nn.functional as F

    from vault.train.scatter import Scattering

    def each(x: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
        radius, (n, c, h, w) = weight.shape[-1] // 2, x.shape
        out = F.conv2d(F.pad(x.reshape(n * c, 1, h, w), (radius,) * 4, mode="reflect"), weight, stride=stride)
        return out.reshape(n, -1, *out.shape[-2:])

    def modulus(z: torch.Tensor, orientations: int) -> torch.Tensor:
        n, _, h, w = z.shape
        z = z.view(n, -1, 2, orientations, h, w)
        return torch.sqrt(z[:, :, 0] ** 2 + z[:, :, 1] ** 2 + 1e-12).reshape(n, -1, h, w)

    torch.manual_seed(0)
    for shape in ((3, 1, 16, 16), (2, 3, 32, 32), (2, 2, 17, 23)):
        images = torch.rand(shape)
        for order in (1, 2):
            s = Scattering(orientations=8, order=order)
            fine = modulus(each(images, s.psi0, 1), 8)
            coarse = modulus(each(images, s.psi1, 2), 8)
            parts = [each(images, s.phi_full, 4), each(fine, s.phi_full, 4), each(coarse, s.phi_half, 2)]
            if order == 2:
                parts.append(each(modulus(each(fine, s.psi1, 2), 8), s.phi_half, 2))
            with torch.no_grad():
                assert torch.equal(s(images), torch.cat(parts, 1)), (shape, order)

"""The model registry: image and text classifiers that Opacus can train with per-sample clipping.

Every model turns raw records into tensors with `prepare` (fixed, per-record, learns nothing from
the data: image scaling by constants, wavelet scattering, hashed tokens) and classifies them with
`forward`. A model is rebuilt from its JSON config, so weights travel without code (safetensors).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vault.errors import UsageError
from vault.train.config import default_model  # noqa: F401  (re-exported)
from vault.train.recipes import (  # noqa: F401  (Recipe, AUTO and the option rules, re-exported)
    AUTO,
    RECIPES,
    SCATTER_ORIENTATIONS,
    Recipe,
    _bow_dp_options,
    _cnn_dp_options,
    _cnn_plain_options,
    _scatter_dp_options,
    scatter_inputs,
)
from vault.train.scatter import Scattering
from vault.train.text import HashingTokenizer

# Fixed image scaling: pixels in [0, 255] map to [-1, 1]. Never statistics of the records.
IMAGE_MEAN = 0.5
IMAGE_STD = 0.5


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str  # "image" | "text"
    summary: str
    build: Callable[[dict[str, Any]], nn.Module]
    dp_recipe: Recipe
    plain_recipe: Recipe
    defaults: dict[str, Any]
    min_image_side: int = 1


def _groups(channels: int) -> int:
    for g in (8, 4, 2):
        if channels % g == 0:
            return g
    return 1


class ImageModel(nn.Module):
    kind = "image"

    @torch.no_grad()
    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, C, H, W) -> float input of `forward`."""
        return (images.float() / 255.0 - IMAGE_MEAN) / IMAGE_STD


class ScatterNet(ImageModel):
    """Wavelet scattering (fixed), group normalisation of each image's coefficients (no
    parameters), linear classifier. `groups`: how many groups the coefficient maps are normalised
    in, consecutive maps together; by default each map alone (configs without the key)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        channels = config["input_shape"][0]
        self.scattering = Scattering(orientations=config["orientations"], order=config["order"])
        features = channels * self.scattering.paths()
        groups = config.get("groups", features)
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1 or features % groups:
            raise UsageError(
                f"unknown scatternet groups {groups!r}",
                f"use a whole number that divides the {features} coefficient maps",
            )
        self.norm = nn.GroupNorm(groups, features, affine=False)
        self.classifier = nn.Linear(
            self.inputs(config["input_shape"], config["order"], config["orientations"]), config["classes"]
        )
        nn.init.zeros_(self.classifier.weight)
        nn.init.zeros_(self.classifier.bias)

    inputs = staticmethod(scatter_inputs)  # the linear layer's inputs

    @torch.no_grad()
    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        return self.scattering(images.float() / 255.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.norm(x).flatten(1))


_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


class SmallCNN(ImageModel):
    """Tanh CNN with GroupNorm (Papernot et al. 2021): bounded activations suit clipped gradients.

    `stride` 2 (the default) halves the image in every 3x3 convolution, as Opacus' MNIST example
    network does with its strided convolutions, instead of a convolution at full resolution
    followed by max-pooling (`stride` 1): a quarter of the work in each layer, per-sample gradients
    included (MNIST under DP: 3.2x faster a step). Models saved without a `stride` are the
    max-pooling network and still load.

    Without DP the recipe sets three more options (configs without them are the network above):
    `activation` "relu" instead of "tanh", `pool` the side the last feature map is averaged to
    (2 by default; 4 keeps MNIST's 4x4 map whole), and `shift`, the most pixels each training
    image is moved by in each direction (0 by default), in training mode only: evaluation and
    export see the images as they are.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        channels = config["input_shape"][0]
        widths = config["widths"]
        stride = config.get("stride", 1)
        if stride not in (1, 2):
            raise UsageError(f"unknown cnn stride {stride!r}", "use 1 or 2")
        layers: list[nn.Module] = []
        previous = channels
        first = int(config.get("first_kernel", 3))
        if first not in (3, 5):
            raise UsageError(f"unknown cnn first_kernel {first!r}", "use 3 or 5")
        activation = _ACTIVATIONS.get(config.get("activation", "tanh"))
        if activation is None:
            raise UsageError(
                f"unknown cnn activation {config.get('activation')!r}",
                f"use one of: {', '.join(_ACTIVATIONS)}",
            )
        pool = int(config.get("pool", 2))
        if not 1 <= pool <= 8:
            raise UsageError(f"unknown cnn pool {pool!r}", "use a side from 1 to 8")
        self.shift = int(config.get("shift", 0))
        if not 0 <= self.shift <= 4:
            raise UsageError(f"unknown cnn shift {self.shift!r}", "use 0 to 4 pixels")
        for index, width in enumerate(widths):
            kernel = first if index == 0 else 3
            layers += [
                nn.Conv2d(previous, width, kernel, stride=stride, padding=kernel // 2),
                nn.GroupNorm(_groups(width), width),
                activation(),
            ]
            if index == len(widths) - 1:
                layers.append(nn.AdaptiveAvgPool2d(pool))
            elif stride == 1:
                layers.append(nn.MaxPool2d(2))
            previous = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(previous * pool * pool, 64),
            activation(),
            nn.Linear(64, config["classes"]),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.shift:
            x = _random_shift(x, self.shift)
        return self.classifier(self.features(x))


def _random_shift(x: torch.Tensor, shift: int) -> torch.Tensor:
    """Each image moved by its own whole number of pixels, from -shift to shift in each direction,
    the uncovered border filled with black (the prepared value of pixel 0); from torch's generator,
    so a run's seed fixes it."""
    n, channels, height, width = x.shape
    black = -IMAGE_MEAN / IMAGE_STD
    padded = nn.functional.pad(x, (shift, shift, shift, shift), value=black)
    offsets = torch.randint(0, 2 * shift + 1, (n, 2), device=x.device)
    rows = (offsets[:, 0, None] + torch.arange(height, device=x.device)).view(n, 1, height, 1)
    padded = padded.gather(2, rows.expand(n, channels, height, width + 2 * shift))
    columns = (offsets[:, 1, None] + torch.arange(width, device=x.device)).view(n, 1, 1, width)
    return padded.gather(3, columns.expand(n, channels, height, width))


def _resnet_block_forward(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """torchvision BasicBlock.forward without in-place ReLU and in-place residual add."""
    identity = x if block.downsample is None else block.downsample(x)
    out = torch.relu(block.bn1(block.conv1(x)))
    out = block.bn2(block.conv2(out))
    return torch.relu(out + identity)


class ResNet18(ImageModel):
    """torchvision resnet18 with GroupNorm instead of BatchNorm (BatchNorm mixes records in a batch)
    and out-of-place ReLU and residual adds (Opacus' backward hooks refuse in-place updates).
    Images of 64 pixels or less get a 3x3 stem without max-pooling, as usual for CIFAR.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        from torchvision.models import resnet18

        channels, height, _ = config["input_shape"]
        net = resnet18(num_classes=config["classes"], norm_layer=lambda c: nn.GroupNorm(min(32, c), c))
        if channels != 3 or height <= 64:
            small = height <= 64
            net.conv1 = nn.Conv2d(
                channels, 64, 3 if small else 7, 1 if small else 2, 1 if small else 3, bias=False
            )
            if small:
                net.maxpool = nn.Identity()
        for module in net.modules():
            if isinstance(module, nn.ReLU):
                module.inplace = False
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        for stage in (net.layer1, net.layer2, net.layer3, net.layer4):
            for block in stage:
                x = _resnet_block_forward(block, x)
        return net.fc(torch.flatten(net.avgpool(x), 1))


class TextModel(nn.Module):
    kind = "text"

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.tokenizer = HashingTokenizer.from_json(config["tokenizer"])

    @torch.no_grad()
    def prepare(self, texts: Sequence[str]) -> torch.Tensor:
        return self.tokenizer.encode(texts)


def _masked_mean(vectors: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    mask = (ids != 0).unsqueeze(-1).to(vectors.dtype)
    return (vectors * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class BagOfNgrams(TextModel):
    """fastText-style bag of hashed n-grams, pooled, then a linear layer.

    `dim` 0 makes it a linear model over the hashed bag (a logistic regression: one weight per
    bucket and class, the bias an embedding of one constant token); otherwise the bag is embedded
    in `dim` dimensions first. `pooling` "sqrt" divides the summed vectors by the square root of
    the token count (the bag's L2 norm when the n-grams are distinct), "mean" by the count.
    `bias_scale` (1 where a config has none) multiplies the linear model's bias: below 1 the
    bias takes a smaller share of each record's clipped gradient under DP (its gradient is
    bias_scale x (p - y), the weights' (p - y) x the unit-norm bag).
    Written as nn.Embedding plus a masked sum (an EmbeddingBag in effect) because Opacus and
    book-keeping compute Embedding gradient norms without per-sample copies of the table.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        dim = int(config.get("dim", 64))
        self.pooling = config.get("pooling", "mean")
        if self.pooling not in ("mean", "sqrt"):
            raise UsageError(f"unknown pooling {self.pooling!r}", "use mean or sqrt")
        classes = config["classes"]
        if dim:
            self.embedding = nn.Embedding(self.tokenizer.buckets, dim)
            nn.init.normal_(self.embedding.weight, std=0.1)
            self.classifier: nn.Module = nn.Linear(dim, classes)
        else:
            self.embedding = nn.Embedding(self.tokenizer.buckets, classes)
            nn.init.zeros_(self.embedding.weight)
            self.bias = nn.Embedding(1, classes)
            nn.init.zeros_(self.bias.weight)
            self.classifier = nn.Identity()
        self.bias_scale = float(config.get("bias_scale", 1.0))
        if not 0 < self.bias_scale <= 1:
            raise UsageError(f"unknown bow bias_scale {self.bias_scale!r}", "use a number in (0, 1]")

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        vectors = self.embedding(ids)
        mask = (ids != 0).unsqueeze(-1).to(vectors.dtype)
        count = mask.sum(1).clamp(min=1.0)
        pooled = (vectors * mask).sum(1) / (count.sqrt() if self.pooling == "sqrt" else count)
        out = self.classifier(pooled)
        if isinstance(self.classifier, nn.Identity):
            bias = self.bias(torch.zeros(ids.shape[0], dtype=torch.int64, device=ids.device))
            out = out + (bias if self.bias_scale == 1.0 else self.bias_scale * bias)
        return out


class EncoderLayer(nn.Module):
    """Pre-norm transformer encoder layer from Linear and LayerNorm only (all Opacus-supported)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.up, self.down = nn.Linear(dim, 2 * dim), nn.Linear(2 * dim, dim)

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attention_mask = (~padding)[:, None, None, :]
        attended = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask)
        x = x + self.proj(attended.transpose(1, 2).reshape(n, t, d))
        return x + self.down(torch.nn.functional.gelu(self.up(self.norm2(x))))


class SmallTransformer(TextModel):
    """A small encoder over hashed word tokens with learned positions, mean-pooled."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        dim = config["dim"]
        self.embedding = nn.Embedding(self.tokenizer.buckets, dim)
        self.position = nn.Embedding(self.tokenizer.max_tokens, dim)
        self.layers = nn.ModuleList(EncoderLayer(dim, config["heads"]) for _ in range(config["layers"]))
        self.norm = nn.LayerNorm(dim)
        self.classifier = nn.Linear(dim, config["classes"])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device).repeat(ids.shape[0], 1)
        x = self.embedding(ids) + self.position(positions)
        padding = ids == 0
        padding = padding & ~padding.all(1, keepdim=True)  # an all-padding text attends to itself
        for layer in self.layers:
            x = layer(x, padding)
        return self.classifier(_masked_mean(self.norm(x), ids))


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "scatternet",
            "image",
            "wavelet scattering features + linear classifier (Tramer & Boneh 2021); best under DP",
            ScatterNet,
            dp_recipe=RECIPES["scatternet"][0],
            plain_recipe=RECIPES["scatternet"][1],
            defaults={"order": 1, "orientations": SCATTER_ORIENTATIONS},
            min_image_side=16,
        ),
        ModelSpec(
            "cnn",
            "image",
            "small tanh CNN with GroupNorm (Papernot et al. 2021)",
            SmallCNN,
            dp_recipe=RECIPES["cnn"][0],
            plain_recipe=RECIPES["cnn"][1],
            defaults={"widths": [16, 32, 64], "stride": 2},
            min_image_side=8,
        ),
        ModelSpec(
            "resnet18",
            "image",
            "torchvision ResNet-18, GroupNorm, out-of-place activations (for a GPU)",
            ResNet18,
            dp_recipe=RECIPES["resnet18"][0],
            plain_recipe=RECIPES["resnet18"][1],
            defaults={},
            min_image_side=8,
        ),
        ModelSpec(
            "bow",
            "text",
            "linear model over hashed word n-grams (a logistic regression; no vocabulary)",
            BagOfNgrams,
            dp_recipe=RECIPES["bow"][0],
            plain_recipe=RECIPES["bow"][1],
            defaults={
                "dim": 0,
                "pooling": "sqrt",
                "tokenizer": HashingTokenizer(buckets=1 << 16, ngrams=2, max_tokens=256).to_json(),
            },
        ),
        ModelSpec(
            "transformer",
            "text",
            "small transformer encoder over hashed word tokens",
            SmallTransformer,
            dp_recipe=RECIPES["transformer"][0],
            plain_recipe=RECIPES["transformer"][1],
            defaults={
                "dim": 64,
                "heads": 4,
                "layers": 2,
                "tokenizer": HashingTokenizer(buckets=1 << 14, ngrams=1, max_tokens=64).to_json(),
            },
        ),
    )
}


def spec_for(name: str, kind: str) -> ModelSpec:
    """The registry entry for `name`, checked against the dataset's kind."""
    spec = MODELS.get(name)
    if spec is None:
        raise UsageError(
            f"unknown model {name!r}",
            f"choose one of: {', '.join([AUTO, *MODELS])}",
        )
    if spec.kind != kind:
        matching = ", ".join(n for n, s in MODELS.items() if s.kind == kind)
        raise UsageError(
            f"model {name!r} is for {spec.kind} data but the dataset holds {kind}",
            f"for {kind} data use one of: {matching}",
        )
    return spec


def model_config(
    name: str,
    kind: str,
    classes: int,
    input_shape: Sequence[int] | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON config that rebuilds the model: registry name, classes, input shape, options
    (the model's defaults, overridden by `options`, e.g. a recipe's)."""
    spec = spec_for(name, kind)
    config: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "classes": int(classes),
        **spec.defaults,
        **(options or {}),
    }
    if kind == "image":
        if input_shape is None or len(input_shape) != 3:
            raise UsageError(
                "image models need an input shape (C, H, W)", "the dataset's images must be (N, C, H, W)"
            )
        config["input_shape"] = [int(v) for v in input_shape]
        config["normalisation"] = {"mean": IMAGE_MEAN, "std": IMAGE_STD, "scale": 255}
        side = min(config["input_shape"][1:])
        if side < spec.min_image_side:
            raise UsageError(
                f"model {name!r} needs images of at least {spec.min_image_side} pixels a side, got {side}",
                "choose another image model, e.g. --model cnn",
            )
    return config


def build_model(config: dict[str, Any]) -> nn.Module:
    spec = spec_for(config["name"], config["kind"])
    return spec.build(config)

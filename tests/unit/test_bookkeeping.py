"""Book-keeping clipping against the definition: for every layer kind and every model in the
registry, the clipped sum equals clipping each record's own gradient (one backward per record)
and adding them up; it also equals what Opacus' per-sample hooks compute."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import pytest
import torch
from torch import nn

from tests.support import blobs, texts
from vault.errors import UsageError
from vault.train import TrainConfig
from vault.train import bookkeeping as bk
from vault.train import models as registry
from vault.train.bookkeeping import BookkeepingClipper, unsupported
from vault.train.data import IGNORE, BatchDataset
from vault.train.engine import PAD_FRACTION, plan_for, train

TOLERANCE = 2e-5


def one_by_one(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, bound: float | None = None
) -> dict[str, torch.Tensor]:
    """The definition: each record's gradient, clipped to `bound` in L2 over all parameters, summed.
    Without a bound, the median of the records' gradient norms, so that some records are clipped
    and some are not."""
    if bound is None:
        bound = float(torch.tensor(record_norms(model, x, y)).median())
    total = {n: torch.zeros_like(p) for n, p in model.named_parameters() if p.requires_grad}
    for i in range(x.shape[0]):
        model.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1], reduction="sum").backward()
        grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
        norm = float(torch.sqrt(sum(g.square().sum() for g in grads.values())))
        factor = min(1.0, bound / (norm + 1e-6))
        for n, g in grads.items():
            total[n] += factor * g
    model.zero_grad(set_to_none=True)
    return total


def record_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    norms = []
    for i in range(x.shape[0]):
        model.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1], reduction="sum").backward()
        norms.append(
            float(torch.sqrt(sum(p.grad.square().sum() for p in model.parameters() if p.grad is not None)))
        )
    model.zero_grad(set_to_none=True)
    return norms


def middle(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """A bound with records on both sides of it."""
    norms = sorted(record_norms(model, x, y))
    bound = (norms[len(norms) // 2 - 1] + norms[len(norms) // 2]) / 2
    assert norms[0] < bound < norms[-1]
    return bound


def clipped(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, bound: float, **kw: object
) -> dict[str, torch.Tensor]:
    clipper = BookkeepingClipper(model, bound, **kw)
    try:
        loss = nn.functional.cross_entropy(clipper(x), y, reduction="sum")
        loss.backward()
        clipper.clip()
    finally:
        clipper.close()
    out = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad(set_to_none=True)
    return out


def assert_close(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor], floor: float = 0.0) -> None:
    """Each parameter's error relative to its largest gradient entry, or to `floor` where that is
    smaller (a parameter whose gradient is zero but for rounding)."""
    assert got.keys() == want.keys()
    for name in want:
        scale = max(float(want[name].abs().max()), floor) or 1.0
        error = float((got[name] - want[name]).abs().max()) / scale
        assert error < TOLERANCE, f"{name}: relative error {error:.2e}"


def registry_case(name: str, n: int = 6) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A registry model and a few records, in float64: the clipped sum and the definition add the
    same terms in different orders, and in float32 a model as deep as ResNet-18 loses several
    digits to that alone (up to 5e-2 relative on a downsample weight), which would hide a real
    mistake of that size."""
    model, x, y = registry_case32(name, n)
    return model.double(), (x.double() if x.is_floating_point() else x), y


def registry_case32(name: str, n: int = 6) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    if registry.MODELS[name].kind == "text":
        model = registry.build_model(registry.model_config(name, "text", 3, None))
        texts = [
            "win cash now",
            "see you at lunch",
            "prize prize prize",
            "ok",
            "call me later tonight",
            "free",
        ]
        return model, model.prepare(texts[:n]), torch.tensor([0, 1, 0, 2, 1, 0][:n])
    shape = [3, 16, 16] if name == "resnet18" else [1, 28, 28]
    model = registry.build_model(registry.model_config(name, "image", 10, shape))
    for p in model.parameters():  # zero-initialised heads would make every gradient alike
        if p.requires_grad and float(p.detach().abs().max()) == 0.0:
            nn.init.normal_(p, std=0.05)
    images = torch.randint(0, 256, (n, *shape), dtype=torch.uint8)
    return model, model.prepare(images), torch.randint(0, 10, (n,))


@pytest.mark.parametrize("name", sorted(registry.MODELS))
def test_every_registry_model_matches_clipping_one_record_at_a_time(name: str) -> None:
    model, x, y = registry_case(name)
    assert unsupported(model) is None
    bound = middle(model, x, y)
    want = one_by_one(model, x, y, bound)
    assert_close(clipped(model, x, y, bound), want)
    assert_close(clipped(model, x, y, bound, tune=False), want)


@pytest.mark.parametrize("side", [8, 28])
def test_the_dp_recipes_cnn_matches_clipping_one_record_at_a_time(side: int) -> None:
    """The cnn as its DP recipe builds it: 8-16-32 channels, a 5x5 first filter and ReLU on 28x28
    images, and on 8x8 images (the smallest it takes) a last convolution with one output position,
    whose per-sample norm is the product of two norms (book-keeping's shortcut for T = 1). The
    recipe's random shifts move each image before the first layer, so every pass sees the image it
    moved; they are off here, since the one-by-one passes would draw other shifts than the batch."""
    shape = [1, side, side]
    options = registry.MODELS["cnn"].dp_recipe.model_options(shape, 1000)
    assert options.get("shift", 0) == (1 if side == 28 else 0)
    assert options.get("activation", "tanh") == ("relu" if side == 28 else "tanh")
    options = {**options, "shift": 0}
    model = registry.build_model(registry.model_config("cnn", "image", 10, shape, options))
    convolutions = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convolutions[0].kernel_size == ((5, 5) if side == 28 else (3, 3))
    torch.manual_seed(1)
    images = torch.randint(0, 256, (6, *shape), dtype=torch.uint8)
    model, x, y = model.double(), model.prepare(images).double(), torch.randint(0, 10, (6,))
    if side == 8:
        assert model.features[:-1](x).shape[-2:] == (1, 1), "the last convolution has one position"
    bound = middle(model, x, y)
    want = one_by_one(model, x, y, bound)
    # GroupNorm over single channels (8 groups of 8) takes out the first convolution's bias, whose
    # gradient is zero but for rounding: errors are measured against the largest gradient there
    assert float(want["features.0.bias"].abs().max()) < 1e-12
    floor = 1e-6 * max(float(g.abs().max()) for g in want.values())
    assert_close(clipped(model, x, y, bound), want, floor)
    assert_close(clipped(model, x, y, bound, tune=False), want, floor)


def awkward_model() -> nn.Module:
    """Strides, dilation, rectangular kernels and padding, a bias-free conv, a stride-1 conv (the
    only kind the transposed method takes), a frozen layer, LayerNorm over a sequence and over
    plain features, an embedding with a padding row, linear layers on 2-D and 3-D inputs."""

    class Awkward(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
            self.norm1 = nn.GroupNorm(2, 8)
            self.conv2 = nn.Conv2d(8, 6, (3, 2), padding=(2, 0), dilation=(2, 1), bias=False)
            self.frozen = nn.Conv2d(6, 6, 1)
            self.frozen.requires_grad_(False)
            self.conv3 = nn.Conv2d(6, 5, (3, 1), padding=(1, 0))  # stride and dilation 1, ph != pw
            self.embed = nn.Embedding(50, 6, padding_idx=0)
            self.seq_norm = nn.LayerNorm(6)
            self.seq_linear = nn.Linear(6, 5)
            self.flat_norm = nn.LayerNorm(5)  # on (B, 5): no dimension to sum over
            self.head = nn.Linear(5 * 6 * 4 + 5, 4)

        def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            images, ids = batch
            z = self.frozen(torch.tanh(self.conv2(torch.relu(self.norm1(self.conv1(images))))))
            z = self.conv3(torch.relu(z))
            seq = self.flat_norm(self.seq_linear(self.seq_norm(self.embed(ids))).mean(1))
            return self.head(torch.cat([z.flatten(1), seq], 1))

    return Awkward()


class _Pair(nn.Module):
    """Makes the awkward model take one tensor (images and token ids side by side)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        images = x[:, : 3 * 12 * 10].reshape(-1, 3, 12, 10)
        ids = x[:, 3 * 12 * 10 :].long()
        return self.inner((images, ids))


def awkward_case() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(2)
    model = _Pair(awkward_model())
    ids = torch.randint(0, 50, (7, 9)).float()
    ids[:, -3:] = 0  # padding tokens
    ids[0, :3] = 5  # one record repeats a token
    x = torch.cat([torch.randn(7, 3 * 12 * 10), ids], 1)
    return model, x, torch.randint(0, 4, (7,))


def test_awkward_layers_match_the_definition_with_every_conv_method(monkeypatch: pytest.MonkeyPatch) -> None:
    model, x, y = awkward_case()
    model(x)
    bound = middle(model, x, y)
    want = one_by_one(model, x, y, bound)
    for method in ("unfold", "grouped", "transposed"):
        original = bk._conv_methods
        offered: list[str] = []

        def only(module: nn.Conv2d, original=original, method=method, offered=offered) -> dict:
            methods = original(module)
            if method not in methods:
                return {"unfold": methods["unfold"]}
            offered.append(method)
            return {method: methods[method]}

        monkeypatch.setattr(bk, "_conv_methods", only)
        assert_close(clipped(model, x, y, bound), want)
        monkeypatch.setattr(bk, "_conv_methods", original)
        assert offered, f"no layer of the model took the {method} method"
    assert model.inner.frozen.weight.grad is None


def _conv_case(conv: nn.Conv2d, side: int = 7, n: int = 5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A layer's input, its output gradient as (B, T, P), and each record's weight gradient (one
    backward per record) as (B, P, D), for a random loss on the layer's output."""
    torch.manual_seed(8)
    a = torch.randn(n, conv.in_channels, side, side + 1, dtype=torch.float64)
    conv.double()
    out = conv(a)
    probe = torch.randn_like(out)
    g = probe.reshape(n, out.shape[1], -1).transpose(1, 2)
    per_record = torch.stack(
        [torch.autograd.grad((conv(a[i : i + 1]) * probe[i : i + 1]).sum(), conv.weight)[0] for i in range(n)]
    )
    return a, g, per_record.reshape(n, conv.out_channels, -1)


CONVS: dict[str, tuple[Callable[[], nn.Conv2d], int]] = {  # the layer, and its input's side
    "3x3, stride 1, padding 1": (lambda: nn.Conv2d(3, 4, 3, padding=1), 7),
    "3x1, stride 1, padding (1, 0)": (lambda: nn.Conv2d(3, 4, (3, 1), padding=(1, 0)), 7),
    "3x3, stride (2, 1)": (lambda: nn.Conv2d(3, 4, 3, stride=(2, 1), padding=1), 7),
    "3x3, stride (1, 2)": (lambda: nn.Conv2d(3, 4, 3, stride=(1, 2)), 7),
    "2x3, dilation (1, 2)": (lambda: nn.Conv2d(3, 4, (2, 3), dilation=(1, 2), padding=(0, 2)), 7),
    "5x5, stride 2, padding 2": (lambda: nn.Conv2d(3, 4, 5, stride=2, padding=2), 7),
    "3x3 on 3x4: two output positions": (lambda: nn.Conv2d(3, 4, 3), 3),
    "3x3 on 3x4 with stride 2: one output position": (lambda: nn.Conv2d(3, 4, 3, stride=2), 3),
}


@pytest.mark.parametrize("case", sorted(CONVS))
def test_every_conv_method_gives_each_records_own_weight_gradient(case: str) -> None:
    """The three computations the tuner chooses among are exact, each on its own, for every layer
    it offers them for; the transposed one only where stride and dilation are 1. One and two output
    positions too: with one, the norm is a product of two norms, which is wrong for any more."""
    make, side = CONVS[case]
    conv = make()
    a, g, want = _conv_case(conv, side)
    methods = bk._conv_methods(conv)
    plain = conv.stride == (1, 1) and conv.dilation == (1, 1)
    assert sorted(methods) == (["grouped", "transposed", "unfold"] if plain else ["grouped", "unfold"])
    for name in methods:
        keep: dict[str, torch.Tensor] = {}
        tuner = {(conv, tuple(a.shape[1:])): name}  # the tuner's choice, made in advance
        norms = bk._conv_weight_norms2(conv, a, g, keep, tuner)
        assert torch.allclose(norms, want.square().sum((1, 2)), rtol=1e-10), name
        if g.shape[1] > 1:  # with one position only the norm is taken; the sum comes later
            assert torch.allclose(keep["weight"], want, rtol=1e-10, atol=1e-12), name


def test_the_tuner_times_each_method_once_per_input_shape_and_keeps_the_fastest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Unfold and grouped made slow on purpose: the tuner must pick transposed, remember it for the
    layer and input shape, and time again only for a new shape."""
    conv = CONVS["3x3, stride 1, padding 1"][0]()
    a, g, want = _conv_case(conv)
    calls = {"unfold": 0, "grouped": 0, "transposed": 0}

    def slowed(name: str, fn: Callable[..., torch.Tensor], delay: float) -> Callable[..., torch.Tensor]:
        def call(*args: object) -> torch.Tensor:
            calls[name] += 1
            time.sleep(delay)
            return fn(*args)

        return call

    monkeypatch.setattr(bk, "_conv_columns", slowed("unfold", bk._conv_columns, 0.2))
    monkeypatch.setattr(bk, "_conv_grouped", slowed("grouped", bk._conv_grouped, 0.2))
    monkeypatch.setattr(bk, "_conv_transposed", slowed("transposed", bk._conv_transposed, 0.0))
    tuner: dict = {}
    keep: dict[str, torch.Tensor] = {}
    norms = bk._conv_weight_norms2(conv, a, g, keep, tuner)
    assert tuner == {(conv, tuple(a.shape[1:])): "transposed"}
    assert calls == {"unfold": 2, "grouped": 2, "transposed": 3}  # a warm-up and a timed run each
    assert torch.allclose(keep["weight"], want, rtol=1e-10, atol=1e-12)
    assert torch.allclose(norms, want.square().sum((1, 2)), rtol=1e-10)
    bk._conv_weight_norms2(conv, a[:3], g[:3], {}, tuner)  # the same shape per record: no timing
    assert calls == {"unfold": 2, "grouped": 2, "transposed": 4}
    wider = torch.randn(3, 3, 9, 9, dtype=torch.float64)
    g_wider = torch.randn(3, 81, 4, dtype=torch.float64)
    bk._conv_weight_norms2(conv, wider, g_wider, {}, tuner)  # a new input shape is timed again
    assert calls == {"unfold": 4, "grouped": 4, "transposed": 7}
    assert tuner[(conv, (3, 9, 9))] == "transposed"


@pytest.mark.parametrize("chunk", [1, bk.CHUNK_BYTES])
def test_large_layers_take_the_norm_only_and_ghost_paths(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    """With nothing kept, conv weights come from one weight-gradient of reweighted output
    gradients (with the layer's own padding and dilation) and sequence norms from Gram matrices,
    one record at a time through the slicing or all at once; the result must not change."""
    monkeypatch.setattr(bk, "KEEP_PER_SAMPLE_BYTES", 0)
    monkeypatch.setattr(bk, "CHUNK_BYTES", chunk)
    for name in ("transformer", "cnn"):
        model, x, y = registry_case(name)
        bound = middle(model, x, y)
        assert_close(clipped(model, x, y, bound), one_by_one(model, x, y, bound))
    model, x, y = awkward_case()
    bound = middle(model, x, y)
    assert_close(clipped(model, x, y, bound), one_by_one(model, x, y, bound))


def test_matches_opacus_per_sample_hooks() -> None:
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    model, x, y = registry_case("cnn", n=6)
    bound = middle(model, x, y)
    mine = clipped(model, x, y, bound)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapped = GradSampleModule(model, loss_reduction="sum")
        optimizer = DPOptimizer(
            torch.optim.SGD(model.parameters(), lr=0.1),
            noise_multiplier=0.0,
            max_grad_norm=bound,
            expected_batch_size=6,
            loss_reduction="sum",
        )
        nn.functional.cross_entropy(wrapped(x), y, reduction="sum").backward()
        optimizer.clip_and_accumulate()
    theirs = {n.removeprefix("_module."): p.summed_grad for n, p in wrapped.named_parameters()}
    wrapped._close()
    assert_close(mine, theirs)


def test_padding_rows_contribute_exactly_nothing() -> None:
    model, x, y = registry_case("cnn", n=5)
    padded_set = BatchDataset(x, y, pad_to=8)
    xp, yp = padded_set.__getitems__([0, 1, 2, 3, 4])
    assert xp.shape[0] == 8 and yp.tolist() == y.tolist() + [IGNORE] * 3
    assert torch.equal(xp[5:], x[:1].expand(3, *x.shape[1:])), "padding repeats a record"
    clipper = BookkeepingClipper(model, middle(model, x, y))
    nn.functional.cross_entropy(clipper(xp), yp, reduction="none").sum().backward()
    norms = clipper.clip()
    clipper.close()
    assert norms[5:].abs().max() == 0
    padded = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    assert_close(padded, clipped(model, x, y, clipper.max_grad_norm))
    assert padded_set.__getitems__([0, 1, 2, 3, 4, 0, 1, 2])[1].tolist() == y.tolist() + y[:3].tolist()
    assert padded_set.__getitems__([])[1].numel() == 0


def test_unsupported_layers_are_named_and_shared_layers_refused() -> None:
    assert "BatchNorm2d" in (unsupported(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))) or "")
    conv_refusal = "0 (Conv2d with groups or non-zero padding)"
    assert unsupported(nn.Sequential(nn.Conv2d(2, 4, 3, groups=2))) == conv_refusal
    assert unsupported(nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect"))) == conv_refusal
    assert unsupported(nn.Sequential(nn.Conv2d(2, 4, 3, padding="same"))) == conv_refusal
    embedding_refusal = "0 (Embedding with max_norm or sparse gradients)"
    assert unsupported(nn.Sequential(nn.Embedding(9, 2, max_norm=1.0))) == embedding_refusal
    assert unsupported(nn.Sequential(nn.Embedding(9, 2, sparse=True))) == embedding_refusal
    frozen = nn.Sequential(nn.Conv2d(2, 4, 3, groups=2), nn.Linear(2, 2))
    frozen[0].requires_grad_(False)  # a frozen layer is never clipped, whatever it is
    assert unsupported(frozen) is None
    with pytest.raises(ValueError, match="does not support"):
        BookkeepingClipper(nn.Sequential(nn.Conv1d(1, 2, 3)), 1.0)
    shared = nn.Linear(4, 4)
    clipper = BookkeepingClipper(nn.Sequential(shared, nn.Tanh(), shared), 1.0)
    with pytest.raises(RuntimeError) as refused:
        clipper(torch.randn(3, 4))
    assert str(refused.value) == (
        "Linear ran twice in one forward pass; book-keeping clipping needs each layer once"
        " (use Opacus' hooks for shared weights)"
    )
    clipper.close()
    clipper.close()  # a second close is harmless
    with pytest.raises(RuntimeError, match="forward and a backward"):
        BookkeepingClipper(nn.Linear(2, 2), 1.0).clip()


def test_training_uses_book_keeping_with_room_for_poisson_batches() -> None:
    data = blobs(n=200)
    config = TrainConfig(model="cnn", accountant="rdp", epochs=1, batch_size=24, seed=3)
    run = plan_for(data, config)
    assert run.grad_sample_mode == "bookkeeping"
    assert run.physical_batch_size == 24 + 20, "4 standard deviations above the expected batch"
    assert run.physical_batch_size // PAD_FRACTION >= 1
    outcome = train(data, config)
    assert outcome.dp.clipping.startswith("flat per-sample, book-keeping")
    assert outcome.hyperparameters["grad_sample_mode"] == "bookkeeping"
    explicit = plan_for(
        data, TrainConfig(model="cnn", accountant="rdp", batch_size=24, physical_batch_size=7)
    )
    assert explicit.physical_batch_size == 7
    plain = plan_for(data, TrainConfig(model="cnn", dp=False, batch_size=24))
    assert plain.physical_batch_size == 24


def test_a_reproducible_run_is_bitwise_reproducible_with_book_keeping() -> None:
    data = blobs(n=120)
    config = TrainConfig(model="cnn", accountant="rdp", epochs=1, batch_size=20, seed=5, reproducible=True)
    first, second = train(data, config), train(data, config)
    for key, value in first.state_dict.items():
        assert torch.equal(value, second.state_dict[key]), key


@pytest.mark.parametrize("name", sorted(registry.MODELS))
def test_every_model_trains_under_book_keeping_through_the_engine(name: str) -> None:
    """The whole DP path (Poisson loader, padding, clipping, Opacus' noise and accountant) for
    each model, resnet18's out-of-place blocks included; small physical batches force splits."""
    data = texts(n=120) if registry.MODELS[name].kind == "text" else blobs(n=120, side=16)
    config = TrainConfig(
        model=name, accountant="rdp", epochs=1, batch_size=24, physical_batch_size=10, seed=1, lr=0.1
    )
    run = plan_for(data, config)
    outcome = train(data, config)
    assert outcome.dp.steps == run.total_steps and outcome.dp.history == run.history()
    assert outcome.hyperparameters["grad_sample_mode"] == "bookkeeping"
    assert all(torch.isfinite(v).all() for v in outcome.state_dict.values())


@pytest.mark.parametrize("mode", ["ghost", "hooks"])
def test_opacus_own_clipping_can_be_chosen(mode: str) -> None:
    data = blobs(n=120)
    config = TrainConfig(model="cnn", accountant="rdp", epochs=1, batch_size=24, seed=1, clipping=mode)
    outcome = train(data, config)
    assert outcome.hyperparameters["grad_sample_mode"] == mode
    assert outcome.dp.clipping.startswith(
        f"flat per-sample, {'ghost' if mode == 'ghost' else 'per-sample gradients'}"
    )
    with pytest.raises(UsageError, match="unknown clipping") as caught:
        plan_for(data, TrainConfig(model="cnn", clipping="fast"))
    assert "bookkeeping" in caught.value.hint


class _Branches(nn.Module):
    """A used layer, one that runs but whose output the loss ignores, and one that never runs."""

    def __init__(self) -> None:
        super().__init__()
        self.used = nn.Linear(5, 3)
        self.ignored = nn.Linear(5, 3)
        self.idle = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.ignored(x)
        return self.used(x)


def test_layers_that_do_not_reach_the_loss_get_a_zero_gradient() -> None:
    torch.manual_seed(4)
    model, x, y = _Branches(), torch.randn(6, 5), torch.randint(0, 3, (6,))
    bound = middle(model, x, y)
    want = one_by_one(model, x, y, bound)
    got = clipped(model, x, y, bound)
    for layer in ("ignored", "idle"):
        for kind in ("weight", "bias"):
            assert torch.equal(got[f"{layer}.{kind}"], torch.zeros_like(want[f"used.{kind}"]))
            want[f"{layer}.{kind}"] = got[f"{layer}.{kind}"]
    assert_close(got, want)


def test_the_clipper_captures_only_its_own_forward_and_nothing_after_close() -> None:
    torch.manual_seed(5)
    model, x, y = registry_case32("cnn")
    clipper = BookkeepingClipper(model, 1.0)
    assert clipper.train(False) is clipper and not model.training
    assert clipper.train() is clipper and model.training
    for _ in range(2):  # the model's own passes, outside the clipper: nothing is recorded
        nn.functional.cross_entropy(model(x), y, reduction="sum").backward()
    with pytest.raises(RuntimeError, match="forward and a backward"):
        clipper.clip()
    model.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(clipper(x), y, reduction="sum").backward()
    assert all(p.grad is None for p in model.parameters()), "autograd computed no weight's gradient"
    norms = clipper.clip()
    assert norms.shape == (x.shape[0],) and bool((norms > 0).all())
    assert all(p.requires_grad for p in model.parameters()), "the weights are trainable again"
    with pytest.raises(RuntimeError, match="forward and a backward"):
        clipper.clip()  # a clip consumes what the pass recorded
    clipper.close()
    assert not any(m._forward_hooks for m in model.modules()), "close removes every hook"
    model.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y, reduction="sum").backward()  # plain autograd again
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(RuntimeError, match="forward and a backward"):
        clipper.clip()


def test_records_with_tiny_gradients_are_summed_whole_and_each_pass_is_clipped_once() -> None:
    """Opacus' factor C / (norm + 1e-6): a record whose gradient norm is far below 1e-6 is kept
    as it is (factor 1), never divided by a near-zero or negative number. The clipper serves
    pass after pass, and clip() without a new pass is refused."""
    torch.manual_seed(5)
    net = nn.Linear(4, 3, bias=False)
    clipper = BookkeepingClipper(net, 1.0)
    criterion = nn.CrossEntropyLoss(reduction="none")
    try:
        for scale in (1e-9, 1.0):  # tiny inputs give gradients of norm about 1e-9
            x, y = scale * torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
            criterion(clipper(x), y).sum().backward()
            norms = clipper.clip()
            want = torch.zeros_like(net.weight)
            for i in range(5):
                grad = torch.autograd.grad(criterion(net(x[i : i + 1]), y[i : i + 1]).sum(), net.weight)[0]
                want += grad * min(1.0, 1.0 / (float(grad.norm()) + 1e-6))
            if scale < 1:
                assert float(norms.max()) < 1e-8
            assert torch.allclose(net.weight.grad, want, rtol=1e-4, atol=1e-15)
            net.weight.grad = None
        with pytest.raises(RuntimeError, match=r"^clip\(\) needs a forward and a backward pass first$"):
            clipper.clip()
    finally:
        clipper.close()

"""The Gaussian noise DP-SGD actually adds, measured: for every clipping mode and every registry
model's recipe (its optimizer included), one private step taken twice on the same Poisson batch from
the same weights, with two noise seeds. The clipped sum is the same in both, so the difference of
the gradients the optimizer is handed is noise alone, with standard deviation
sqrt(2) x noise_multiplier x max_grad_norm / expected batch size (Opacus' mean reduction). The
accountant's epsilon is only true if that is the noise; a factor of two either way fails.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch.utils.data import DataLoader

from vault.train import TrainConfig, TrainData
from vault.train import models as registry
from vault.train.config import CLIPPING
from vault.train.data import IGNORE, BatchDataset, collate_batch, prepare_all
from vault.train.engine import PAD_FRACTION, plan_for
from vault.train.opacus_adapter import make_private, private_pass

RECORDS = 40  # two classes, 36 train after the 10% split; batches of 9: sample rate 1/4, expected batch 9
BATCH = 9
LOW, HIGH = 0.8, 1.25  # the measured/expected ratio; its own spread is about 1/sqrt(2n), 3% or less here

WORDS = ["win", "cash", "prize", "now", "see", "you", "at", "lunch", "call", "me"]


def dataset(name: str) -> TrainData:
    g = torch.Generator().manual_seed(7)
    labels = torch.arange(RECORDS, dtype=torch.int64) % 2
    if registry.MODELS[name].kind == "text":
        records = [
            " ".join(WORDS[int(j)] for j in torch.randint(0, len(WORDS), (6,), generator=g))
            for _ in range(RECORDS)
        ]
        return TrainData("text", ["a", "b"], records, labels)
    channels = 3 if name == "resnet18" else 1
    images = torch.randint(0, 256, (RECORDS, channels, 16, 16), dtype=torch.uint8, generator=g)
    return TrainData("image", ["a", "b"], images, labels)


def handed_to_optimizer(name: str, clipping: str, noise_seed: int) -> tuple[list[torch.Tensor], float, int]:
    """The gradients the wrapped optimizer receives at the first private step (clipped sum plus
    noise, scaled), with the plan's noise multiplier and max_grad_norm; wired as the engine wires
    a run (`make_private`, padded Poisson batches, `private_pass`)."""
    data = dataset(name)
    run = plan_for(
        data,
        TrainConfig(
            model=name, epochs=1, batch_size=BATCH, clipping=clipping, accountant="rdp", device="cpu"
        ),
    )
    assert run.train_records * run.sample_rate == BATCH, (run.train_records, run.sample_rate)
    torch.manual_seed(0)
    net = registry.build_model(run.model_config)
    for p in net.parameters():  # zero-initialised heads would give some modes no gradient at all
        if p.requires_grad and float(p.detach().abs().max()) == 0.0:
            torch.nn.init.normal_(p, std=0.05)
    x = prepare_all(net, data.x[: run.train_records], torch.device("cpu"))
    y = data.y[: run.train_records]
    pad_to = max(1, run.physical_batch_size // PAD_FRACTION) if clipping == "bookkeeping" else 1
    loader = DataLoader(
        BatchDataset(x, y, pad_to=pad_to), batch_size=run.batch_size, collate_fn=collate_batch
    )
    generators = (torch.Generator().manual_seed(1), torch.Generator().manual_seed(noise_seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, optimizer, criterion, loader, _ = make_private(net, loader, run, generators)
    params = [p for p in net.parameters() if p.requires_grad]
    seen: list[list[torch.Tensor]] = []
    optimizer.original_optimizer.register_step_pre_hook(
        lambda *_: seen.append([p.grad.detach().clone() for p in params])
    )
    try:
        model.train()
        xb, yb = next(iter(loader))
        assert int((yb != IGNORE).sum()) > 0, "an empty Poisson batch: change the sampling seed"
        optimizer.zero_grad()
        private_pass(model, criterion, xb, yb)
        optimizer.step()
    finally:
        model.close() if hasattr(model, "clip") else model._close()
    assert len(seen) == 1, "the optimizer skipped the step"
    return seen[0], float(run.noise_multiplier), float(run.max_grad_norm)


CASES = [
    pytest.param(
        name, clipping, id=f"{name}-{clipping}", marks=[pytest.mark.slow] if name == "resnet18" else []
    )
    for name in sorted(registry.MODELS)
    for clipping in CLIPPING
]


@pytest.mark.parametrize(("name", "clipping"), CASES)
def test_the_noise_added_has_the_standard_deviation_the_accountant_assumes(name: str, clipping: str) -> None:
    first, sigma, bound = handed_to_optimizer(name, clipping, noise_seed=11)
    second, sigma_again, bound_again = handed_to_optimizer(name, clipping, noise_seed=12)
    assert (sigma, bound) == (sigma_again, bound_again) and sigma > 0.3 and bound > 0
    diff = torch.cat([(a - b).flatten().double() for a, b in zip(first, second, strict=True)])
    assert diff.numel() >= 500, diff.numel()  # the ratio then spreads by about 3%
    expected = math.sqrt(2) * sigma * bound / BATCH
    measured = float(diff.std())
    assert LOW < measured / expected < HIGH, (
        f"{name}/{clipping}: noise std {measured / math.sqrt(2):.4g} per coordinate, expected"
        f" noise_multiplier {sigma:.4g} x max_grad_norm {bound:.4g} / batch {BATCH} = {expected / math.sqrt(2):.4g}"
    )
    assert abs(float(diff.mean())) < 5 * expected / math.sqrt(diff.numel())


def test_a_private_pass_reports_the_mean_loss_and_the_hits_of_the_real_records_only() -> None:
    """What the engine prints and the card records per batch: padding rows (label IGNORE) add no
    loss, no hit and no record; Opacus' own modes see no padding and report the batch as it is."""
    from vault.train.bookkeeping import BookkeepingClipper

    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    x = torch.randn(7, 4)
    logits = net(x).detach()
    predicted = logits.argmax(1)  # three records labelled as the net predicts, one not: 3 hits
    y = torch.tensor(
        [predicted[0], predicted[1], (predicted[2] + 1) % 3, predicted[3], IGNORE, IGNORE, IGNORE]
    )
    real = y != IGNORE
    want_loss = float(torch.nn.functional.cross_entropy(logits[real], y[real]))
    want_hits = float((logits[real].argmax(1) == y[real]).sum())
    assert want_hits == 3.0
    clipper = BookkeepingClipper(net, 1.0)
    try:
        loss, hits, records = private_pass(clipper, torch.nn.CrossEntropyLoss(reduction="none"), x, y)
    finally:
        clipper.close()
    assert records == 4 and hits == want_hits and loss == pytest.approx(want_loss, rel=1e-6)
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in net.parameters())
    net.zero_grad(set_to_none=True)
    loss, hits, records = private_pass(net, torch.nn.CrossEntropyLoss(), x[real], y[real])
    assert records == 4 and hits == want_hits and loss == pytest.approx(want_loss, rel=1e-6)
    empty = BookkeepingClipper(net, 1.0)
    try:
        assert private_pass(empty, torch.nn.CrossEntropyLoss(reduction="none"), x[~real], y[~real]) == (
            0.0,
            0.0,
            0,
        )
        one = torch.tensor([0, 4, 5, 6])  # one real record among padding: its own loss, not a share
        loss, hits, records = private_pass(empty, torch.nn.CrossEntropyLoss(reduction="none"), x[one], y[one])
        want_one = float(torch.nn.functional.cross_entropy(logits[:1], y[:1]))
        assert (records, hits) == (1, 1.0) and loss == pytest.approx(want_one, rel=1e-6)
    finally:
        empty.close()


def poisson_batches(sampling_seed: int, clipping: str) -> list[list[int]]:
    """The records of each Poisson batch of one epoch, as make_private's loader draws them."""
    data = dataset("scatternet")
    config = TrainConfig(model="scatternet", epochs=1, batch_size=BATCH, clipping=clipping, accountant="rdp")
    run = plan_for(data, config)
    net = registry.build_model(run.model_config)
    x = torch.arange(run.train_records, dtype=torch.float32).reshape(-1, 1)
    loader = DataLoader(
        BatchDataset(x, data.y[: run.train_records]), batch_size=run.batch_size, collate_fn=collate_batch
    )
    generators = (torch.Generator().manual_seed(sampling_seed), torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _, _, loader, _ = make_private(net, loader, run, generators)
    try:
        return [xb.reshape(-1).long().tolist() for xb, _ in loader]
    finally:
        model.close() if hasattr(model, "clip") else model._close()


@pytest.mark.parametrize("clipping", ["bookkeeping", "hooks"])
def test_poisson_batches_are_drawn_from_the_runs_sampling_generator(clipping: str) -> None:
    """A reproducible run, and a run's record of what it sampled, need the draw to come from the
    seeded sampling generator, never from torch's global one."""
    first = poisson_batches(21, clipping)
    torch.manual_seed(99)  # the global generator must not matter
    assert poisson_batches(21, clipping) == first
    assert poisson_batches(22, clipping) != first


@pytest.mark.parametrize("reproducible", [False, True])
def test_the_clipper_and_the_noise_use_the_runs_one_bound(reproducible: bool) -> None:
    """The bound the gradients are clipped to and the one the noise is scaled by are the plan's
    max_grad_norm: a clipper at 0 with the noise at C trains on noise alone and still passes the
    noise test above. A reproducible run never times the clipping variants (the choice could vary)."""
    data = dataset("cnn")
    config = TrainConfig(
        model="cnn", epochs=1, batch_size=BATCH, accountant="rdp", device="cpu", reproducible=reproducible
    )
    run = plan_for(data, config)
    net = registry.build_model(run.model_config)
    x = prepare_all(net, data.x[: run.train_records], torch.device("cpu"))
    loader = DataLoader(
        BatchDataset(x, data.y[: run.train_records]), batch_size=run.batch_size, collate_fn=collate_batch
    )
    generators = (torch.Generator().manual_seed(1), torch.Generator().manual_seed(2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, optimizer, _, _, _ = make_private(net, loader, run, generators)
    try:
        assert run.max_grad_norm > 0 and run.noise_multiplier > 0
        assert model.max_grad_norm == optimizer.max_grad_norm == run.max_grad_norm
        assert optimizer.noise_multiplier == run.noise_multiplier
        assert (model._tuner is None) == reproducible
    finally:
        model.close()

"""Opacus, where Strongroom goes beyond `PrivacyEngine.make_private`: the one module that touches
Opacus internals, checked against the pinned release when it is imported.

Book-keeping clipping is assembled from Opacus' own parts (the Poisson `DPDataLoader`,
`DPOptimizerFastGradientClipping` for the noise and scaling, the accountant's step hook) exactly as
`make_private` would; what make_private has no public way to say (whether the optimizer skipped
the last step as a partial logical batch, how to remove a wrapped model's hooks) is read here,
from attributes of the pinned version only. Opacus' modules are imported one by one
(vault/privacy/opacus_parts.py), so a run loads only the parts it uses.
"""

from __future__ import annotations

import functools
from importlib import metadata
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from vault.errors import StrongroomError
from vault.privacy import opacus_parts
from vault.train.bookkeeping import BookkeepingClipper
from vault.train.data import IGNORE
from vault.train.plan import RunPlan, optimizer_for

OPACUS = "1.6.0"  # the release whose internals this module reads (requirements.lock pins it)
if metadata.version("opacus") != OPACUS or opacus_parts.OPACUS != OPACUS:
    raise StrongroomError(
        f"Opacus {metadata.version('opacus')} is installed; Strongroom's DP training is written for "
        f"Opacus {OPACUS}",
        "install the versions requirements.lock pins: `make setup` (or from the wheelhouse)",
    )

# the parts a book-keeping run uses, without the package's other accountants, optimizers and
# per-sample gradient rules (PrivacyEngine is loaded for the "hooks" and "ghost" modes only)
DPDataLoader = opacus_parts.module("opacus.data_loader").DPDataLoader
DPOptimizerFastGradientClipping = opacus_parts.module(
    "opacus.optimizers.optimizer_fast_gradient_clipping"
).DPOptimizerFastGradientClipping
_samplers = opacus_parts.module("opacus.utils.uniform_sampler")
UniformWithReplacementSampler = _samplers.UniformWithReplacementSampler


class BookkeepingOptimizer(DPOptimizerFastGradientClipping):
    """Opacus' optimizer for clipped sums, with a clone where Opacus deep-copies in `accumulate`
    (a tenth of a millisecond a step, which is a tenth of a small model's step)."""

    def accumulate(self) -> None:
        for p in self.params:
            if p.summed_grad is None:
                p.summed_grad = p.grad.detach().clone()
            else:
                p.summed_grad.add_(p.grad.detach())


class EveryStepSampler(_samplers.DistributedUniformWithReplacementSampler):
    """Opacus' distributed Poisson sampler, yielding a rank's empty batch instead of skipping it.

    Each rank draws every record of its share with the run's sample rate, so the union is Poisson
    sampling of the whole dataset at that rate. The pinned release skips a rank's empty draw, and
    that rank would then take one step fewer than the others and leave them waiting in the
    all-reduce; an empty batch here is a step like any other (the engine zeroes its gradients).
    """

    def __iter__(self) -> Any:
        if self.shuffle:
            order = torch.Generator()
            order.manual_seed(self.shuffle_seed + self.epoch)
            indices = torch.randperm(self.total_size, generator=order)
        else:
            indices = torch.arange(self.total_size)
        indices = indices[self.rank : self.total_size : self.num_replicas]
        for _ in range(self.num_batches):
            mask = torch.rand(self.num_samples, generator=self.generator) < self.sample_rate
            yield indices[mask.nonzero(as_tuple=False).reshape(-1)].tolist()


@functools.cache
def _distributed_parts() -> tuple[Any, Any]:
    """(DPDDP, the book-keeping optimizer across processes), loaded by a run across processes only.

    The optimizer is Opacus' DistributedDPOptimizerFastGradientClipping with the same `accumulate`
    as BookkeepingOptimizer: every rank scales its clipped sum, rank 0 alone adds the noise, and
    the sums are all-reduced."""
    ddp = opacus_parts.module("opacus.distributed").DifferentiallyPrivateDistributedDataParallel
    base = opacus_parts.module(
        "opacus.optimizers.ddpoptimizer_fast_gradient_clipping"
    ).DistributedDPOptimizerFastGradientClipping
    optimizer = type(
        "DistributedBookkeepingOptimizer", (base,), {"accumulate": BookkeepingOptimizer.accumulate}
    )
    return ddp, optimizer


def last_step_skipped(optimizer: Any) -> bool:
    """Whether the optimizer's last `step` only accumulated (a physical batch inside a logical one)."""
    return bool(optimizer._is_last_step_skipped)


def release(model: Any) -> None:
    """Remove the hooks a private model holds on the network."""
    if isinstance(model, BookkeepingClipper):
        model.close()
    else:
        model._close()


def make_private(
    net: nn.Module,
    loader: DataLoader,
    run: RunPlan,
    generators: tuple[torch.Generator, torch.Generator],
    *,
    world_size: int = 1,
) -> tuple[Any, Any, Any, DataLoader, Any]:
    """(model, optimizer, criterion, Poisson loader, accountant) for the run's clipping mode.

    Opacus' PrivacyEngine sets up "hooks" and "ghost"; "bookkeeping" is assembled from the same
    Opacus parts (Poisson DPDataLoader, DPOptimizerFastGradientClipping for noise and scaling, the
    accountant's step hook) around BookkeepingClipper, exactly as make_private would.
    With `world_size` above 1 (inside a torch.distributed process group) it is Opacus' distributed
    set-up: DPDDP broadcasts rank 0's initial weights, each rank samples its share of the records
    at the run's sample rate, and the distributed optimizer adds the noise once (rank 0) and
    all-reduces the noisy sum; every rank's accountant records the single-process history.
    """
    sampling_generator, noise_generator = generators
    distributed = world_size > 1
    # DPDDP broadcasts rank 0's parameters into `net` when made; its forward is the module's
    module = _distributed_parts()[0](net) if distributed else net
    if run.grad_sample_mode == "bookkeeping":
        # This accountant only records the steps: Opacus' accountants all keep their history alike
        # in `step`, and the run's epsilon comes from that history through the run's own
        # accountant (accounting.epsilon_of). RDP's class loads in milliseconds; PRV's would load
        # SciPy's signal and integrate packages, which the calibration's worker has used instead.
        accountant = opacus_parts.accountant("rdp")
        loader = DPDataLoader.from_data_loader(loader, generator=sampling_generator, distributed=distributed)
        if distributed:
            loader.batch_sampler.__class__ = EveryStepSampler
        sample_rate = 1 / len(loader)
        expected = int(len(loader.dataset) * sample_rate)  # Opacus: per rank, the share of it
        kind = _distributed_parts()[1] if distributed else BookkeepingOptimizer
        optimizer = kind(
            optimizer_for(net.parameters(), run),
            noise_multiplier=run.noise_multiplier or 0.0,
            max_grad_norm=run.max_grad_norm or 0.0,
            expected_batch_size=expected / world_size if distributed else expected,
            loss_reduction="mean",
            generator=noise_generator,
        )
        optimizer.attach_step_hook(accountant.get_optimizer_hook_fn(sample_rate=sample_rate))
        # a reproducible run always computes the same way; others time the exact variants once
        model = BookkeepingClipper(net, run.max_grad_norm or 0.0, tune=not run.reproducible)
        criterion = nn.CrossEntropyLoss(reduction="none")  # per-sample losses; the optimizer averages
    else:
        engine = opacus_parts.module("opacus.privacy_engine").PrivacyEngine(accountant=run.accountant)
        accountant = engine.accountant
        private = engine.make_private(
            module=module,
            optimizer=optimizer_for(net.parameters(), run),
            criterion=nn.CrossEntropyLoss(),
            data_loader=loader,
            noise_multiplier=run.noise_multiplier,
            max_grad_norm=run.max_grad_norm,
            poisson_sampling=True,
            grad_sample_mode=run.grad_sample_mode,
            noise_generator=noise_generator,
        )
        if run.grad_sample_mode == "ghost":
            model, optimizer, criterion, loader = private
        else:
            (model, optimizer, loader), criterion = private, nn.CrossEntropyLoss()
        loader.batch_sampler.generator = sampling_generator
        if distributed:
            loader.batch_sampler.__class__ = EveryStepSampler
    sampler = loader.batch_sampler
    kind = EveryStepSampler if distributed else UniformWithReplacementSampler
    if not isinstance(sampler, kind) or abs(sampler.sample_rate - run.sample_rate) > 1e-12:
        raise StrongroomError("Opacus did not set up Poisson sampling as planned", "report this as a bug")
    return model, optimizer, criterion, loader, accountant


def private_pass(model: Any, criterion: Any, xb: torch.Tensor, yb: torch.Tensor) -> tuple[float, float, int]:
    """Forward and backward of one physical batch under DP; returns (mean loss, correct count,
    records). Book-keeping batches may carry padding rows labelled IGNORE (see BatchDataset):
    cross-entropy gives them loss 0, so their gradient, norm and share of the clipped sum are
    exactly zero, and they are not counted."""
    if not isinstance(model, BookkeepingClipper):
        logits = model(xb)
        loss = criterion(logits, yb)
        loss.backward()
        return float(loss.item()), float((logits.detach().argmax(1) == yb).sum()), int(yb.numel())
    n = int((yb != IGNORE).sum())
    logits = model(xb)
    loss = criterion(logits, yb).sum()
    loss.backward()
    model.clip()
    return float(loss.item()) / max(n, 1), float((logits.detach().argmax(1) == yb).sum()), n

"""The Poisson sampler of a run across processes (`EveryStepSampler`), in a real one-process gloo
group: every step yields a batch, an empty one included (a rank that skipped it would leave the
others waiting in the all-reduce), and each batch is exactly the records whose uniform draw fell
below the sample rate, in the order the epoch's shuffle gives them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from vault.train.opacus_adapter import EveryStepSampler

RECORDS = 12
RATE = 0.1  # low enough that some of the ten steps draw nothing


@pytest.fixture
def group(tmp_path: Path):
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def expected(shuffle: bool, seed: int, epoch: int) -> list[list[int]]:
    """The definition, drawn from the same generator state the sampler is given."""
    if shuffle:
        order = torch.Generator()
        order.manual_seed(seed + epoch)
        indices = torch.randperm(RECORDS, generator=order)
    else:
        indices = torch.arange(RECORDS)
    draws = torch.Generator().manual_seed(4)
    return [indices[torch.rand(RECORDS, generator=draws) < RATE].tolist() for _ in range(int(1 / RATE))]


@pytest.mark.parametrize("shuffle", [False, True])
def test_every_step_yields_its_poisson_batch_empty_ones_included(group: None, shuffle: bool) -> None:
    sampler = EveryStepSampler(
        total_size=RECORDS,
        sample_rate=RATE,
        shuffle=shuffle,
        shuffle_seed=3,
        generator=torch.Generator().manual_seed(4),
    )
    sampler.set_epoch(2)
    batches = list(sampler)
    want = expected(shuffle, 3, 2)
    assert len(batches) == len(sampler) == int(1 / RATE), "one batch per step, none skipped"
    assert [] in want, "the draw must include an empty step for this test to mean anything"
    assert batches == want
    assert all(isinstance(i, int) for batch in batches for i in batch)
    if shuffle:
        assert want != expected(False, 3, 2), (
            "the shuffle must change the order for this test to mean anything"
        )

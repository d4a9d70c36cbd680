"""`--nproc`: parsed without torch, 'auto' resolved to the GPUs present (1 on CPU), and the plan
refuses what the host or the request cannot do, naming the fix. The accounting of a plan does not
depend on the number of processes."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from vault.errors import UsageError
from vault.train.config import TrainConfig, gpus_present, parse_nproc, resolve_nproc
from vault.train.plan import plan


def test_parse_and_resolve() -> None:
    assert parse_nproc("2") == 2 and parse_nproc("AUTO") == "auto"
    for bad in ("0", "-1", "1.5", "", "65"):
        with pytest.raises(UsageError, match="--nproc must be"):
            parse_nproc(bad)
    assert resolve_nproc("auto", "cpu") == 1
    assert resolve_nproc("auto", "auto") == max(1, gpus_present())
    assert resolve_nproc(3, "cpu") == 3


def plan_of(**changes: object):
    config = replace(TrainConfig(epsilon=3.0, seed=1), **changes)  # type: ignore[arg-type]
    return plan(kind="image", classes=2, counts=[500, 500], input_shape=[1, 16, 16], config=config)


def test_the_plan_is_the_same_for_any_number_of_processes() -> None:
    one, two = plan_of(nproc=1), plan_of(nproc=2) if (os.cpu_count() or 1) >= 2 else plan_of(nproc=1)
    assert two.history() == one.history() and two.sample_rate == one.sample_rate
    assert two.total_steps == one.total_steps and two.noise_multiplier == one.noise_multiplier


def test_the_plan_refuses_what_cannot_run() -> None:
    with pytest.raises(UsageError, match="DP only"):
        plan_of(nproc=2, dp=False)
    cores = os.cpu_count() or 1
    with pytest.raises(UsageError, match=f"{cores} CPU cores"):
        plan_of(nproc=cores + 1, device="cpu")
    with pytest.raises(UsageError, match="nproc must be a whole number"):
        plan_of(nproc=0)

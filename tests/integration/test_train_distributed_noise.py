"""The Gaussian noise of a run across two processes, measured in the real command: noise is added once
per logical step across ranks (Opacus: rank 0 alone), so the averaged update carries one draw of
noise_multiplier x max_grad_norm / expected batch size, as in one process. Noise on every rank
would carry sqrt(2) times that (or twice, from generators seeded alike); none, zero.

Two runs of `strongroom train --nproc 2` with the same seed (the same split and initial weights) and
the sample rate 1 (every record in the one step, whatever the sampling draws) differ only by their
noise, which comes from the OS CSPRNG in each run: the difference of the two models' weights is
lr x (noise_1 - noise_2) / expected batch (SGD's first step, momentum or not, moves by lr x the
gradient), with standard deviation sqrt(2) x lr x noise_multiplier x max_grad_norm / batch per
coordinate. The clipped sums are the same in both runs, so they cancel.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load

from tests.integration.test_train_distributed import digits_vault, strongroom
from tests.support import PASSPHRASE
from vault.door import Vault
from vault.train import models as registry

pytestmark = pytest.mark.slow
RECORDS, TRAIN = 400, 360  # the default 10% held out
LOW, HIGH = 0.85, 1.18  # measured/expected; its own spread is about 1/sqrt(2n), under 1% here
# (n is several thousand weights); a factor of sqrt(2) either way falls outside


@pytest.fixture
def digits(tmp_path: Path) -> Path:
    return digits_vault(tmp_path, RECORDS)


def trained_weights(vault: Path, model: str) -> dict[str, torch.Tensor]:
    with Vault.open(vault, user="admin", passphrase=PASSPHRASE.encode()) as v:
        out = vault.parent / f"export-{model}"
        v.export(model, out)
    return load(io.BytesIO((out / "model.safetensors").read_bytes()).getvalue())


@pytest.mark.parametrize("clipping", ["bookkeeping", "hooks"])
def test_two_processes_add_the_noise_of_one(digits: Path, clipping: str) -> None:
    one_step = ("--batch-size", str(TRAIN), "--epochs", "1", "--seed", "7", "--lr", "1.0")
    args = ("train", "digits", "--epsilon", "3", "--nproc", "2", "--clipping", clipping, "--json")
    runs = []
    for _ in range(2):
        proc = strongroom(digits, *args, *one_step, "--max-grad-norm", "1.0")
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs.append(json.loads(proc.stdout))
    first, second = runs
    assert first["world_size"] == 2 and first["steps"] == 1 and first["sample_rate"] == 1.0
    sigma = first["noise_multiplier"]
    assert sigma == second["noise_multiplier"] and sigma > 0.3

    with Vault.open(digits, user="admin", passphrase=PASSPHRASE.encode()) as v:
        card = v.model_card(first["model"])
    config, hyper = card["model"]["config"], card["model"]["hyperparameters"]
    assert (hyper["lr"], hyper["max_grad_norm"], hyper["optimizer"]) == (1.0, 1.0, "sgd"), hyper
    trainable = [n for n, p in registry.build_model(config).named_parameters() if p.requires_grad]
    a, b = trained_weights(digits, first["model"]), trained_weights(digits, second["model"])
    diff = torch.cat([(a[n] - b[n]).flatten().double() for n in trainable])
    assert diff.numel() >= 2000, diff.numel()
    one_draw = 1.0 * sigma * 1.0 / TRAIN  # lr x noise_multiplier x max_grad_norm / expected batch
    measured = float(diff.std()) / math.sqrt(2)
    assert LOW < measured / one_draw < HIGH, (
        f"{clipping}: the update's noise has std {measured:.4g} per coordinate; one draw is "
        f"{one_draw:.4g}, noise on both ranks {one_draw * math.sqrt(2):.4g}"
    )
    assert abs(float(diff.mean())) < 5 * float(diff.std()) / math.sqrt(diff.numel())

"""Recipes on public data nobody tuned them for: no collapse on a small image set under DP, and a
text model at least as good as a hashed logistic regression without DP.

The data are ../shared/datasets (skipped when absent): MNIST's test images area-downsampled to
16x16 (the size and count of the public 1,797-image digits set), and AG News' test split.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests import peers
from tests.support import shared_path
from vault.train import TrainConfig, TrainData, recipes
from vault.train.data import split
from vault.train.engine import plan_for, train

pytestmark = pytest.mark.slow


def _digits(n: int = 1800) -> TrainData:
    shared_path("datasets", "mnist", "t10k-images-idx3-ubyte.gz")
    x, y = peers.small_digits(n)
    return TrainData.from_records("image", [str(i) for i in range(10)], x, y)


@pytest.fixture(scope="module")
def cnn_on_small_digits():
    return train(_digits(), TrainConfig(model="cnn", epsilon=3.0, accountant="rdp", seed=1))


def test_cnn_under_dp_does_not_collapse_on_1800_small_images(cnn_on_small_digits) -> None:
    outcome = cnn_on_small_digits  # lr 1.0 as tuned on 8k records: 0.22-0.25 here
    assert outcome.accuracy >= 0.6, (outcome.accuracy, outcome.hyperparameters)
    assert outcome.dp is not None and outcome.dp.epsilon <= 3.0 + 1e-9


@pytest.mark.xfail(reason="goal not reached yet: 0.79 measured (lr 0.18), scatternet 0.945", strict=False)
def test_cnn_under_dp_reaches_85_percent_of_the_default(cnn_on_small_digits) -> None:
    assert cnn_on_small_digits.accuracy >= 0.80, cnn_on_small_digits.accuracy


def test_cnn_learning_rate_follows_the_noise_and_an_explicit_rate_is_kept() -> None:
    small = plan_for(_digits(1800), TrainConfig(model="cnn", accountant="rdp"))
    large = plan_for(_digits(8000), TrainConfig(model="cnn", accountant="rdp", delta=1e-5))
    assert small.lr < 0.5 * large.lr, (small.lr, large.lr)
    assert small.lr == recipes.learning_rate(1.0, 280.0, small.batch_size, small.noise_multiplier)
    assert plan_for(_digits(1800), TrainConfig(model="cnn", accountant="rdp", lr=0.7)).lr == 0.7
    assert plan_for(_digits(1800), TrainConfig(model="cnn", dp=False)).lr == 0.05, "no noise, no scaling"


def _ag_news(n: int) -> tuple[list[str], list[int], list[str]]:
    shared_path("datasets", "ag_news", "test.csv")
    texts, labels, classes = peers.ag_news()
    return texts[:n], labels[:n], classes


def test_text_model_without_dp_matches_hashed_logistic_regression() -> None:
    texts, labels, classes = _ag_news(2000)
    data = TrainData("text", classes, texts, torch.tensor(labels, dtype=torch.int64))
    outcome = train(data, TrainConfig(model="bow", dp=False, val_split=0.2, seed=0))
    held_out = split(data.y, 0.2, 0)
    train_index, val_index = held_out.train.tolist(), held_out.val.tolist()
    predicted = peers.hashed_logistic_regression(
        [texts[i] for i in train_index], [labels[i] for i in train_index], [texts[i] for i in val_index], 4
    )
    peer = float((predicted == np.asarray([labels[i] for i in val_index])).mean())
    assert outcome.split == held_out.to_json(), "both are scored on the same held-out records"
    assert outcome.accuracy >= peer, (outcome.accuracy, peer)

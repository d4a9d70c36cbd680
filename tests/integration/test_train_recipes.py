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
from vault.train.models import MODELS

pytestmark = pytest.mark.slow


def _digits(n: int = 1800) -> TrainData:
    shared_path("datasets", "mnist", "t10k-images-idx3-ubyte.gz")
    x, y = peers.small_digits(n)
    return TrainData.from_records("image", [str(i) for i in range(10)], x, y)


@pytest.fixture(scope="module")
def cnn_on_small_digits():
    # reproducible: the DP noise and sampling come from the seed, so the figure is the same each run
    return train(
        _digits(), TrainConfig(model="cnn", epsilon=3.0, accountant="rdp", seed=1, reproducible=True)
    )


def test_cnn_under_dp_does_not_collapse_on_1800_small_images(cnn_on_small_digits) -> None:
    outcome = cnn_on_small_digits  # lr 1.0 as tuned on 8k records: 0.22-0.25 here
    assert outcome.accuracy >= 0.6, (outcome.accuracy, outcome.hyperparameters)
    assert outcome.dp is not None and outcome.dp.epsilon <= 3.0 + 1e-9


def test_cnn_under_dp_reaches_85_percent_of_the_default(cnn_on_small_digits) -> None:
    # scatternet, the default, reaches 0.945 on these records. The cnn of 16-32-64 channels
    # reached 0.779 (0.76-0.82 over seeds); with 8-16-32 channels under DP and the moving average
    # of its weights, 0.818 (0.80-0.86)
    assert cnn_on_small_digits.accuracy >= 0.85 * 0.945, cnn_on_small_digits.accuracy


def test_cnn_learning_rate_follows_the_noise_and_an_explicit_rate_is_kept() -> None:
    small = plan_for(_digits(1800), TrainConfig(model="cnn", accountant="rdp"))
    large = plan_for(_digits(8000), TrainConfig(model="cnn", accountant="rdp", delta=1e-5))
    assert small.lr < 0.5 * large.lr, (small.lr, large.lr)
    recipe = MODELS["cnn"].dp_recipe
    assert small.lr == recipes.learning_rate(
        recipe.lr, recipe.reference_snr, small.batch_size, small.noise_multiplier
    )
    assert plan_for(_digits(1800), TrainConfig(model="cnn", accountant="rdp", lr=0.7)).lr == 0.7
    plain = plan_for(_digits(1800), TrainConfig(model="cnn", dp=False))
    assert plain.lr == MODELS["cnn"].plain_recipe.lr == 0.1, "no noise, no scaling"


def test_cnn_without_dp_on_3000_real_digits() -> None:
    """The first 3,000 MNIST test images at 28x28, 600 held out by seed 1 (not the no-DP benchmark's
    split, bench/bench_cnn_plain.py). The recipe before (tanh, the last map averaged to 2x2, SGD lr
    0.05 for 10 epochs, last weights) reached 0.933 here (0.915-0.935 over seeds 1-3); with ReLU,
    the 4x4 map kept, images moved by up to 2 pixels, lr 0.1 for 8 epochs and the weights' moving
    average, 0.978 (0.960-0.978), in less time."""
    shared_path("datasets", "mnist", "t10k-images-idx3-ubyte.gz")
    x, y = peers.mnist_t10k()
    data = TrainData.from_records("image", [str(i) for i in range(10)], x[:3000].copy(), y[:3000].copy())
    outcome = train(data, TrainConfig(model="cnn", dp=False, val_split=0.2, seed=1))
    assert outcome.accuracy >= 0.95, (outcome.accuracy, outcome.hyperparameters)


TEXT_SETS = {"ag": peers.ag_news, "sms": peers.sms, "docs": peers.python_docs}


@pytest.mark.parametrize(("name", "records"), [("ag", 2000), ("sms", 2000), ("docs", 1200)])
def test_text_model_without_dp_matches_hashed_logistic_regression(name: str, records: int) -> None:
    if name != "docs":  # the documentation set is built from this Python's standard library
        shared_path("datasets", {"ag": "ag_news", "sms": "sms_spam_collection"}[name])
    texts, labels, classes = TEXT_SETS[name]()
    texts, labels = texts[:records], labels[:records]
    data = TrainData("text", classes, texts, torch.tensor(labels, dtype=torch.int64))
    outcome = train(data, TrainConfig(model="bow", dp=False, val_split=0.2, seed=0))
    held_out = split(data.y, 0.2, 0)
    train_index, val_index = held_out.train.tolist(), held_out.val.tolist()
    predicted = peers.hashed_logistic_regression(
        [texts[i] for i in train_index],
        [labels[i] for i in train_index],
        [texts[i] for i in val_index],
        len(classes),
    )
    peer = float((predicted == np.asarray([labels[i] for i in val_index])).mean())
    assert outcome.split == held_out.to_json(), "both are scored on the same held-out records"
    assert outcome.accuracy >= peer, (outcome.accuracy, peer)


def _python_docs() -> TrainData:
    texts, labels, classes = peers.python_docs()
    return TrainData("text", classes, texts, torch.tensor(labels, dtype=torch.int64))


def test_the_transformer_under_dp_learns_on_a_small_text_set() -> None:
    """1,200 paragraphs in 8 topics at epsilon 3: Adam at 1e-3 for 10 epochs stayed at chance
    (0.14 against 0.125); the recipe chosen on AG News subsets must learn here too."""
    data = _python_docs()
    outcome = train(
        data,
        TrainConfig(
            model="transformer", epsilon=3.0, accountant="rdp", seed=1, reproducible=True, val_split=0.2
        ),
    )
    assert outcome.dp is not None and outcome.dp.epsilon <= 3.0 + 1e-9
    assert outcome.accuracy >= 1.6 / len(data.classes), (outcome.accuracy, outcome.hyperparameters)


def test_the_transformer_without_dp_learns_on_a_small_text_set() -> None:
    data = _python_docs()
    outcome = train(data, TrainConfig(model="transformer", dp=False, seed=0, val_split=0.2))
    assert outcome.accuracy >= 0.5, (outcome.accuracy, outcome.hyperparameters)  # 0.38 with 5 epochs at 1e-3

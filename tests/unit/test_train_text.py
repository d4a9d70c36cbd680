"""bow under DP: the tokenizer's two fixed options (an English stop-word list, digits as 0) and the
bias scale, used by the DP recipe only; configs saved before them rebuild the model they were."""

from __future__ import annotations

import pytest
import torch

from vault.errors import UsageError
from vault.train import TrainConfig, TrainData
from vault.train.models import MODELS, build_model, model_config
from vault.train.plan import plan_for
from vault.train.text import ENGLISH_STOP_WORDS, HashingTokenizer

OLD_DESCRIPTION = {"kind": "hashed-ngrams", "hash": "crc32", "buckets": 65536, "ngrams": 2, "max_tokens": 256}


def test_stop_words_and_digits_are_fixed_steps_before_the_ngrams() -> None:
    plain = HashingTokenizer(buckets=1 << 16, ngrams=2, max_tokens=256)
    assert plain.to_json() == OLD_DESCRIPTION, "a tokenizer without the options is described as before"
    assert HashingTokenizer.from_json(OLD_DESCRIPTION) == plain
    private = HashingTokenizer(buckets=1 << 16, ngrams=1, max_tokens=256, stop_words="english", digits="zero")
    assert private.words("Call 08712 now: it's THE prize, 2 of them") == ["call", "00000", "prize", "0"]
    assert plain.words("it's 42") == ["it", "s", "42"]
    assert {"the", "of", "it", "s"} <= ENGLISH_STOP_WORDS and "prize" not in ENGLISH_STOP_WORDS
    assert private.to_json() == {**OLD_DESCRIPTION, "ngrams": 1, "stop_words": "english", "digits": "zero"}
    assert HashingTokenizer.from_json(private.to_json()) == private
    # the ids are those of the remaining words, hashed as without the options
    assert private.ids("the 7 dwarves") == HashingTokenizer(1 << 16, 1, 256).ids("0 dwarves")
    with pytest.raises(UsageError, match="stop-word list"):
        HashingTokenizer(stop_words="klingon")
    with pytest.raises(UsageError, match="digits"):
        HashingTokenizer(digits="drop")


def _texts(n: int = 200) -> TrainData:
    texts = [f"message {i} about the prize" if i % 2 else f"see you at {i}" for i in range(n)]
    return TrainData("text", ["ham", "spam"], texts, torch.arange(n) % 2)


def test_bow_under_dp_takes_unigrams_without_stop_words_and_a_smaller_bias_and_without_dp_neither() -> None:
    private = plan_for(_texts(), TrainConfig(model="bow", dp=True, epsilon=3.0))
    plain = plan_for(_texts(), TrainConfig(model="bow", dp=False))
    tokenizer = private.model_config["tokenizer"]
    assert (tokenizer["ngrams"], tokenizer["stop_words"], tokenizer["digits"]) == (1, "english", "zero")
    assert private.model_config["bias_scale"] == 0.3
    assert (private.lr, private.max_grad_norm, private.epochs, private.optimizer) == (0.03, 0.3, 40, "adam")
    assert plain.model_config["tokenizer"] == MODELS["bow"].defaults["tokenizer"] == OLD_DESCRIPTION
    assert "bias_scale" not in plain.model_config
    net = build_model(private.model_config)  # the saved config rebuilds the DP model
    assert net.tokenizer.stop_words == "english" and net.bias_scale == 0.3


def test_a_bow_config_saved_without_a_bias_scale_keeps_the_whole_bias() -> None:
    config = model_config("bow", "text", 3)
    old, scaled = build_model(config), build_model({**config, "bias_scale": 0.3})
    assert old.bias_scale == 1.0
    with torch.no_grad():
        for net in (old, scaled):
            net.embedding.weight.normal_()
            net.bias.weight.copy_(torch.tensor([[1.0, -2.0, 0.5]]))
        scaled.embedding.weight.copy_(old.embedding.weight)
    ids = old.prepare(["free prize now", ""])
    difference = old(ids) - scaled(ids)
    assert torch.allclose(difference, 0.7 * torch.tensor([[1.0, -2.0, 0.5]]).expand(2, 3), atol=1e-6)
    with pytest.raises(UsageError, match="bias_scale"):
        build_model({**config, "bias_scale": 0.0})

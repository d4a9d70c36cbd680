"""The training engine on real Opacus: Poisson sampling, cancellation, bad input, round trips."""

from __future__ import annotations

import json
import threading

import pytest
import torch

from tests.support import SHARED, blobs, texts
from vault.errors import Cancelled, InputError, StrongroomError, UsageError
from vault.train import StepProgress, TrainConfig, TrainData
from vault.train.engine import _is_out_of_memory, plan_for, train
from vault.train.evaluate import evaluate, load_model
from vault.train.weights import weights_from_bytes, weights_to_bytes

FAST = dict(accountant="rdp", epochs=2, batch_size=24, seed=3)


def test_poisson_batches_vary_and_steps_match_the_plan() -> None:
    data = blobs()
    events: list[StepProgress] = []
    config = TrainConfig(model="cnn", epsilon=4.0, **FAST)
    run = plan_for(data, config)
    outcome = train(
        data, config, on_event=lambda e: events.append(e) if isinstance(e, StepProgress) else None
    )
    sizes = [e.batch_size for e in events]
    assert len(sizes) == run.total_steps == outcome.dp.steps
    assert len(set(sizes)) > 3, "Poisson sampling draws batches of varying size"
    assert abs(sum(sizes) / len(sizes) - run.sample_rate * run.train_records) < 6
    assert outcome.dp.history == [(run.noise_multiplier, run.sample_rate, run.total_steps)]
    assert outcome.dp.sampling == "poisson" and outcome.dp.epsilon <= 4.0 + 1e-9
    epsilons = [e.epsilon_so_far for e in events]
    assert epsilons == sorted(epsilons) and epsilons[-1] <= 4.0 + 1e-9


def test_cancel_between_steps_reports_the_steps_taken() -> None:
    cancel = threading.Event()

    def on_event(event: object) -> None:
        if isinstance(event, StepProgress) and event.step == 3:
            cancel.set()

    data = blobs()
    run = plan_for(data, TrainConfig(model="cnn", **FAST))
    with pytest.raises(Cancelled) as caught:
        train(data, TrainConfig(model="cnn", **FAST), on_event=on_event, cancel=cancel)
    detail = caught.value.detail
    assert detail["steps"] == 3 and detail["dp"] is True
    assert detail["history"] == [[run.noise_multiplier, run.sample_rate, 3]]
    assert 0 < detail["epsilon"] < 3.0


def test_noise_is_fresh_unless_reproducible() -> None:
    data = blobs(n=120)
    base = dict(model="scatternet", accountant="rdp", epochs=1, batch_size=20, seed=11)
    first = train(data, TrainConfig(**base))
    second = train(data, TrainConfig(**base))
    assert first.split == second.split, "the seed fixes the held-out split"
    assert not torch.equal(first.state_dict["classifier.weight"], second.state_dict["classifier.weight"])
    again = [train(data, TrainConfig(**base, reproducible=True)) for _ in range(2)]
    assert torch.equal(again[0].state_dict["classifier.weight"], again[1].state_dict["classifier.weight"])
    assert again[0].dp.noise_source.startswith("derived from the seed")
    assert first.dp.noise_source == "os-csprng"


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [
        (dict(model="alexnet"), UsageError, "unknown model"),
        (dict(model="bow"), UsageError, "is for text data"),
        (dict(epsilon=0.0), UsageError, "epsilon must be a positive"),
        (dict(epsilon=-1.0), UsageError, "epsilon must be a positive"),
        (dict(delta=1 / 200), UsageError, "below 1/n"),
        (dict(batch_size=10_000), UsageError, "larger than the"),
        (dict(val_split=0.9), UsageError, "val-split"),
        (dict(val_split=0.0), UsageError, "need held-out records"),
        (dict(accountant="gdp"), UsageError, "unknown accountant"),
        (dict(device="tpu"), UsageError, "unknown device"),
        (dict(epochs=0), UsageError, "epochs"),
    ],
)
def test_bad_requests_are_refused_before_training(change: dict, error: type, words: str) -> None:
    config = TrainConfig(**{**dict(model="cnn", accountant="rdp", seed=0), **change})
    with pytest.raises(error, match=words) as caught:
        train(blobs(n=200), config)
    assert caught.value.hint


def test_text_model_on_image_data_and_tiny_datasets_are_refused() -> None:
    with pytest.raises(UsageError, match="is for image data"):
        train(texts(), TrainConfig(model="cnn"))
    with pytest.raises(InputError, match="too small"):
        train(blobs(n=8), TrainConfig(model="cnn", accountant="rdp"))
    lonely = TrainData("image", ["a", "b"], blobs(n=12).x, torch.tensor([0] * 11 + [1]))
    with pytest.raises(UsageError, match="larger than"):
        train(lonely, TrainConfig(model="cnn", batch_size=12, accountant="rdp"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has CUDA")
def test_cuda_asked_for_without_a_gpu() -> None:
    with pytest.raises(UsageError, match="CUDA") as caught:
        train(blobs(), TrainConfig(model="cnn", device="cuda"))
    assert "--device cpu" in caught.value.hint


def test_a_real_failed_allocation_is_recognised_as_out_of_memory() -> None:
    with pytest.raises(RuntimeError) as caught:
        torch.empty(1 << 62, dtype=torch.uint8)
    assert _is_out_of_memory(caught.value)
    assert not _is_out_of_memory(RuntimeError("shape mismatch"))
    assert issubclass(Cancelled, StrongroomError)


def test_weights_round_trip_through_safetensors_and_evaluate() -> None:
    data = blobs()
    outcome = train(data, TrainConfig(model="cnn", dp=False, epochs=3, seed=5))
    blob = weights_to_bytes(outcome.state_dict, outcome.model_config)
    assert not blob.startswith((b"\x80", b"PK")), "safetensors, not pickle or a torch zip"
    restored = weights_from_bytes(blob)
    assert restored.keys() == outcome.state_dict.keys()
    assert all(torch.equal(restored[k], outcome.state_dict[k]) for k in restored)
    header = json.loads(blob[8 : 8 + int.from_bytes(blob[:8], "little")])  # docs/FORMAT.md, safetensors
    assert json.loads(header["__metadata__"]["model_config"]) == outcome.model_config
    metrics = evaluate(restored, outcome.model_config, data)
    assert metrics["accuracy"] > 0.9
    model = load_model(restored, outcome.model_config)
    assert not model.training


def test_text_models_train_with_and_without_dp() -> None:
    data = texts()
    plain = train(data, TrainConfig(model="bow", dp=False, epochs=3, seed=1))
    assert plain.accuracy == 1.0 and plain.dp is None and plain.leakage["bound_auc"] is None
    private = train(
        data, TrainConfig(model="transformer", epsilon=8.0, accountant="rdp", epochs=1, batch_size=32, seed=1)
    )
    assert private.dp.steps > 0 and private.metrics["samples"] == private.split["val"]


def test_round_trip_on_real_mnist() -> None:
    folder = SHARED / "datasets" / "mnist"
    if not folder.is_dir():
        pytest.skip("../shared/datasets/mnist absent: the MNIST files live beside the repo")
    from vault.ingest import ImportOptions, decode

    decoded = decode(
        folder / "t10k-images-idx3-ubyte.gz", ImportOptions(labels=folder / "t10k-labels-idx1-ubyte.gz")
    )
    train_part = TrainData.from_records(
        "image", decoded.classes, decoded.images[:1500], decoded.labels[:1500]
    )
    test_part = TrainData.from_records("image", decoded.classes, decoded.images[-500:], decoded.labels[-500:])
    # Reproducible: sampling and noise derive from the seed, so the figures below do not wander.
    outcome = train(train_part, TrainConfig(epsilon=3.0, accountant="rdp", seed=0, reproducible=True))
    assert outcome.model_config["name"] == "scatternet"
    assert outcome.accuracy > 0.75
    metrics = evaluate(
        weights_from_bytes(weights_to_bytes(outcome.state_dict)), outcome.model_config, test_part
    )
    assert metrics["accuracy"] > 0.75, "ten classes: chance is 0.1"
    assert len(metrics["confusion"]) == 10 and metrics["macro_f1"] > 0.7
    assert outcome.leakage["auc"] < outcome.leakage["bound_auc"]

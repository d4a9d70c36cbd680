"""The learning-rate rule of vault/train/recipes.py: scaled by a power of the signal-to-noise ratio
below the reference, floored, and untouched without noise or above the reference; a recipe's model
options and moving average of the weights."""

from __future__ import annotations

import pytest
import torch

from vault.errors import UsageError
from vault.train import TrainConfig, TrainData
from vault.train.engine import WeightAverage
from vault.train.models import MODELS, build_model, model_config
from vault.train.plan import plan_for
from vault.train.recipes import MIN_LR_SCALE, learning_rate, signal_to_noise


def test_rate_is_kept_at_or_above_the_reference_and_without_noise() -> None:
    assert learning_rate(1.0, 280.0, 560, 2.0) == 1.0
    assert learning_rate(1.0, 280.0, 600, 2.0) == 1.0
    assert learning_rate(1.0, 280.0, 64, None) == 1.0
    assert learning_rate(0.3, None, 64, 5.0) == 0.3


def test_rate_shrinks_with_the_squared_ratio_and_stops_at_the_floor() -> None:
    assert signal_to_noise(140, 1.0) == 140.0
    assert learning_rate(1.0, 280.0, 140, 1.0) == pytest.approx(0.5**1.5)
    rates = [learning_rate(1.0, 280.0, b, 2.0) for b in (8, 64, 128, 256, 512)]
    assert rates == sorted(rates)
    assert learning_rate(1.0, 280.0, 1, 10.0) == MIN_LR_SCALE


def test_the_weight_average_warms_up_then_decays_at_the_recipes_rate_and_replaces_the_weights() -> None:
    weight = torch.nn.Parameter(torch.zeros(2))
    average = WeightAverage([weight], 0.5)
    expected = torch.zeros(2)
    for step, value in enumerate([4.0, -2.0, 8.0, 1.0, 3.0], start=1):
        with torch.no_grad():
            weight.fill_(value)
        average.update()
        decay = min(0.5, (1 + step) / (10 + step))  # 0.18, 0.25, 0.31, 0.36, 0.4: the warm-up
        expected = decay * expected + (1 - decay) * value
    assert average.steps == 5
    assert torch.allclose(average.average[0], expected)
    assert weight.tolist() == [3.0, 3.0], "the weights stay the last step's until the average is applied"
    average.apply()
    assert torch.allclose(weight.detach(), expected) and weight.requires_grad

    plain = torch.nn.Parameter(torch.ones(2))
    none = WeightAverage([plain], None)
    none.update()
    none.apply()
    assert none.average == [] and none.steps == 0 and plain.tolist() == [1.0, 1.0]


def test_the_cnn_under_dp_has_fewer_weights_and_without_dp_relu_whole_maps_and_shifts() -> None:
    def digits(side: int) -> TrainData:
        images = torch.randint(0, 256, (400, 1, side, side), dtype=torch.uint8)
        return TrainData.from_records("image", list("abcd"), images, torch.arange(400) % 4)

    private = plan_for(digits(16), TrainConfig(model="cnn", epsilon=3.0, accountant="rdp"))
    plain = plan_for(digits(16), TrainConfig(model="cnn", dp=False))
    assert private.model_config["widths"] == [8, 16, 32] and private.weight_average == 0.97
    assert private.model_config["first_kernel"] == 3 and private.hyperparameters()["weight_average"] == 0.97
    # under DP on small images the network is the one it was (tanh, no shifts, 2x2 last map)
    assert not {"activation", "pool", "shift"} & set(private.model_config)
    assert plain.model_config["widths"] == MODELS["cnn"].defaults["widths"] == [16, 32, 64]
    assert "first_kernel" not in plain.model_config
    assert (plain.model_config["activation"], plain.model_config["pool"], plain.model_config["shift"]) == (
        "relu",
        2,
        2,
    )
    assert plain.weight_average == 0.99 and plain.hyperparameters()["weight_average"] == 0.99
    assert plan_for(digits(28), TrainConfig(model="cnn", dp=False)).model_config["pool"] == 4
    net = build_model(private.model_config)  # the saved config rebuilds the narrower network
    assert [m.out_channels for m in net.modules() if isinstance(m, torch.nn.Conv2d)] == [8, 16, 32]
    assert sum(p.numel() for p in net.parameters()) < 0.4 * sum(
        p.numel() for p in build_model(plain.model_config).parameters()
    )
    for side, kernel in ((23, 3), (24, 5), (28, 5)):  # a 5x5 first filter from 24 pixels a side
        large = plan_for(digits(side), TrainConfig(model="cnn", epsilon=3.0, accountant="rdp"))
        assert large.model_config["first_kernel"] == kernel, side
        # ReLU and one-pixel shifts come with the 5x5 filter (they lost 5 points on 16-pixel digits)
        expected = ("relu", 1) if kernel == 5 else ("tanh", 0)
        config = large.model_config
        assert (config.get("activation", "tanh"), config.get("shift", 0)) == expected, side
        convolutions = [
            m for m in build_model(large.model_config).modules() if isinstance(m, torch.nn.Conv2d)
        ]
        assert [c.kernel_size for c in convolutions] == [(kernel, kernel), (3, 3), (3, 3)]
        assert [c.padding for c in convolutions] == [(kernel // 2, kernel // 2), (1, 1), (1, 1)]
    with pytest.raises(UsageError, match="first_kernel"):
        build_model({**private.model_config, "first_kernel": 4})


def test_scatternet_under_dp_takes_second_order_where_the_records_outnumber_its_inputs() -> None:
    def digits(side: int, records: int) -> TrainData:
        images = torch.randint(0, 256, (records, 1, side, side), dtype=torch.uint8)
        return TrainData.from_records("image", list("abcd"), images, torch.arange(records) % 4)

    def order(side: int, records: int, dp: bool = True) -> int:
        config = TrainConfig(model="scatternet", dp=dp, epsilon=3.0, accountant="rdp")
        return plan_for(digits(side, records), config).model_config["order"]

    # 81 paths x 4 x 4 = 1,296 inputs at 16 pixels a side; 81 x 7 x 7 = 3,969 at 28
    assert (order(16, 1296), order(16, 1295)) == (2, 1)
    assert (order(28, 1800), order(28, 3969), order(28, 3968)) == (1, 2, 1)
    assert order(16, 2000, dp=False) == 1  # the recipe without DP keeps the first order
    net = build_model(plan_for(digits(16, 1400), TrainConfig(model="scatternet", epsilon=3.0)).model_config)
    assert net.scattering.paths() == 81 and net.classifier.in_features == 81 * 16
    assert net.norm.num_groups == 27, "the second order's maps normalised three at a time"
    first = build_model(plan_for(digits(16, 1200), TrainConfig(model="scatternet", epsilon=3.0)).model_config)
    assert first.norm.num_groups == 17, "the first order keeps one map a group"


def test_a_second_order_scatternet_exports_the_logits_torch_computes() -> None:
    ort = pytest.importorskip("onnxruntime")
    from vault.train import portable

    config = model_config("scatternet", "image", 3, (1, 16, 16), {"order": 2, "groups": 27})
    torch.manual_seed(0)
    net = build_model(config)
    torch.nn.init.normal_(net.classifier.weight, std=0.1)
    session = ort.InferenceSession(portable.onnx_model(net.state_dict(), config))
    images = torch.randint(0, 256, (5, 1, 16, 16), dtype=torch.uint8)
    (logits,) = session.run(None, {session.get_inputs()[0].name: images.numpy()})
    with torch.no_grad():
        expected = net(net.prepare(images)).numpy()
    assert logits.shape == (5, 3)
    assert abs(logits - expected).max() < 1e-4


def test_a_runs_numbers_and_target_are_fixed_without_torch() -> None:
    """The door plans a DP run's privacy numbers while torch loads (vault/privacy/calibration.py),
    so the recipes module, its schedule and its privacy check load no torch; they are the plan's."""
    from tests.support import run_python

    probe = run_python(
        """
        import sys
        from vault.train import recipes
        from vault.train.config import TrainConfig
        sizes = recipes.schedule("image", [900, 900], TrainConfig(epsilon=3.0, val_split=0.1))
        target = recipes.privacy(sizes, TrainConfig(epsilon=3.0, val_split=0.1))
        print("torch" in sys.modules, sizes.model, sizes.batch_size, sizes.epochs, target.sample_rate, target.delta)
        """
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    words = probe.stdout.split()
    assert words[:2] == ["False", "scatternet"]
    run = plan_for(blobs_like(1800), TrainConfig(epsilon=3.0, val_split=0.1))
    assert [int(words[2]), int(words[3]), float(words[4]), float(words[5])] == [
        run.batch_size,
        run.epochs,
        run.sample_rate,
        run.delta,
    ]


def blobs_like(n: int) -> TrainData:
    """n 16x16 grey images in two balanced classes (only the counts and shape matter to a plan)."""
    return TrainData("image", ["a", "b"], torch.zeros(n, 1, 16, 16, dtype=torch.uint8), torch.arange(n) % 2)

"""CIFAR-10 subset at DP epsilon 3: the default image recipe against Opacus' CIFAR-10 example.

Data: ../shared/datasets/cifar10_jpg_subset (3,000 training and 1,000 test JPEGs, 10 classes).
Both train on the 3,000 and are scored on the 1,000 test images, at epsilon 3 and delta 1e-5
(below 1/3,000), with Poisson sampling.

  ours: the engine's default recipe (`strongroom train` with no model or recipe flags), records in
        memory, scored with the engine's evaluation on the test images.
  peer: the recipe of Opacus' examples/cifar10.py: its four-block convolutional network (32, 64,
        64, 128 channels, average pooling, ReLU), SGD lr 0.1 momentum 0.9, sample rate 0.04,
        per-sample clipping at 10, inputs normalised with CIFAR-10's channel statistics, no
        augmentation under DP, the noise from `make_private_with_epsilon` (PRV accountant) for
        --peer-epochs epochs (the example's 90 by default).

Prints one line per side (accuracy, epsilon, seconds) and the accuracy difference.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

EPSILON, DELTA = 3.0, 1e-5
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)


def ours(seed: int) -> tuple[float, float]:
    from tests import peers
    from vault.train import TrainConfig, TrainData
    from vault.train.engine import train
    from vault.train.evaluate import evaluate

    x, y, classes = peers.cifar_subset("train")
    test_x, test_y, _ = peers.cifar_subset("test")
    outcome = train(TrainData.from_records("image", classes, x, y), TrainConfig(epsilon=EPSILON, seed=seed))
    scored = evaluate(
        outcome.state_dict, outcome.model_config, TrainData.from_records("image", classes, test_x, test_y)
    )
    assert outcome.dp is not None
    return float(scored["accuracy"]), outcome.dp.epsilon


def peer(epochs: int, seed: int) -> tuple[float, float]:
    import torch
    import torch.nn as nn
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    from tests import peers

    torch.manual_seed(seed)
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)

    def prepared(part: str) -> TensorDataset:
        x, y, _ = peers.cifar_subset(part)
        return TensorDataset((torch.from_numpy(x).float() / 255 - mean) / std, torch.from_numpy(y))

    train_set, test_set = prepared("train"), prepared("test")
    model = nn.Sequential(
        nn.Conv2d(3, 32, kernel_size=3, stride=1, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(32, 64, kernel_size=3, stride=1, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(64, 64, kernel_size=3, stride=1, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(64, 128, kernel_size=3, stride=1, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(start_dim=1, end_dim=-1),
        nn.Linear(128, 10, bias=True),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loader = DataLoader(train_set, batch_size=int(0.04 * len(train_set)))
    engine = PrivacyEngine(accountant="prv")
    model, optimizer, loader = engine.make_private_with_epsilon(
        module=model,
        optimizer=optimizer,
        data_loader=loader,
        target_epsilon=EPSILON,
        target_delta=DELTA,
        epochs=epochs,
        max_grad_norm=10.0,
    )
    criterion = nn.CrossEntropyLoss()
    for _ in range(epochs):
        model.train()
        for images, target in loader:
            if len(target) == 0:
                continue
            optimizer.zero_grad()
            criterion(model(images), target).backward()
            optimizer.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for images, target in DataLoader(test_set, batch_size=256):
            correct += int((model(images).argmax(1) == target).sum())
    return correct / len(test_set), float(engine.get_epsilon(DELTA))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--peer-epochs", type=int, default=90, help="the peer's epochs (its example's default: 90)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-peer", action="store_true")
    args = parser.parse_args()
    from tests import peers

    if not (peers.DATASETS / "cifar10_jpg_subset").is_dir():
        print(f"skip: {peers.DATASETS / 'cifar10_jpg_subset'} is absent")
        return 0
    started = time.perf_counter()
    accuracy, epsilon = ours(args.seed)
    ours_s = time.perf_counter() - started
    print(
        f"ours  default recipe   test accuracy {accuracy:.4f}  epsilon {epsilon:.3f}  {ours_s:7.1f} s",
        flush=True,
    )
    if args.skip_peer:
        return 0
    started = time.perf_counter()
    peer_accuracy, peer_epsilon = peer(args.peer_epochs, args.seed)
    peer_s = time.perf_counter() - started
    print(
        f"peer  Opacus cifar10.py {args.peer_epochs} epochs  test accuracy {peer_accuracy:.4f}  "
        f"epsilon {peer_epsilon:.3f}  {peer_s:7.1f} s"
    )
    print(
        f"accuracy difference {accuracy - peer_accuracy:+.4f} (goal: above 0), wall ratio {ours_s / peer_s:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

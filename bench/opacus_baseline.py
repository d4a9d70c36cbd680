"""The peer for the MNIST accuracy goal: Opacus' own SampleConvNet example recipe, hand-tuned.

Opacus' examples/mnist.py network and loop (batch 256, SGD lr 0.5, 15 epochs, Poisson sampling,
PRV accountant, make_private_with_epsilon) on the MNIST t10k file: first 8,000 images to train,
last 2,000 held out (--train-records, --held-out for other sizes). Prints one JSON line: accuracy,
epsilon, wall seconds (whole process) and the training loop's seconds (loop_s).
"""

from __future__ import annotations

import argparse
import gzip
import json
import struct
import sys
import time
import warnings
from pathlib import Path

PROCESS_START = time.time()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from opacus import PrivacyEngine  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "mnist"
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def read_idx(path: Path) -> np.ndarray:
    """Reads a gzip-compressed IDX file (big-endian header, uint8 payload)."""
    raw = gzip.decompress(path.read_bytes())
    magic, count = struct.unpack(">II", raw[:8])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * dims, raw[4 : 4 + 4 * dims])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


class SampleConvNet(nn.Module):
    """The network of Opacus' examples/mnist.py."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 8, 2, padding=3)
        self.conv2 = nn.Conv2d(16, 32, 4, 2)
        self.fc1 = nn.Linear(32 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(x, 2, 1)
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2, 1)
        x = x.view(-1, 32 * 4 * 4)
        x = F.relu(self.fc1(x))
        return self.fc2(x)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epsilon", type=float, default=3.0)
    parser.add_argument("--delta", type=float, default=1e-5)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--max-grad-norm", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-records", type=int, default=8000)
    parser.add_argument("--held-out", type=int, default=2000)
    args = parser.parse_args()
    if not MNIST.is_dir():
        print(f"skip: {MNIST} absent", file=sys.stderr)
        return 0
    warnings.filterwarnings("ignore")
    torch.manual_seed(args.seed)
    images = read_idx(MNIST / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(MNIST / "t10k-labels-idx1-ubyte.gz")
    x = (torch.from_numpy(images.copy()).float().div(255).unsqueeze(1) - MNIST_MEAN) / MNIST_STD
    y = torch.from_numpy(labels.astype(np.int64))
    end = args.train_records + args.held_out
    train = TensorDataset(x[: args.train_records], y[: args.train_records])
    x_test, y_test = x[args.train_records : end], y[args.train_records : end]

    model = SampleConvNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0)
    loader = DataLoader(train, batch_size=args.batch_size)
    engine = PrivacyEngine(accountant="prv")
    model, optimizer, loader = engine.make_private_with_epsilon(
        module=model,
        optimizer=optimizer,
        data_loader=loader,
        target_epsilon=args.epsilon,
        target_delta=args.delta,
        epochs=args.epochs,
        max_grad_norm=args.max_grad_norm,
        poisson_sampling=True,
    )
    criterion = nn.CrossEntropyLoss()
    loop_started = time.perf_counter()
    epoch_s = []
    for _ in range(args.epochs):
        started = time.perf_counter()
        model.train()
        for data, target in loader:
            optimizer.zero_grad()
            loss = criterion(model(data), target)
            loss.backward()
            optimizer.step()
        epoch_s.append(time.perf_counter() - started)
    loop_s = time.perf_counter() - loop_started
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    print(
        json.dumps(
            {
                "peer": "opacus SampleConvNet",
                "accuracy": round(accuracy, 4),
                "epsilon": round(engine.get_epsilon(args.delta), 3),
                "noise_multiplier": round(optimizer.noise_multiplier, 4),
                "wall_s": round(time.time() - PROCESS_START, 2),
                "loop_s": round(loop_s, 3),
                "epoch_s": round(sorted(epoch_s)[len(epoch_s) // 2], 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""cnn without DP on MNIST: Strongroom's `cnn` recipe against Opacus' SampleConvNet trained without DP.

Both sides run in this process on the same records: MNIST's t10k file (10,000 images), split as
`strongroom train --model cnn --no-dp --val-split 0.1 --seed 0` splits it (the engine's stratified
split by the seed: 9,000 to train, 1,000 held out). Ours is the engine (`vault.train.engine.train`,
the cnn's plain recipe); its training time is the card's `timings.train_s` (the training loop,
held-out accuracy after each epoch included). The peer is the network of Opacus' MNIST example
(examples/mnist.py, as in bench/opacus_baseline.py: 8x8 and 4x4 strided convolutions, ReLU,
max-pooling, MNIST mean/std scaling) trained as that example trains with `--disable-dp`: plain SGD
without momentum, lr 0.1, batch 64, 10 epochs, no clipping, no noise; here as a torch loop in
this process, the records shuffled each epoch. (bench/opacus_baseline.py's DP recipe, lr 0.5 at
batch 256, diverges without clipping: 0.103.) Its time is its training loop. Rounds alternate the
sides; the figures are medians.
Goal: held-out accuracy of at least 0.980 with at most 10 s of training on the quiet 2-core
development machine.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MNIST = REPO.parent / "shared" / "datasets" / "mnist"
sys.path.insert(0, str(REPO))

GOAL_ACCURACY, GOAL_SECONDS = 0.98, 10.0
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def load_t10k():
    import numpy as np

    images = gzip.decompress((MNIST / "t10k-images-idx3-ubyte.gz").read_bytes())
    labels = gzip.decompress((MNIST / "t10k-labels-idx1-ubyte.gz").read_bytes())
    x = np.frombuffer(images, np.uint8, offset=16).reshape(-1, 1, 28, 28).copy()
    return x, np.frombuffer(labels, np.uint8, offset=8).astype(np.int64)


def ours(data, seed: int) -> dict:
    from vault.train import TrainConfig
    from vault.train.engine import train

    outcome = train(data, TrainConfig(model="cnn", dp=False, val_split=0.1, seed=seed))
    return {
        "accuracy": outcome.accuracy,
        "train_s": outcome.timings["train_s"],
        "epochs": outcome.hyperparameters["epochs"],
        "recipe": {
            k: outcome.hyperparameters[k] for k in ("optimizer", "lr", "batch_size", "weight_average")
        },
        "options": {
            k: v for k, v in outcome.model_config.items() if k in ("widths", "activation", "pool", "shift")
        },
        "split": outcome.split,
    }


def peer(data, held_out, seed: int, epochs: int, batch_size: int, lr: float) -> dict:
    import torch
    import torch.nn.functional as F  # noqa: N812

    sys.path.insert(0, str(REPO / "bench"))
    from opacus_baseline import SampleConvNet  # the network of Opacus' examples/mnist.py

    x = (data.x.float().div(255) - MNIST_MEAN) / MNIST_STD
    train_x, train_y = x[held_out.train], data.y[held_out.train]
    val_x, val_y = x[held_out.val], data.y[held_out.val]
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = SampleConvNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0)
    started = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(train_y.numel(), generator=generator)
        for start in range(0, order.numel(), batch_size):
            index = order[start : start + batch_size]
            optimizer.zero_grad()
            F.cross_entropy(model(train_x[index]), train_y[index]).backward()
            optimizer.step()
    train_s = time.perf_counter() - started
    model.eval()
    with torch.no_grad():
        accuracy = float((model(val_x).argmax(1) == val_y).float().mean())
    return {"accuracy": accuracy, "train_s": train_s}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=1, help="alternate the two sides this many times")
    parser.add_argument("--seed", type=int, default=0, help="the split's and both initialisations' seed")
    parser.add_argument("--peer-epochs", type=int, default=10)
    parser.add_argument("--peer-batch-size", type=int, default=64)
    parser.add_argument("--peer-lr", type=float, default=0.1)
    args = parser.parse_args()
    if not MNIST.is_dir():
        print(f"skip: {MNIST} is absent")
        return 0
    import torch

    from vault.train import TrainData
    from vault.train.data import split

    x, y = load_t10k()
    data = TrainData.from_records("image", [str(d) for d in range(10)], x, y)
    held_out = split(data.y, 0.1, args.seed)
    load_before = os.getloadavg()
    mine, theirs = [], []
    for _ in range(args.rounds):
        theirs.append(peer(data, held_out, args.seed, args.peer_epochs, args.peer_batch_size, args.peer_lr))
        mine.append(ours(data, args.seed))
    assert mine[0]["split"] == held_out.to_json(), "both sides score the same held-out records"
    acc_ours = statistics.median(r["accuracy"] for r in mine)
    acc_peer = statistics.median(r["accuracy"] for r in theirs)
    time_ours = statistics.median(r["train_s"] for r in mine)
    time_peer = statistics.median(r["train_s"] for r in theirs)
    load_after = os.getloadavg()
    print(
        f"MNIST t10k without DP: {held_out.train.numel()} train / {held_out.val.numel()} held out"
        f" (val_split 0.1, seed {args.seed}); {args.rounds} round(s), medians;"
        f" torch {torch.__version__}, {torch.get_num_threads()} threads;"
        f" load average {load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )
    first = mine[0]
    print(
        f"  strongroom cnn ({first['epochs']} epochs, {first['recipe']}, {first['options']}):"
        f" accuracy {acc_ours:.4f}  training {time_ours:6.2f} s"
    )
    print(
        f"  peer Opacus SampleConvNet, no DP ({args.peer_epochs} epochs, SGD lr {args.peer_lr},"
        f" batch {args.peer_batch_size}): accuracy {acc_peer:.4f}  training {time_peer:6.2f} s"
    )
    print(
        f"  accuracy difference {100 * (acc_ours - acc_peer):+.2f} points;"
        f" training time ratio strongroom/peer {time_ours / time_peer:.2f}"
    )
    met = acc_ours >= GOAL_ACCURACY and time_ours <= GOAL_SECONDS
    print(
        f"  goal: accuracy >= {GOAL_ACCURACY:.3f} and training <= {GOAL_SECONDS:.0f} s (quiet machine):"
        f" {'met' if met else 'not met'}"
    )
    print(
        json.dumps(
            {"strongroom": [{k: v for k, v in r.items() if k != "split"} for r in mine], "peer": theirs}
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

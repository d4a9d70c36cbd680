"""ResNet-18 (GroupNorm) on the CIFAR-10 subset with and without DP on a CUDA GPU: samples/s, peak
GPU memory, and the DP/non-DP ratios. Skips on a host without CUDA.

Images are read from ../shared/datasets/cifar10_jpg_subset/train (3,000 JPEGs) with Pillow and
repeated to fill the batches; both sides use Strongroom's engine with the same logical and
physical batch. Anchor (H100, Opacus 1.6, batch 1024): 4.6x (ghost) to 5.2x (hooks) slower with
DP, 2.6-3.8x the memory. Goal: <= 2.0x.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CIFAR = REPO.parent / "shared" / "datasets" / "cifar10_jpg_subset" / "train"


def load(repeat: int):
    import numpy as np
    from PIL import Image

    classes = sorted(p.name for p in CIFAR.iterdir() if p.is_dir())
    images, labels = [], []
    for index, name in enumerate(classes):
        for path in sorted((CIFAR / name).glob("*.jpg")):
            with Image.open(path) as im:
                images.append(np.asarray(im.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1))
            labels.append(index)
    x = np.tile(np.stack(images), (repeat, 1, 1, 1))
    y = np.tile(np.asarray(labels, dtype=np.int64), repeat)
    return classes, x, y


def one(dp: bool, batch: int, physical: int, epochs: int, repeat: int) -> None:
    import torch

    from vault.train import TrainConfig, TrainData, TrainStarted
    from vault.train.engine import train

    classes, x, y = load(repeat)
    data = TrainData.from_records("image", classes, x, y)

    def on_event(event: object) -> None:
        if isinstance(event, TrainStarted):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    config = TrainConfig(
        model="resnet18",
        dp=dp,
        epsilon=8.0,
        epochs=epochs,
        batch_size=batch,
        physical_batch_size=physical,
        lr=0.5,
        seed=0,
        device="cuda",
        accountant="rdp",
        val_split=0.05,
    )
    outcome = train(data, config, on_event=on_event)
    seconds = sorted(outcome.timings["epoch_s"][1:] or outcome.timings["epoch_s"])
    median = seconds[len(seconds) // 2]
    print(
        json.dumps(
            {
                "samples_per_s": outcome.split["train"] / median,
                "peak_bytes": torch.cuda.max_memory_allocated(),
                "device": outcome.device,
                "mode": outcome.hyperparameters.get("grad_sample_mode"),
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--physical-batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--repeat", type=int, default=4, help="copies of the 3,000 images (more steps per epoch)"
    )
    parser.add_argument("--one", choices=("dp", "plain"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one == "dp", args.batch_size, args.physical_batch_size, args.epochs, args.repeat)
        return 0
    import torch

    if not torch.cuda.is_available():
        print("skip: no CUDA GPU on this host")
        return 0
    if not CIFAR.is_dir():
        print(f"skip: {CIFAR} is absent")
        return 0
    results = {}
    for side in ("plain", "dp"):
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                side,
                "--batch-size",
                str(args.batch_size),
                "--physical-batch-size",
                str(args.physical_batch_size),
                "--epochs",
                str(args.epochs),
                "--repeat",
                str(args.repeat),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        if proc.returncode:
            raise SystemExit(proc.stderr[-3000:])
        results[side] = json.loads(proc.stdout.strip().splitlines()[-1])
    dp, plain = results["dp"], results["plain"]
    print(
        f"resnet18-GN, CIFAR-10 subset x{args.repeat}, batch {args.batch_size} (physical {args.physical_batch_size}), "
        f"{dp['device']}, DP via {dp['mode']}"
    )
    print(
        f"  samples/s: non-DP {plain['samples_per_s']:.0f}, DP {dp['samples_per_s']:.0f}, "
        f"slowdown {plain['samples_per_s'] / dp['samples_per_s']:.2f}x (goal <= 2.0)"
    )
    print(
        f"  peak memory: non-DP {plain['peak_bytes'] / 2**30:.2f} GiB, DP {dp['peak_bytes'] / 2**30:.2f} GiB, "
        f"ratio {dp['peak_bytes'] / plain['peak_bytes']:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

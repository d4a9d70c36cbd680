"""What DP-SGD costs over plain SGD for the same model, data and batch size: epoch time and peak
memory, measured in separate processes (Strongroom's engine both ways: Opacus with Poisson
sampling and ghost clipping, against ordinary mini-batch SGD).

Data: MNIST t10k, first 8,000 images. Peak memory is the growth of the process's resident set
during training (Linux VmHWM after resetting it through /proc/self/clear_refs), or
torch.cuda.max_memory_allocated on a GPU. Goals: DP/non-DP epoch time <= 1.5, peak memory <= 1.3.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MNIST = REPO.parent / "shared" / "datasets" / "mnist"
CASES = {"scatternet": 500, "cnn": 256}


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def one(model: str, dp: bool, epochs: int, device: str) -> None:
    import numpy as np
    import torch

    from vault.train import TrainConfig, TrainData, TrainStarted
    from vault.train.engine import train

    images = gzip.decompress((MNIST / "t10k-images-idx3-ubyte.gz").read_bytes())
    labels = gzip.decompress((MNIST / "t10k-labels-idx1-ubyte.gz").read_bytes())
    x = np.frombuffer(images, np.uint8, offset=16).reshape(-1, 1, 28, 28)[:8000]
    y = np.frombuffer(labels, np.uint8, offset=8).astype(np.int64)[:8000]
    data = TrainData.from_records("image", [str(d) for d in range(10)], x, y)
    start = {}

    def on_event(event: object) -> None:
        if isinstance(event, TrainStarted):
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
                start["base"] = torch.cuda.memory_allocated()
            else:
                Path("/proc/self/clear_refs").write_text("5")
                start["base"] = rss_kib("VmRSS") * 1024

    batch = CASES[model]
    config = TrainConfig(
        model=model,
        dp=dp,
        epsilon=3.0,
        epochs=epochs,
        batch_size=batch,
        physical_batch_size=batch,
        lr=0.5,
        seed=0,
        device=device,
        accountant="rdp",
    )
    outcome = train(data, config, on_event=on_event)
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else rss_kib("VmHWM") * 1024
    print(
        json.dumps(
            {
                "epoch_s": outcome.timings["epoch_s"],
                "peak_growth_bytes": peak - start["base"],
                "accuracy": outcome.accuracy,
                "device": outcome.device,
            }
        )
    )


def measure(model: str, dp: bool, epochs: int, device: str) -> dict:
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--one",
            model,
            "--dp" if dp else "--no-dp",
            "--epochs",
            str(epochs),
            "--device",
            device,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        raise SystemExit(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--one", choices=sorted(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--dp", dest="dp", action="store_true", default=True, help=argparse.SUPPRESS)
    parser.add_argument("--no-dp", dest="dp", action="store_false", help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--models", default=",".join(CASES))
    args = parser.parse_args()
    if args.one:
        one(args.one, args.dp, args.epochs, args.device)
        return 0
    if not MNIST.is_dir():
        print(f"skip: {MNIST} is absent")
        return 0
    print(
        f"DP-SGD (Opacus, Poisson; ghost clipping, hooks for cnn) vs plain SGD, MNIST 8k, {args.epochs} epochs, {args.device}"
    )
    for model in args.models.split(","):
        private, plain = (
            measure(model, True, args.epochs, args.device),
            measure(model, False, args.epochs, args.device),
        )
        # the first epoch warms caches up; the median of the rest is the epoch time
        t_dp = statistics.median(private["epoch_s"][1:] or private["epoch_s"])
        t_plain = statistics.median(plain["epoch_s"][1:] or plain["epoch_s"])
        m_dp, m_plain = private["peak_growth_bytes"], plain["peak_growth_bytes"]
        print(
            f"  {model:>10} batch {CASES[model]}: epoch DP {t_dp:.3f} s / non-DP {t_plain:.3f} s = {t_dp / t_plain:.2f} "
            f"(goal <= 1.5); peak memory growth DP {m_dp / 2**20:.1f} MiB / non-DP {m_plain / 2**20:.1f} MiB = "
            f"{m_dp / max(m_plain, 1):.2f} (goal <= 1.3)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

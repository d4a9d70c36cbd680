"""What DP-SGD costs over plain SGD for the same model, data and batch size: epoch time and peak
memory, measured in separate processes (Strongroom's engine both ways: DP-SGD with Poisson
sampling, book-keeping clipping and Opacus' noise, optimizer and accountant, against ordinary
mini-batch SGD). Physical batches are each run's default: under DP they leave room for Poisson
batches above the expected size (4 standard deviations), without DP they are the batch. For the
models in --peers, the same DP run with Opacus' own clipping (hooks, ghost) is measured once
each, as the named peer, against the same non-DP figure.

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
# scatternet epochs take a few hundredths of a second: more of them make the median steady
EPOCHS = {"scatternet": 16, "cnn": 4}


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def one(model: str, dp: bool, epochs: int, device: str, clipping: str | None = None) -> None:
    import numpy as np

    # Both runs load Opacus before measuring: its import (about 110 MiB of code and tables) is a
    # fixed cost of the process, not memory that DP-SGD needs per batch.
    import opacus.optimizers  # noqa: F401
    import opacus.utils.batch_memory_manager  # noqa: F401
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
        lr=0.5,
        seed=0,
        device=device,
        accountant="rdp",
        clipping=clipping,
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
                "physical_batch_size": outcome.hyperparameters["physical_batch_size"],
            }
        )
    )


def measure(model: str, dp: bool, epochs: int, device: str, clipping: str | None = None) -> dict:
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
            *(["--clipping", clipping] if clipping else []),
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
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default: per model)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--models", default=",".join(CASES))
    parser.add_argument("--clipping", default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--peers",
        default="cnn",
        help="models for which Opacus' own clipping (hooks, ghost) is measured too, once each (empty: none)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="DP and non-DP processes per model, alternating"
    )
    args = parser.parse_args()
    if args.one:
        one(args.one, args.dp, args.epochs, args.device, args.clipping)
        return 0
    if not MNIST.is_dir():
        print(f"skip: {MNIST} is absent")
        return 0
    print(
        f"DP-SGD (Poisson sampling, Opacus noise and accounting, each model's default clipping) vs plain SGD,"
        f" MNIST 8k, {args.repeats} runs each, {args.device}"
    )
    for model in args.models.split(","):
        # DP and non-DP processes alternate, `--repeats` times each, so a slow spell of a shared
        # machine hits both; the first epoch of each warms caches up and is left out.
        runs: dict[bool, list[dict]] = {True: [], False: []}
        epochs = args.epochs or EPOCHS[model]
        for _ in range(args.repeats):
            for dp in (True, False):
                runs[dp].append(measure(model, dp, epochs, args.device))
        t_dp, t_plain = (
            statistics.median(t for r in runs[dp] for t in (r["epoch_s"][1:] or r["epoch_s"]))
            for dp in (True, False)
        )
        m_dp, m_plain = (statistics.median(r["peak_growth_bytes"] for r in runs[dp]) for dp in (True, False))
        print(
            f"  {model:>10} batch {CASES[model]}, {epochs} epochs (physical DP {runs[True][0]['physical_batch_size']},"
            f" non-DP {runs[False][0]['physical_batch_size']}): epoch DP {t_dp:.3f} s / non-DP {t_plain:.3f} s = {t_dp / t_plain:.2f} "
            f"(goal <= 1.5); peak memory growth DP {m_dp / 2**20:.1f} MiB / non-DP {m_plain / 2**20:.1f} MiB = "
            f"{m_dp / max(m_plain, 1):.2f} (goal <= 1.3)"
        )
        if model in args.peers.split(","):
            for mode in ("hooks", "ghost"):
                peer = measure(model, True, epochs, args.device, mode)
                t_peer = statistics.median(peer["epoch_s"][1:] or peer["epoch_s"])
                m_peer = peer["peak_growth_bytes"]
                print(
                    f"  {'':>10} peer, Opacus {mode}: epoch {t_peer:.3f} s = {t_peer / t_plain:.2f} of non-DP;"
                    f" peak memory growth {m_peer / 2**20:.1f} MiB = {m_peer / max(m_plain, 1):.2f}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""ResNet-18 (GroupNorm) on the CIFAR-10 subset with and without DP on a CUDA GPU: samples/s, peak
GPU memory, and the DP/non-DP ratios. Skips on a host without CUDA.

Images are read from ../shared/datasets/cifar10_jpg_subset/train (3,000 JPEGs) with Pillow and
repeated to fill the batches; both sides use Strongroom's engine with the same logical and
physical batch. Anchor (H100, Opacus 1.6, batch 1024): 4.6x (ghost) to 5.2x (hooks) slower with
DP, 2.6-3.8x the memory. Goal: <= 2.0x.

`--nproc N` (N GPUs): DP through `strongroom train`'s engine in N processes (NCCL, inside the
sandbox's loopback level, as `--nproc N` runs it) against 1 GPU, and DDP without DP on 1 and N GPUs
measured in the same run: samples/s scaling from 1 to N GPUs (goal >= 0.85 N at batch 1024) and
memory per GPU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CIFAR = REPO.parent / "shared" / "datasets" / "cifar10_jpg_subset" / "train"


def load(repeat: int):
    import numpy as np

    from tests import peers

    images, labels, classes = peers.cifar_subset("train")
    return classes, np.tile(images, (repeat, 1, 1, 1)), np.tile(labels, repeat)


def one(dp: bool, batch: int, physical: int, epochs: int, repeat: int, nproc: int = 1) -> None:
    if nproc > 1:  # as `strongroom train --nproc N` runs: the loopback level, before torch loads
        from vault import netguard

        netguard.isolate("namespace+seccomp-loopback", loopback=True, readable=[CIFAR])
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
        nproc=nproc,
    )
    outcome = train(data, config, on_event=on_event)
    seconds = sorted(outcome.timings["epoch_s"][1:] or outcome.timings["epoch_s"])
    median = seconds[len(seconds) // 2]
    print(
        json.dumps(
            {
                "samples_per_s": outcome.split["train"] / median,
                "peak_bytes": max(
                    outcome.distributed.get("peak_gpu_bytes") or [torch.cuda.max_memory_allocated()]
                ),
                "peak_bytes_per_gpu": outcome.distributed.get("peak_gpu_bytes"),
                "device": outcome.device,
                "mode": outcome.hyperparameters.get("grad_sample_mode"),
            }
        )
    )


def _ddp_rank(
    rank: int, nproc: int, store: str, batch: int, physical: int, epochs: int, repeat: int, out
) -> None:
    import time

    import torch
    import torch.distributed as dist

    from vault.train import models as registry
    from vault.train.data import prepare_all

    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", store=dist.FileStore(store, nproc), rank=rank, world_size=nproc)
    classes, x, y = load(repeat)
    config = registry.model_config("resnet18", "image", len(classes), list(x.shape[1:]))
    torch.manual_seed(0)
    device = torch.device("cuda", rank)
    net = registry.build_model(config).to(device)
    model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[rank])
    inputs = prepare_all(net, torch.as_tensor(x), device)
    labels = torch.as_tensor(y).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    local = batch // nproc
    steps = len(labels) // batch
    seconds = []
    for _ in range(epochs):
        order = torch.randperm(len(labels), device=device)
        torch.cuda.synchronize()
        started = time.perf_counter()
        for step in range(steps):
            mine = order[step * batch + rank * local : step * batch + (rank + 1) * local]
            optimizer.zero_grad()
            chunks = list(mine.split(physical))
            for i, idx in enumerate(chunks):
                sync = i == len(chunks) - 1
                with model.no_sync() if not sync else torch.enable_grad():
                    loss = (
                        torch.nn.functional.cross_entropy(model(inputs[idx]), labels[idx]) * len(idx) / local
                    )
                    loss.backward()
            optimizer.step()
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
    median = sorted(seconds[1:] or seconds)[len(seconds[1:] or seconds) // 2]
    out.put(
        {
            "rank": rank,
            "samples_per_s": steps * batch / median,
            "peak_bytes": torch.cuda.max_memory_allocated(),
        }
    )
    dist.destroy_process_group()


def ddp(nproc: int, batch: int, physical: int, epochs: int, repeat: int) -> dict:
    """DDP without DP on `nproc` GPUs (the peer measured in the same run)."""
    import tempfile

    import torch.multiprocessing as mp

    context = mp.get_context("spawn")
    out = context.Queue()
    store = str(Path(tempfile.mkdtemp()) / "store")
    args = (nproc, store, batch, physical, epochs, repeat, out)
    mp.start_processes(_ddp_rank, args=args, nprocs=nproc, start_method="spawn")
    ranks = [out.get() for _ in range(nproc)]
    return {
        "samples_per_s": min(r["samples_per_s"] for r in ranks),
        "peak_bytes": max(r["peak_bytes"] for r in ranks),
        "peak_bytes_per_gpu": [r["peak_bytes"] for r in sorted(ranks, key=lambda r: r["rank"])],
    }


def scaling(args: argparse.Namespace) -> int:
    """DP with --nproc 1 and N against DDP without DP on 1 and N GPUs."""
    import torch

    nproc = args.nproc
    if torch.cuda.device_count() < nproc:
        print(f"skip: --nproc {nproc} needs {nproc} GPUs, {torch.cuda.device_count()} visible")
        return 0
    results = {}
    for side, count in (("dp", 1), ("dp", nproc)):
        command = [sys.executable, __file__, "--one", side, "--nproc", str(count)]
        command += [
            "--batch-size",
            str(args.batch_size),
            "--physical-batch-size",
            str(args.physical_batch_size),
        ]
        command += ["--epochs", str(args.epochs), "--repeat", str(args.repeat)]
        proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(proc.stderr[-3000:])
        results[(side, count)] = json.loads(proc.stdout.strip().splitlines()[-1])
    for count in (1, nproc):
        results[("ddp", count)] = ddp(
            count, args.batch_size, args.physical_batch_size, args.epochs, args.repeat
        )
    dp1, dpn = results[("dp", 1)], results[("dp", nproc)]
    ddp1, ddpn = results[("ddp", 1)], results[("ddp", nproc)]
    print(
        f"resnet18-GN, CIFAR-10 subset x{args.repeat}, batch {args.batch_size}, {dp1['device']}, 1 vs {nproc} GPUs"
    )
    print(
        f"  DP (strongroom --nproc): {dp1['samples_per_s']:.0f} -> {dpn['samples_per_s']:.0f} samples/s, "
        f"scaling {dpn['samples_per_s'] / dp1['samples_per_s']:.2f} (goal >= {0.85 * nproc:.2f})"
    )
    print(
        f"  DDP without DP:          {ddp1['samples_per_s']:.0f} -> {ddpn['samples_per_s']:.0f} samples/s, "
        f"scaling {ddpn['samples_per_s'] / ddp1['samples_per_s']:.2f}; DP/DDP at {nproc} GPUs "
        f"{dpn['samples_per_s'] / ddpn['samples_per_s']:.2f}"
    )
    per_gpu = ", ".join(f"{b / 2**30:.2f}" for b in dpn.get("peak_bytes_per_gpu") or [dpn["peak_bytes"]])
    ddp_gpu = ", ".join(f"{b / 2**30:.2f}" for b in ddpn["peak_bytes_per_gpu"])
    print(f"  peak memory per GPU (GiB): DP [{per_gpu}], DDP [{ddp_gpu}]")
    return 0


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
    parser.add_argument("--nproc", type=int, default=1, help="GPUs: DP scaling from 1 to N against DDP")
    parser.add_argument("--one", choices=("dp", "plain"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one == "dp", args.batch_size, args.physical_batch_size, args.epochs, args.repeat, args.nproc)
        return 0
    import torch

    if not torch.cuda.is_available():
        print("skip: no CUDA GPU on this host")
        return 0
    if not CIFAR.is_dir():
        print(f"skip: {CIFAR} is absent")
        return 0
    if args.nproc > 1:
        return scaling(args)
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

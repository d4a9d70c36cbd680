"""Import decode benchmark: images/s and peak memory for decoding the CIFAR-10 JPEG subset with
vault.ingest.decode, against torchvision's ImageFolder (PIL loader) over the same files, same run.

Each measurement runs in a fresh subprocess, so its peak RSS is its own; "rss+" is the peak above
the RSS right after imports (torchvision's import is large, so compare rss+ rather than rss).
The figure that matters is the ratio to ImageFolder measured here, not the absolute rate.

usage: .venv/bin/python bench/bench_import_decode.py [DATASET_DIR] [--repeat N] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATASET = REPO.parent / "shared" / "datasets" / "cifar10_jpg_subset"
PEER = "imagefolder"
MODES = {
    "ingest": "vault.ingest.decode, workers chosen automatically",
    "ingest-1": "vault.ingest.decode, one process",
    "ingest-2": "vault.ingest.decode, two processes",
    PEER: "torchvision ImageFolder + PIL loader, one process",
}


def splits(root: Path) -> list[Path]:
    named = [root / name for name in ("train", "test") if (root / name).is_dir()]
    return named or [root]


def _max_rss_mib() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def _decoder(mode: str):
    if mode == PEER:
        import numpy as np
        from torchvision.datasets import ImageFolder

        def decode_split(path: Path) -> int:
            dataset = ImageFolder(str(path))
            first, _ = dataset[0]
            out = np.empty((len(dataset), 3, first.height, first.width), dtype=np.uint8)
            labels = np.empty(len(dataset), dtype=np.int64)
            for i in range(len(dataset)):
                image, labels[i] = dataset[i]
                out[i] = np.asarray(image).transpose(2, 0, 1)
            return len(out)

        return decode_split

    from vault.ingest import ImportOptions, decode

    workers = {"ingest-1": 1, "ingest-2": 2}.get(mode)
    options = ImportOptions(workers=workers)

    def decode_split(path: Path) -> int:
        return decode(path, options).samples

    return decode_split


def measure(mode: str, root: Path, repeat: int) -> dict:
    """Runs in the child: time `repeat` passes over every split, then one traced pass for memory."""
    decode_split = _decoder(mode)
    base = _max_rss_mib()
    seconds = []
    images = 0
    for _ in range(repeat):
        start = time.perf_counter()
        images = sum(decode_split(path) for path in splits(root))
        seconds.append(time.perf_counter() - start)
    tracemalloc.start()
    for path in splits(root):
        decode_split(path)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    best = min(seconds)
    return {
        "mode": mode,
        "images": images,
        "best_s": best,
        "median_s": statistics.median(seconds),
        "images_per_s": images / best,
        "rss_base_mib": base,
        "rss_peak_mib": _max_rss_mib(),
        "traced_peak_mib": traced_peak / 2**20,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--repeat", type=int, default=3, help="passes per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per mode, interleaved")
    parser.add_argument("--child", choices=sorted(MODES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.dataset.is_dir():
        print(
            f"dataset not found: {args.dataset} (the CIFAR-10 JPEG subset in ../shared/datasets)",
            file=sys.stderr,
        )
        return 1
    if args.child:
        print(json.dumps(measure(args.child, args.dataset, args.repeat)))
        return 0

    results: dict[str, dict] = {}
    for _ in range(args.rounds):  # modes interleaved, so a burst of load on the machine hits them all
        for mode in MODES:
            run = subprocess.run(
                [sys.executable, __file__, str(args.dataset), "--repeat", str(args.repeat), "--child", mode],
                capture_output=True,
                text=True,
                cwd=REPO,
                check=False,
            )
            if run.returncode != 0:
                print(f"{mode} failed:\n{run.stderr}", file=sys.stderr)
                return 1
            result = json.loads(run.stdout.strip().splitlines()[-1])
            kept = results.get(mode)
            if kept is None or result["images_per_s"] > kept["images_per_s"]:
                results[mode] = result

    peer = results[PEER]
    print(
        f"decode of {args.dataset.name} ({', '.join(p.name for p in splits(args.dataset))}): "
        f"{peer['images']} images, best of {args.rounds} x {args.repeat} passes; {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'mode':10} {'images/s':>9} {'x peer':>7} {'rss MiB':>8} {'rss+ MiB':>9} {'traced MiB':>11}  what"
    )
    for mode, r in results.items():
        print(
            f"{mode:10} {r['images_per_s']:9.0f} {r['images_per_s'] / peer['images_per_s']:7.2f} "
            f"{r['rss_peak_mib']:8.1f} {r['rss_peak_mib'] - r['rss_base_mib']:9.1f} "
            f"{r['traced_peak_mib']:11.1f}  {MODES[mode]}"
        )
    print(
        f"ratio ingest/imagefolder throughput: {results['ingest']['images_per_s'] / peer['images_per_s']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(main())

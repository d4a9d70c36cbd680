"""Loading a dataset from the vault vs torchvision ImageFolder + DataLoader over the same plaintext files;
and import throughput (images/s) with peak memory, for the CIFAR-10 JPEG subset.

Run: .venv/bin/python bench/bench_vault_load.py [--source ../shared/datasets/cifar10_jpg_subset/train]
Goal: loading from the vault into tensors is at least 5x faster than ImageFolder + DataLoader.
Each side runs in its own fresh process (timings and peak RSS are per process), alternated, medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO.parent / "shared" / "datasets" / "cifar10_jpg_subset" / "train"
PASSPHRASE = "benchmark passphrase"
GOAL = 5.0

CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, {repo!r})
mode, source, vault = sys.argv[1], sys.argv[2], sys.argv[3]
from vault.crypto import keys
from vault.netguard import state
keys.use_test_kdf()  # a benchmark of reading records, not of key derivation
state.waive_for_tests()  # this process does not isolate itself; the numbers are the same
t0 = time.perf_counter()
if mode == "import":
    from vault.door import Vault
    with Vault.create(vault, passphrase={pw!r}.encode()) as v:
        t1 = time.perf_counter()
        info = v.import_dataset(source, name="cifar")
        seconds = time.perf_counter() - t1
    n = info["samples"]
elif mode == "vault":
    import torch  # both sides pay for importing torch outside the timed region
    from vault.door import Vault
    with Vault.open(vault, user="admin", passphrase={pw!r}.encode()) as v:
        t1 = time.perf_counter()
        data = v._datasets.load("cifar", purpose="train")
        x, y = data.x, data.y
        seconds = time.perf_counter() - t1
    n = len(y)
else:
    import torch
    from torchvision import datasets, transforms
    t1 = time.perf_counter()
    ds = datasets.ImageFolder(source, transform=transforms.PILToTensor())
    loader = torch.utils.data.DataLoader(ds, batch_size=256, num_workers=int(mode.split(":")[1]))
    xs, ys = [], []
    for xb, yb in loader:
        xs.append(xb); ys.append(yb)
    x, y = torch.cat(xs), torch.cat(ys)
    seconds = time.perf_counter() - t1
    n = len(y)
print(json.dumps({{"seconds": seconds, "n": n, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def child(mode: str, source: Path, vault: Path) -> dict:
    code = CHILD.format(repo=str(REPO), pw=PASSPHRASE)
    out = subprocess.run(
        [sys.executable, "-c", code, mode, str(source), str(vault)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if not args.source.is_dir():
        print(f"skip: {args.source} is absent")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        vault = Path(tmp) / "vault"
        imp = child("import", args.source, vault)
        print(
            f"import: {imp['n']} images in {imp['seconds']:.2f} s = {imp['n'] / imp['seconds']:.0f} images/s, "
            f"peak RSS {imp['peak_rss_mib']:.0f} MiB (whole process)"
        )
        results: dict[str, list[dict]] = {"vault": [], "imagefolder:0": [], "imagefolder:2": []}
        for _ in range(args.repeat):
            for mode in results:
                results[mode].append(child(mode, args.source, vault))
    med = {m: statistics.median(r["seconds"] for r in rs) for m, rs in results.items()}
    for mode, seconds in med.items():
        n = results[mode][0]["n"]
        print(
            f"load via {mode:<14} {seconds * 1000:8.1f} ms  {n / seconds:10.0f} images/s  "
            f"peak RSS {statistics.median(r['peak_rss_mib'] for r in results[mode]):.0f} MiB"
        )
    best_peer = min(med["imagefolder:0"], med["imagefolder:2"])
    ratio = best_peer / med["vault"]
    print(
        f"ratio (best ImageFolder+DataLoader time / vault load time): {ratio:.1f}x  "
        f"(goal >= {GOAL:.0f}x: {'met' if ratio >= GOAL else 'NOT met'})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

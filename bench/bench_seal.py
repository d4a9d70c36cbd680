"""Throughput of whole-object seal/open (vault.crypto.chunked) against raw AES-GCM in 1 MiB calls.

Run: .venv/bin/python bench/bench_seal.py [--mib 8 64] [--repeat 25]
Both sides run over the same bytes, interleaved in the same run, so a noisy neighbour slows both;
MB/s figures are medians and each ratio is the median of paired ratios.
Goal: seal and open each reach at least 0.7 of raw AES-GCM throughput.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vault.crypto import _primitives  # noqa: E402
from vault.crypto.chunked import open_sealed, seal  # noqa: E402

GOAL = 0.7
RAW_CALL = 1 << 20


def seconds(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def paired(raw: Callable[[], object], ours: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    """Median seconds of `raw`, of `ours`, and the median of raw/ours over interleaved runs."""
    raw_times, our_times = [], []
    for _ in range(repeat):
        raw_times.append(seconds(raw))
        our_times.append(seconds(ours))
    ratios = [r / o for r, o in zip(raw_times, our_times, strict=True)]
    return statistics.median(raw_times), statistics.median(our_times), statistics.median(ratios)


def measure(mib: int, repeat: int) -> list[float]:
    """Print MB/s for raw AES-GCM and seal/open over one `mib`-MiB object; return both ratios."""
    size = mib << 20
    key = os.urandom(32)
    context = b"strongroom bench object"
    plaintext = os.urandom(size)
    view = memoryview(plaintext)
    raw = _primitives.aes_gcm(key)
    nonce = os.urandom(12)
    raw_sealed = [raw.encrypt(nonce, view[i : i + RAW_CALL], None) for i in range(0, size, RAW_CALL)]
    sealed = seal(key, context, plaintext)
    if open_sealed(key, context, sealed) != plaintext:
        raise SystemExit("round trip failed")

    def raw_encrypt() -> list[bytes]:
        return [raw.encrypt(nonce, view[i : i + RAW_CALL], None) for i in range(0, size, RAW_CALL)]

    def raw_decrypt() -> list[bytes]:
        return [raw.decrypt(nonce, block, None) for block in raw_sealed]

    print(f"object size {mib} MiB, {repeat} interleaved runs (medians):")
    ratios = []
    for raw_label, raw_action, label, action in (
        (
            "raw AES-256-GCM encrypt, 1 MiB calls",
            raw_encrypt,
            "seal (Cobblestone-256, whole object)",
            lambda: seal(key, context, view),
        ),
        (
            "raw AES-256-GCM decrypt, 1 MiB calls",
            raw_decrypt,
            "open (Cobblestone-256, whole object)",
            lambda: open_sealed(key, context, sealed),
        ),
    ):
        raw_s, our_s, ratio = paired(raw_action, action, repeat)
        print(f"  {raw_label:<40} {size / raw_s / 1e6:8.0f} MB/s")
        print(f"  {label:<40} {size / our_s / 1e6:8.0f} MB/s   ratio {ratio:.2f}")
        ratios.append(ratio)
    return ratios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mib", type=int, nargs="+", default=[8, 64], help="object sizes in MiB (default: 8 64)"
    )
    parser.add_argument("--repeat", type=int, default=25, help="interleaved runs per measurement")
    args = parser.parse_args()
    ratios = [ratio for mib in args.mib for ratio in measure(mib, args.repeat)]
    worst = min(ratios)
    verdict = "met" if worst >= GOAL else "NOT met"
    print(f"goal: seal and open >= {GOAL} x raw AES-GCM: {verdict} (worst ratio {worst:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

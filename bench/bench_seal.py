"""Throughput of whole-object seal/open (vault.crypto.chunked) against raw AES-GCM in 1 MiB calls.

Run: .venv/bin/python bench/bench_seal.py [--mib 64] [--repeat 5]
Both sides are measured in the same run over the same bytes; the best of `--repeat` runs counts.
Goal: seal and open each reach at least 0.7 of the raw AES-GCM throughput.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vault.crypto import _primitives  # noqa: E402
from vault.crypto.chunked import open_sealed, seal  # noqa: E402

GOAL = 0.7
RAW_CALL = 1 << 20


def best_seconds(action: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64, help="object size in MiB (default 64)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (best counts)")
    args = parser.parse_args()

    size = args.mib << 20
    key = os.urandom(32)
    context = b"strongroom bench object"
    plaintext = os.urandom(size)
    view = memoryview(plaintext)
    raw = _primitives.aes_gcm(key)
    nonce = os.urandom(12)
    raw_sealed = [raw.encrypt(nonce, view[i : i + RAW_CALL], None) for i in range(0, size, RAW_CALL)]
    sealed = seal(key, context, plaintext)
    if open_sealed(key, context, sealed) != plaintext:
        print("round trip failed", file=sys.stderr)
        return 1

    def raw_encrypt() -> list[bytes]:
        return [raw.encrypt(nonce, view[i : i + RAW_CALL], None) for i in range(0, size, RAW_CALL)]

    def raw_decrypt() -> list[bytes]:
        return [raw.decrypt(nonce, block, None) for block in raw_sealed]

    rows = [
        ("raw AES-GCM encrypt, 1 MiB calls", best_seconds(raw_encrypt, args.repeat)),
        ("seal (Cobblestone-256, whole object)", best_seconds(lambda: seal(key, context, view), args.repeat)),
        ("raw AES-GCM decrypt, 1 MiB calls", best_seconds(raw_decrypt, args.repeat)),
        (
            "open (Cobblestone-256, whole object)",
            best_seconds(lambda: open_sealed(key, context, sealed), args.repeat),
        ),
    ]
    print(f"object size: {args.mib} MiB, best of {args.repeat}")
    speeds = {}
    for label, seconds in rows:
        speeds[label] = size / seconds / 1e6
        print(f"  {label:<40} {speeds[label]:8.0f} MB/s")
    seal_ratio = speeds[rows[1][0]] / speeds[rows[0][0]]
    open_ratio = speeds[rows[3][0]] / speeds[rows[2][0]]
    print(f"seal / raw encrypt: {seal_ratio:.2f}")
    print(f"open / raw decrypt: {open_ratio:.2f}")
    met = seal_ratio >= GOAL and open_ratio >= GOAL
    print(f"goal: both ratios >= {GOAL}: {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

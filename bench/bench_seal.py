"""Throughput of whole-object seal/open (vault.crypto.chunked) against raw AES-GCM in 1 MiB calls.

Run: .venv/bin/python bench/bench_seal.py [--mib 1 8 32] [--repeat 25]
The goal rows time the calls the object store makes: ObjectStore.put seals with `sealing` and
writes the lent view to disk; ObjectStore.get opens with `open_sealed`, which returns bytes.
The other rows (`seal` returning bytes, `open_sealed_into` a reused buffer, and raw AES-GCM in the
format's 16 KiB chunks, the ceiling for any implementation over pyca) are for reference.
Raw AES-GCM encrypts the same plaintext, or decrypts the same bytes, in 1 MiB calls that each
return a fresh output, all of them kept until the object is done, as a whole object needs.
Each pair runs interleaved in the same run, in alternating order, so a noisy neighbour or a warm
cache favours neither side; MB/s figures are medians and each ratio is the median of the paired
ratios. Goal: the two object-store rows each reach at least 0.7 of raw AES-GCM throughput.
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
from vault.crypto.chunked import (  # noqa: E402
    CHUNK_SIZE,
    WIRE_CHUNK_SIZE,
    open_sealed,
    open_sealed_into,
    seal,
    sealing,
)

GOAL = 0.7
RAW_CALL = 1 << 20


def seconds(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def paired(raw: Callable[[], object], ours: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    """Median seconds of `raw`, of `ours`, and the median of raw/ours over interleaved runs."""
    raw_times, our_times = [], []
    for run in range(repeat):
        if run % 2:
            our_times.append(seconds(ours))
            raw_times.append(seconds(raw))
        else:
            raw_times.append(seconds(raw))
            our_times.append(seconds(ours))
    ratios = [r / o for r, o in zip(raw_times, our_times, strict=True)]
    return statistics.median(raw_times), statistics.median(our_times), statistics.median(ratios)


def measure(mib: int, repeat: int) -> list[float]:
    """Print MB/s for raw AES-GCM and seal/open over one `mib`-MiB object; return the goal ratios."""
    size = mib << 20
    key = os.urandom(32)
    context = b"strongroom/v1|vault=0123456789abcdef|kind=shard|dataset=bench/version=1/shard=0"
    plaintext = os.urandom(size)
    view = memoryview(plaintext)
    raw = _primitives.aes_gcm(key)
    nonce = os.urandom(12)
    raw_sealed = [raw.encrypt(nonce, view[i : i + RAW_CALL], None) for i in range(0, size, RAW_CALL)]
    sealed = seal(key, context, plaintext)
    with sealing(key, context, plaintext) as lent:
        if open_sealed(key, context, lent) != plaintext or open_sealed(key, context, sealed) != plaintext:
            raise SystemExit("round trip failed")
    reused = bytearray(size)
    encrypt_into = raw.encrypt_into
    chunk_offsets = [(i * CHUNK_SIZE, i * WIRE_CHUNK_SIZE) for i in range(size // CHUNK_SIZE)]
    chunk_sink = memoryview(bytearray(len(chunk_offsets) * WIRE_CHUNK_SIZE))

    def raw_encrypt() -> list[bytes]:
        return [raw.encrypt(nonce, view[i : i + RAW_CALL], None) for i in range(0, size, RAW_CALL)]

    def raw_decrypt() -> list[bytes]:
        return [raw.decrypt(nonce, block, None) for block in raw_sealed]

    def raw_encrypt_chunks() -> int:
        # The ceiling the format allows: raw AES-GCM in its 16 KiB chunks, into one reused buffer.
        for read, write in chunk_offsets:
            encrypt_into(
                nonce, view[read : read + CHUNK_SIZE], None, chunk_sink[write : write + WIRE_CHUNK_SIZE]
            )
        return len(chunk_offsets)

    def store_seal() -> int:
        with sealing(key, context, view) as lent:  # ObjectStore.put writes `lent` to disk here
            return len(lent)

    print(f"object size {mib} MiB, {repeat} interleaved runs (medians):")
    goal_ratios = []
    for in_goal, raw_label, raw_action, label, action in (
        (True, "raw AES-256-GCM encrypt", raw_encrypt, "seal, as ObjectStore.put (sealing)", store_seal),
        (
            True,
            "raw AES-256-GCM decrypt",
            raw_decrypt,
            "open, as ObjectStore.get (open_sealed)",
            lambda: open_sealed(key, context, sealed),
        ),
        (
            False,
            "raw AES-256-GCM encrypt",
            raw_encrypt,
            "seal returning bytes (seal)",
            lambda: seal(key, context, view),
        ),
        (
            False,
            "raw AES-256-GCM decrypt",
            raw_decrypt,
            "open into a reused buffer (open_sealed_into)",
            lambda: open_sealed_into(key, context, sealed, reused),
        ),
        (
            False,
            "raw AES-256-GCM encrypt",
            raw_encrypt,
            "raw AES-256-GCM encrypt, 16 KiB calls",
            raw_encrypt_chunks,
        ),
    ):
        raw_s, our_s, ratio = paired(raw_action, action, repeat)
        note = "" if in_goal else "  (reference)"
        print(f"  {raw_label + ', 1 MiB calls':<46} {size / raw_s / 1e6:8.0f} MB/s")
        print(f"  {label:<46} {size / our_s / 1e6:8.0f} MB/s   ratio {ratio:.2f}{note}")
        if in_goal:
            goal_ratios.append(ratio)
    return goal_ratios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mib", type=int, nargs="+", default=[1, 8, 32], help="object sizes in MiB (default: 1 8 32)"
    )
    parser.add_argument("--repeat", type=int, default=25, help="interleaved runs per measurement")
    args = parser.parse_args()
    ratios = [ratio for mib in args.mib for ratio in measure(mib, args.repeat)]
    worst = min(ratios)
    verdict = "met" if worst >= GOAL else "NOT met"
    print(f"goal: object-store seal and open >= {GOAL} x raw AES-GCM: {verdict} (worst ratio {worst:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

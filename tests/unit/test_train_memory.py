"""A run keeps freed memory for reuse: scattering a dataset chunk by chunk allocates and frees the
same large maps again and again, and each chunk's maps find the last chunk's pages in place
instead of faulting every page in from the kernel."""

from __future__ import annotations

import json

import pytest

from tests.support import run_python

PROBE = r"""
import json, resource, sys
import torch
from vault.train.memory import keep_freed_memory
from vault.train.scatter import Scattering
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
scattering = Scattering(orientations=8, order=2)
images = torch.rand(512, 1, 28, 28)
faults = []
with torch.no_grad():
    for _ in range(4):  # the same 4 chunks of 128 images, 4 times
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        [scattering(chunk) for chunk in images.split(128)]
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"kept": kept, "again": keep_freed_memory(), "faults": faults}))
"""


def faults(mode: str) -> dict:
    proc = run_python(PROBE, mode)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_chunks_reuse_the_memory_the_last_chunk_freed() -> None:
    """Without the setting glibc hands each freed map back and maps the next one afresh (about
    65,000 page faults a pass here, each page zeroed by the kernel); with it, the later passes
    find their pages in place (a few thousand faults at most)."""
    kept = faults("keep")
    if not kept["kept"]:
        pytest.skip("the C library is not glibc: malloc's thresholds are its own")
    assert kept["again"] is True
    plain = faults("plain")
    assert min(plain["faults"][2:]) > 10_000, plain["faults"]
    assert max(kept["faults"][2:]) * 10 < min(plain["faults"][2:]), (kept["faults"], plain["faults"])

"""Torch inside the isolation: DataLoader workers still run; downloads and TCPStore reach nothing.

One subprocess imports torch once (seconds) and makes every torch-side attempt.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from tests.support import CountingServer, last_json, run_python

TORCH_INSIDE = r"""
import io, json, sys, contextlib, datetime
from vault import netguard
port, root = int(sys.argv[1]), sys.argv[2]
report = netguard.isolate(keep=[root])
import torch, torchvision
from torch.utils.data import DataLoader, TensorDataset
out = {"mode": report.mode}

data = TensorDataset(torch.arange(64, dtype=torch.float32).reshape(32, 2), torch.arange(32))
loader = DataLoader(data, batch_size=4, num_workers=2, shuffle=False)
seen = [batch for batch in loader]
out["dataloader"] = {"batches": len(seen), "label_sum": int(sum(int(y.sum()) for _, y in seen))}

printed = io.StringIO()
try:
    with contextlib.redirect_stdout(printed):
        torchvision.datasets.MNIST(root=root, download=True)
    out["mnist"] = "DOWNLOADED"
except Exception as exc:
    out["mnist"] = f"{type(exc).__name__}: {exc}"
out["mnist_log"] = printed.getvalue()

try:
    from torch.distributed import TCPStore
    TCPStore("127.0.0.1", port, is_master=False, timeout=datetime.timedelta(seconds=1))
    out["tcpstore"] = "CONNECTED"
except Exception as exc:
    out["tcpstore"] = f"{type(exc).__name__}: {exc}"[:400]

out["blocked"] = netguard.blocked_attempts()
out["cache"] = {"TORCH_HOME": torch.hub.get_dir()}
print(json.dumps(out))
"""


def test_torch_inside_isolation(server: CountingServer, tmp_path: Path, namespaces: dict[str, Any]) -> None:  # noqa: F811
    pytest.importorskip("torchvision")
    proc = run_python(TORCH_INSIDE, str(server.port), str(tmp_path / "mnist"), timeout=300)
    out = last_json(proc)
    assert server.close() == (0, 0), "torch reached the host's loopback from inside the isolation"
    assert out["mode"] == "namespace+seccomp"
    assert out["dataloader"] == {
        "batches": 8,
        "label_sum": sum(range(32)),
    }  # two workers, AF_UNIX, private shm
    assert out["mnist"].startswith("RuntimeError: Error downloading")
    assert (out["mnist"] + out["mnist_log"]).count(
        "network access blocked by strongroom"
    ) >= 2  # every mirror
    mnist_attempts = [b for b in out["blocked"] if b["module"] == "http.client"]
    assert len(mnist_attempts) >= 2 and all(
        b["destination"].startswith("name lookup ") for b in mnist_attempts
    )
    assert all(b["origin"].startswith("torchvision.datasets") for b in mnist_attempts)
    # TCPStore is C++: no audit hook sees it; seccomp refuses its socket() with EACCES.
    assert out["tcpstore"] != "CONNECTED" and (
        "Permission denied" in out["tcpstore"] or f"errno: {errno.EACCES}" in out["tcpstore"]
    ), out["tcpstore"]
    assert out["cache"]["TORCH_HOME"].startswith("/tmp/strongroom-cache/torch")
    assert not (tmp_path / "mnist" / "MNIST" / "raw" / "train-images-idx3-ubyte").exists()

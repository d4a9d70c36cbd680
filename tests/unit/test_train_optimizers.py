"""The eager SGD and Adam (vault/train/optimizers.py) are torch's own updates, number for number,
without importing torch._dynamo."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tests.support import REPO
from vault.train import optimizers


def _net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))


def _steps(net: torch.nn.Module, optimizer: torch.optim.Optimizer, steps: int = 5) -> list[torch.Tensor]:
    torch.manual_seed(99)
    for _ in range(steps):
        optimizer.zero_grad()
        x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
    return [p.detach().clone() for p in net.parameters()]


@pytest.mark.parametrize(
    ("ours", "theirs", "options"),
    [
        (optimizers.SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}),
        (optimizers.SGD, torch.optim.SGD, {"lr": 0.05}),
        (optimizers.Adam, torch.optim.Adam, {"lr": 0.01}),
    ],
)
def test_each_step_is_torchs_own(ours: type, theirs: type, options: dict) -> None:
    mine, reference = _net(1), _net(1)
    a = _steps(mine, ours(mine.parameters(), **options))
    b = _steps(reference, theirs(reference.parameters(), **options))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], [p for p in _net(1).parameters()][0]), "the steps moved the weights"


def test_state_carries_over_like_torchs() -> None:
    net = _net(2)
    optimizer = optimizers.SGD(net.parameters(), lr=0.1, momentum=0.9)
    _steps(net, optimizer, 2)
    state = optimizer.state_dict()
    again = torch.optim.SGD(_net(2).parameters(), lr=0.1, momentum=0.9)
    again.load_state_dict(state)
    assert all(
        torch.equal(again.state_dict()["state"][k]["momentum_buffer"], v["momentum_buffer"])
        for k, v in state["state"].items()
    )


def test_the_step_leaves_the_gradient_mode_as_it_found_it() -> None:
    net = _net(3)
    optimizer = optimizers.Adam(net.parameters(), lr=0.01)
    net(torch.randn(2, 6)).sum().backward()
    with torch.enable_grad():
        optimizer.step()
        assert torch.is_grad_enabled()
    with torch.no_grad():
        optimizer.step()
        assert not torch.is_grad_enabled()


def test_training_with_them_does_not_import_dynamo() -> None:
    probe = (
        "import sys, torch\n"
        "from vault.train import optimizers\n"
        "net = torch.nn.Linear(4, 2)\n"
        "for make in (lambda p: optimizers.SGD(p, lr=0.1, momentum=0.9), lambda p: optimizers.Adam(p, lr=0.1)):\n"
        "    o = make(net.parameters())\n"
        "    for _ in range(2):\n"
        "        o.zero_grad(); net(torch.randn(3, 4)).sum().backward(); o.step()\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["False"]

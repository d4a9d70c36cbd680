"""SGD and Adam for eager training, without torch._dynamo.

torch's optimizers import `torch._dynamo` (about a second here, with sympy and
`torch.distributed.tensor`) the first time `add_param_group` or `zero_grad` runs, through
`torch._disable_dynamo`, and again in every `step`, for a graph break: both exist for
`torch.compile`, which no run uses. These subclasses call the same torch methods unwrapped
(`inspect.unwrap` follows the decorators to torch's own function), with the gradient mode the step
decorator sets, so every update is torch's own, number for number
(`tests/unit/test_train_optimizers.py`).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch


class _Eager:
    """Optimizer methods that torch wraps for `torch.compile`, called unwrapped."""

    defaults: dict[str, Any]
    _torch_class: type[torch.optim.Optimizer]

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        inspect.unwrap(torch.optim.Optimizer.add_param_group)(self, param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        inspect.unwrap(torch.optim.Optimizer.zero_grad)(self, set_to_none)

    def step(self, closure: Any = None) -> Any:
        step = inspect.unwrap(self._torch_class.step)
        previous = torch.is_grad_enabled()
        try:
            torch.set_grad_enabled(self.defaults["differentiable"])
            return step(self, closure)
        finally:
            torch.set_grad_enabled(previous)


class SGD(_Eager, torch.optim.SGD):
    _torch_class = torch.optim.SGD


class Adam(_Eager, torch.optim.Adam):
    _torch_class = torch.optim.Adam

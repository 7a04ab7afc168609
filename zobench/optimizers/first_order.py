"""First-order baselines: ``torch.optim`` classes behind zobench's closure interface.

The harness drives every optimizer the same way, ``loss = optimizer.step(closure)`` with a closure
that only computes the loss. A first-order optimizer runs that closure with gradients enabled,
backpropagates and steps; state, param groups and ``state_dict`` are torch's own.
"""

from __future__ import annotations

import functools

import torch


@functools.cache
def first_order(torch_optimizer: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """A subclass of ``torch_optimizer`` whose ``step(closure)`` computes the gradient itself."""

    def step(self, closure) -> float:
        self.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = closure()
            loss.backward()
        torch_optimizer.step(self)
        return float(loss.detach())

    return type(f"FirstOrder{torch_optimizer.__name__}", (torch_optimizer,), {"step": step})

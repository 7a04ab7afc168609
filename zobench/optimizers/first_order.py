"""First-order baselines: ``torch.optim`` classes behind zobench's closure interface.

The harness drives every optimizer the same way, ``loss = optimizer.step(closure)`` with a closure
that only computes the loss. A first-order optimizer runs that closure with gradients enabled,
backpropagates and steps; state, param groups and ``state_dict`` are torch's own. A learning-rate
schedule (:mod:`.lr_schedules`, the same factors a ZO run uses) runs through torch's ``LambdaLR``,
stepped after each optimizer step and saved in the ``state_dict``.
"""

from __future__ import annotations

import functools

import torch

from .lr_schedules import learning_rate_schedule
from .registry import BACKWARD_IN_FORWARDS

# the parameter-sized tensors each torch optimizer keeps per parameter, from its group's settings
BUFFERS = {torch.optim.SGD: lambda group: int(bool(group["momentum"])),
           torch.optim.Adam: lambda group: 2 + bool(group["amsgrad"]),
           torch.optim.AdamW: lambda group: 2 + bool(group["amsgrad"]),
           torch.optim.Adamax: lambda group: 2}


@functools.cache
def first_order(torch_optimizer: type[torch.optim.Optimizer], schedule: str) -> type[torch.optim.Optimizer]:
    """A subclass of ``torch_optimizer`` whose ``step(closure)`` computes the gradient itself;
    ``schedule`` is its name on the momentum-schedule axis."""

    def __init__(self, params, *, lr, lr_schedule=None, total_steps=None, **hyperparameters):
        torch_optimizer.__init__(self, params, lr=lr, **hyperparameters)
        self.lr_schedule = learning_rate_schedule(lr_schedule, total_steps)
        self.scheduler = (None if self.lr_schedule is None
                          else torch.optim.lr_scheduler.LambdaLR(self, self.lr_schedule.factor))

    def step(self, closure=None) -> float | None:
        """With a closure, zobench's way: backpropagate its loss, then step. Without, torch's: step on
        the gradients the caller computed (a stock training loop, a Hugging Face ``Trainer``)."""
        loss = None
        if closure is not None:
            self.zero_grad(set_to_none=True)
            with torch.enable_grad():
                loss = closure()
                loss.backward()
        torch_optimizer.step(self)
        if self.scheduler is not None:
            self.scheduler.step()
        return None if loss is None else float(loss.detach())

    def state_dict(self):
        state = torch_optimizer.state_dict(self)
        if self.scheduler is not None:
            state["lr_scheduler"] = self.scheduler.state_dict()
        return state

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        scheduler = state_dict.pop("lr_scheduler", None)
        torch_optimizer.load_state_dict(self, state_dict)
        if self.scheduler is not None and scheduler is not None:
            self.scheduler.load_state_dict(scheduler)

    def describe(self) -> dict:
        return {"family": "fo", "forward_passes": 1 + BACKWARD_IN_FORWARDS, "closure_cost": 1 + BACKWARD_IN_FORWARDS,
                "state_buffers": BUFFERS[torch_optimizer](self.param_groups[0]), "sampler": "-",
                "estimator": "backprop", "schedule": schedule, "placement": "-", "replayable": False,
                "lr_schedule": self.lr_schedule.name if self.lr_schedule else "constant"}

    return type(f"FirstOrder{torch_optimizer.__name__}", (torch_optimizer,),
                {"__init__": __init__, "step": step, "state_dict": state_dict, "load_state_dict": load_state_dict,
                 "describe": describe})

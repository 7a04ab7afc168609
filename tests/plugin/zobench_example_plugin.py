"""An example third-party plugin: ZO-SignSGD registered through the ``zobench.optimizers`` entry point.

A new optimizer is a new schedule (here: the elementwise sign of the estimate) composed with the
existing sampler and placement.
"""

import torch

from zobench.optimizers import ZerothOrder
from zobench.optimizers.noise import gaussian
from zobench.optimizers.schedules import MomentumSchedule


def register_optimizers(registry):
    sign = MomentumSchedule("sign", (), lambda state, x, t: x.fresh, lambda state, x, t: torch.sign(x.fresh),
                            decoupled_decay=True)

    @registry.register("example-zo-signsgd", family="zo", forward_passes=2, state_buffers=0, sampler="gaussian",
                       estimator="central", schedule="sign", placement="g", replayable=True,
                       description="ZO-SignSGD: the elementwise sign of the SPSA estimate")
    def zo_signsgd(params, *, lr, eps=1e-3, seed=0):
        return ZerothOrder(params, schedule=sign, placement="g", sampler=gaussian, lr=lr, eps=eps, seed=seed)

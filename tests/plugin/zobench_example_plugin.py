"""An example third-party plugin: ZO-SignSGD registered through the ``zobench.optimizers`` entry point.

A new optimizer is a new transform (here: the elementwise sign of the estimate) in the chain after
the estimate; the sampler, the estimator and every common option come with ``Method``.
"""

import torch

from zobench.optimizers.method import Method, register_method
from zobench.optimizers.transforms import scale_by_estimate, transform


def register_optimizers(registry):
    sign = transform("sign", lambda state, x, t: torch.sign(x))

    @register_method("example-zo-signsgd", registry=registry, description="ZO-SignSGD: the elementwise sign of the SPSA estimate")
    def zo_signsgd():
        return Method(chain=(scale_by_estimate(), sign))

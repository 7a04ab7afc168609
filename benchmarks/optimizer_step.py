"""asv benchmarks of one optimizer step (the continuous-benchmarking issue extends this suite)."""

import torch

from zobench import optimizers


class OptimizerStep:
    """Time of one step on a 4-layer MLP (about 1M parameters), for every registered optimizer."""

    params = optimizers.names()
    param_names = ["optimizer"]

    def setup(self, name):
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(*[torch.nn.Linear(512, 512) for _ in range(4)])
        self.inputs = torch.randn(16, 512)
        extra = {"T1": 10} if "adamu" in name else {}
        self.optimizer = optimizers.get(name).create(self.model.parameters(), context={"total_steps": 10_000},
                                                     lr=1e-4, **extra)
        self.optimizer.step(self.loss)  # state buffers exist before timing

    def loss(self):
        return self.model(self.inputs).square().mean()

    def time_step(self, name):
        self.optimizer.step(self.loss)

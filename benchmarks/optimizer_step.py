"""asv benchmarks of ZO-SGD's step by implementation and sampler, and of the first-order baselines.

Models are random-weight OPT-style decoders (no download), at two sizes; batch 4 × 64 tokens. Every
registered method's step is measured by ``benchmarks/registry_step.py``.
asv reads every number as lower-is-better, which holds for all of these.
"""

import timeit

import torch
from transformers import OPTConfig, OPTForCausalLM

from zobench import optimizers

SIZES = {"small": (256, 4), "medium": (512, 8)}  # hidden size, layers


def _model(size):
    torch.manual_seed(0)
    hidden, layers = SIZES[size]
    config = OPTConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=8, ffn_dim=4 * hidden,
                       word_embed_proj_dim=hidden, vocab_size=8192, max_position_embeddings=128)
    model = OPTForCausalLM(config).eval()
    batch = torch.randint(0, 8192, (4, 64), generator=torch.Generator().manual_seed(0))
    return model, batch


MODES = {"mezo-4-pass": {"fused": False}, "fused": {}, "fused+cache": {"cache_noise": True}}  # see README
DIRECTIONS = ["gaussian", "gaussian-blocks", "rademacher", "table"]  # draws, the same in parallel blocks, packed-bit signs, table windows


def step_over_two_forwards(optimizer, loss, repeat: int = 5) -> tuple[float, float, float]:
    """(step time / two forward passes, step seconds, forward seconds), each the best of ``repeat``."""
    step = min(timeit.repeat(lambda: optimizer.step(loss), number=1, repeat=repeat))
    with torch.no_grad():
        forward = min(timeit.repeat(loss, number=1, repeat=repeat))
    return step / (2 * forward), step, forward


class FirstOrderStep:
    """First-order baselines on the same models, for the memory and time comparison."""

    params = (["fo-sgd", "fo-adam"], list(SIZES))
    param_names = ["optimizer", "size"]
    timeout = 300

    def setup(self, name, size):
        self.model, self.batch = _model(size)
        self.optimizer = optimizers.get(name).create(self.model.parameters(), lr=1e-6)
        self.optimizer.step(self.loss)

    def loss(self):
        return self.model(input_ids=self.batch, labels=self.batch).loss

    def time_step(self, name, size):
        self.optimizer.step(self.loss)

    def peakmem_step(self, name, size):
        self.optimizer.step(self.loss)


class ZerothOrderPasses:
    """ZO-SGD's step overhead by implementation (MeZO's four regenerations, the fused three, the fused
    step with the noise cached) and by sampler (Gaussian draws, packed-bit signs, shared-table
    windows). Setup never steps, so ``peakmem_step`` and ``peakmem_inference`` are one step's peak and
    one forward's on the same model; the table's 128 MiB is part of the step's."""

    params = (list(MODES), DIRECTIONS, list(SIZES))
    param_names = ["mode", "direction", "size"]
    timeout = 300

    def setup(self, mode, direction, size):
        self.model, self.batch = _model(size)
        self.optimizer = optimizers.create("zo-sgd", self.model.parameters(), lr=1e-6, direction=direction,
                                           **MODES[mode])

    def loss(self):
        return self.model(input_ids=self.batch, labels=self.batch).loss

    def track_step_over_two_forwards(self, mode, direction, size):
        return step_over_two_forwards(self.optimizer, self.loss)[0]

    track_step_over_two_forwards.unit = "ratio"

    def peakmem_step(self, mode, direction, size):
        self.optimizer.step(self.loss)

    def peakmem_inference(self, mode, direction, size):
        with torch.no_grad():
            self.loss()

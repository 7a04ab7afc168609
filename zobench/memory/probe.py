"""One memory measurement, in a fresh process: the peak of one method's step on a random-weight OPT.

A *point* is a method (inference, or an optimizer with a PEFT mode), an OPT shape, a sequence length,
a batch size and a dtype. The probe builds the model, runs one untimed warm-up of nothing, resets the
peak, then runs one step (a forward for inference; one optimizer step for training, which is when
optimizer state is first allocated), and reports:

* GPU: ``max_memory_allocated`` over the step, summed over visible devices;
* CPU: the resident-set high-water mark over the step (reset through ``/proc/self/clear_refs``) and
  the process's resident set before the model was built, so ``peak - baseline`` is what the model and
  the step hold.

Every point runs in its own process (``python -m zobench.memory.probe '<json>'``): a process that has
freed memory may keep it resident, so points measured one after another would contaminate each other.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, dataclass

import torch

from ..measure import _reset_rss_peak, _rss_peak_bytes


@dataclass(frozen=True)
class Shape:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int = 50272
    positions: int = 2048

    def parameters(self) -> int:
        """OPT's parameter count (tied input and output embeddings), checked against a built model."""
        h, f = self.hidden, self.ffn
        block = 4 * (h * h + h) + (h * f + f) + (f * h + h) + 4 * h
        return self.vocab * h + (self.positions + 2) * h + self.layers * block + 2 * h


@dataclass(frozen=True)
class Point:
    method: str  # a label of the study
    optimizer: str | None  # None: inference only
    peft: str
    shape: Shape
    sequence_length: int
    batch_size: int = 1
    dtype: str = "float32"
    device: str = "cpu"

    @classmethod
    def from_dict(cls, values: dict) -> "Point":
        return cls(**{**values, "shape": Shape(**values["shape"])})


def _model(point: Point):
    from transformers import OPTConfig, OPTForCausalLM

    from ..models import DTYPES, LoadedModel
    from ..problems.task_problem import apply_peft

    s = point.shape
    config = OPTConfig(hidden_size=s.hidden, num_hidden_layers=s.layers, num_attention_heads=s.heads,
                       ffn_dim=s.ffn, word_embed_proj_dim=s.hidden, max_position_embeddings=s.positions,
                       vocab_size=s.vocab)
    torch.manual_seed(0)
    with torch.device(point.device):  # a GPU initialises large shapes in a second, the CPU in a minute
        model = OPTForCausalLM(config).to(DTYPES[point.dtype])
    if point.peft != "none":
        model = apply_peft(LoadedModel(model, None, "causal", "probe"), point.peft).model
    elif point.optimizer is None:
        model.requires_grad_(False)
    return model.eval()


def measure(point: Point) -> dict:
    """Runs in this process; call :func:`run` to measure in a fresh one."""
    import peft  # noqa: F401  (every import happens before the baseline, which is then the process's floor)
    import transformers  # noqa: F401

    from .. import optimizers
    from ..optimizers import decay_groups
    from ..problems.task_problem import PREFIX_TOKENS
    device = torch.device(point.device)
    torch.nn.Linear(64, 64)(torch.zeros(8, 64)).sum()  # torch's lazy runtime state, before the baseline
    baseline = _rss_peak_bytes("VmRSS") if device.type == "cpu" else 0
    model = _model(point)
    length = point.sequence_length - (PREFIX_TOKENS if point.peft == "prefix" else 0)  # prefixes fill the rest
    tokens = torch.randint(0, point.shape.vocab, (point.batch_size, length),
                           generator=torch.Generator().manual_seed(0)).to(device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if device.type == "cuda":
        torch.cuda.synchronize()
        for index in range(torch.cuda.device_count()):
            torch.cuda.reset_peak_memory_stats(index)
    else:
        _reset_rss_peak()
    if point.optimizer is None:
        with torch.inference_mode():
            model(input_ids=tokens)
    else:
        optimizer = optimizers.create(point.optimizer, decay_groups(model), lr=1e-6,
                                      context={"total_steps": 20000, "seed": 0})
        optimizer.step(lambda: model(input_ids=tokens, labels=tokens).loss)  # FO steps backpropagate it
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = sum(torch.cuda.max_memory_allocated(i) for i in range(torch.cuda.device_count()))
    else:
        peak = _rss_peak_bytes()
    return {"point": asdict(point), "peak_bytes": peak, "baseline_bytes": baseline,
            "parameters": sum(p.numel() for p in model.parameters()), "trainable": trainable}


def run(point: Point) -> dict:
    """:func:`measure` in a fresh Python process; a failure raises with the probe's last error line."""
    result = subprocess.run([sys.executable, "-m", "zobench.memory.probe", json.dumps(asdict(point))],
                            capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"memory probe {point.method} at {point.shape} L={point.sequence_length} failed: {last}")
    return json.loads(result.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(json.dumps(measure(Point.from_dict(json.loads(sys.argv[1])))))

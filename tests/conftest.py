import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # tests/paper_maths.py
# the example plugin, an installed distribution (dist-info with its entry point): every test that runs
# over the registered optimizers runs over it too
sys.path.insert(0, str(Path(__file__).parent / "plugin"))

from zobench import optimizers  # noqa: E402  (after the plugin is on the path)
from zobench.problems.base import batch_slice  # noqa: E402


def registered(**declared) -> list[str]:
    """The registered optimizers (plugins included) whose declared fields have the given values."""
    return [name for name in optimizers.names()
            if all(getattr(optimizers.get(name), key) == value for key, value in declared.items())]


ZO_NAMES = registered(family="zo")


class TinyRegression(torch.nn.Module):
    """A two-layer network on fixed data: small, nonlinear, with biases (no decay) and weights."""

    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(1234)
        self.hidden = torch.nn.Linear(5, 4)
        self.out = torch.nn.Linear(4, 2)
        self.inputs = torch.randn(16, 5, generator=generator)
        self.targets = torch.randn(16, 2, generator=generator)

    def forward(self, rows=slice(None)):
        return torch.nn.functional.mse_loss(self.out(torch.tanh(self.hidden(self.inputs[rows]))), self.targets[rows])

    def part(self, part, parts):
        """The loss on slice ``part`` of ``parts`` of the 16 examples (GRZO's per-example losses)."""
        return self(batch_slice(len(self.inputs), part, parts))

    def whole(self):
        """The whole training set's loss: the 16 examples are the whole set, every step's batch."""
        return self()


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return TinyRegression()


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real task data beside the checkout (never copied into the project)."""
    assert SHARED_DATA.is_dir(), (f"{SHARED_DATA} is missing: the task tests read real data from the shared "
                                  "folder beside the checkout (../shared/data)")
    return SHARED_DATA


def interruptible_suite(name: str) -> str:
    """A suite of one FZOO run, 400 quick steps on a 300k-dimensional quadratic (a few seconds): long
    enough to interrupt mid-run, short enough for CI."""
    return f"""name: {name}
problems: [quadratic-d300000-r8]
optimizers:
  - {{name: fzoo, label: FZOO, lr: 0.003}}
seeds: [0]
budget: {{steps: 400, eval_every: 100}}
targets: [0.1]
"""


MEASUREMENTS = ("time", "memory", "environment")  # a record's measured fields: they differ between executions


def without_measurements(record: dict, also=()) -> dict:
    """A record without what differs between two executions of the same run: its measured fields (and
    ``also``) and each target's training seconds."""
    kept = {k: v for k, v in record.items() if k not in MEASUREMENTS + tuple(also)}
    if "targets" in kept:
        kept["targets"] = [{k: v for k, v in target.items() if k != "seconds"} for target in kept["targets"]]
    return kept


def sst2_head_suite(name: str, entry: str, steps: int, eval_every: int) -> str:
    """A suite of one optimizer entry (its flow mapping, e.g. ``{name: zo-sgd, lr: 0.01}``) on a small
    SST-2 head from ``../shared/data``: 64 training examples, batches of 16, seed 0."""
    return f"""name: {name}
tasks: [sst2]
models: [minilm-l6]
data_dir: {SHARED_DATA}
data: {{protocol: mezo, num_train: 64, num_dev: 32, num_test: 32, batch_size: 16}}
peft: head
optimizers:
  - {entry}
seeds: [0]
budget: {{steps: {steps}, eval_every: {eval_every}}}
"""

"""In-context learning: a task whose prompts start with solved training examples (MeZO's ICL).

Each prompt gets its own ``k`` demonstrations, drawn from the training split with a seed made of the
data seed and the prompt's text (so a prompt always sees the same ones, and different prompts see
different ones, as MeZO draws a set per evaluation example). A demonstration is the task's prompt
for a training example followed by its gold continuation; demonstrations and the prompt are joined
by blank lines.
"""

from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass

import torch

from .task import Task

SEPARATOR = "\n\n"


@dataclass(frozen=True)
class WithDemonstrations:
    task: Task
    train: tuple[dict, ...]
    k: int
    seed: int = 0

    def __getattr__(self, name):  # everything but the prompt is the task's own
        return getattr(self.task, name)

    def demonstrations(self, prompt: str) -> list[dict]:
        generator = torch.Generator().manual_seed(self.seed * 2 ** 32 + zlib.crc32(prompt.encode()))
        order = torch.randperm(len(self.train), generator=generator).tolist()
        others = (self.train[i] for i in order if self.task.prompt(self.train[i]) != prompt)
        return list(itertools.islice(others, self.k))  # renders about k prompts, not the whole split

    def solved(self, example: dict) -> str:
        return self.task.prompt(example) + self.task.target(example)

    def prompt(self, example: dict) -> str:
        prompt = self.task.prompt(example)
        return SEPARATOR.join([self.solved(d) for d in self.demonstrations(prompt)] + [prompt])

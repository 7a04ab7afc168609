"""A language-model task as a :class:`~zobench.problems.base.Problem`: a model fine-tuned on a task.

PEFT modes (what is trainable, so what a ZO optimizer perturbs):

* ``none`` — every parameter of the model;
* ``lora`` — LoRA adapters (r = 8, α = 16) on the attention query and value projections, via ``peft``;
* ``prefix`` — prefix tuning with 5 virtual tokens, via ``peft`` (causal LMs);
* ``head`` — a linear head on the frozen model's features (:class:`~zobench.scoring.HeadScorer`):
  MeZO's head tuning, and the way to run real comparisons on a CPU;
* ``top`` — the head and an encoder's last transformer block (:class:`~zobench.scoring.TopBlockScorer`):
  a realistic trainable dimension (1.8M on MiniLM-L6) whose steps cost one block, not the model.

``demonstrations`` > 0 prefixes every prompt with that many solved training examples (in-context
learning, :mod:`zobench.tasks.demonstrations`); with ``budget.steps: 0`` it is MeZO's ICL baseline.

Objectives: ``loss`` — the cross-entropy over the options, or the LM loss on the gold option for
tasks declared ``train_as: lm`` — or a metric of the task, negated: ``accuracy`` of the batch, or
``f1`` / ``em`` of its greedy generations. Metrics have no gradient: they are the paper's
non-differentiable objectives (Table 4), for zeroth-order optimizers only.

The training batch of step t is drawn with the seed of (run seed, t), so it depends on t alone, as
the seed-log resume needs. The model runs in eval mode (no dropout), as in MeZO's forward passes.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from ..models import LoadedModel, load_model
from ..optimizers import decay_groups
from ..optimizers.noise import step_seed
from ..scoring import make_scorer
from ..tasks import load_splits, load_task, metrics
from ..tasks.demonstrations import WithDemonstrations
from . import PEFT_MODES
from .base import batch_slice

CACHED = ("head", "top")  # the frozen model runs once per example; only the scorer's own modules train
LORA_TARGETS = (("q_proj", "v_proj"), ("query", "value"))
PREFIX_TOKENS = 5  # MeZO's num_prefix


def apply_peft(loaded: LoadedModel, mode: str) -> LoadedModel:
    """Wraps the model in LoRA or prefix adapters; everything else is frozen."""
    if mode == "none" or mode in CACHED:
        return loaded
    from peft import LoraConfig, PrefixTuningConfig, TaskType, get_peft_model

    if mode == "lora":
        names = {name.rsplit(".", 1)[-1] for name, _ in loaded.model.named_modules()}
        targets = next((list(pair) for pair in LORA_TARGETS if set(pair) <= names), None)
        if targets is None:
            raise ValueError(f"no query/value projections found in {loaded.name} for LoRA")
        config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=targets)
    else:
        if loaded.kind != "causal":
            raise ValueError("prefix tuning is implemented for causal LMs")
        config = PrefixTuningConfig(num_virtual_tokens=PREFIX_TOKENS, task_type=TaskType.CAUSAL_LM)
    return LoadedModel(get_peft_model(loaded.model, config), loaded.tokenizer, loaded.kind, loaded.name)


@functools.lru_cache(maxsize=2)
def _frozen_model(name: str, dtype: str, device: str) -> LoadedModel:
    """Head and top-block tuning never change the model, so runs in one process share it (and its
    cached outputs)."""
    return load_model(name, dtype=dtype, device=device)


class TaskProblem:
    higher_is_better = True

    def __init__(self, task: str, model: str, *, peft: str = "none", protocol: str = "mezo", data_seed: int = 0,
                 num_train: int = 1000, num_dev: int = 500, num_test: int = 1000, batch_size: int = 16,
                 max_length: int = 256, data_dir: str | None = None, dtype: str = "float32", device: str = "cpu",
                 device_map: str | None = None, seed: int = 0, objective: str = "loss", demonstrations: int = 0, calibrate: bool = False):
        if peft not in PEFT_MODES:
            raise ValueError(f"peft must be one of {PEFT_MODES}, not {peft!r}")
        self.task = load_task(task)
        if objective not in self.task.objectives:
            raise ValueError(f"objective {objective!r} does not fit task {task} ({self.task.kind}); use one of "
                             f"{', '.join(self.task.objectives)}")
        self.objective, self.metric = objective, self.task.metric
        self.splits = load_splits(self.task, protocol=protocol, seed=data_seed, num_train=num_train,
                                  num_dev=num_dev, num_test=num_test, data_dir=data_dir)
        loaded = (_frozen_model(model, dtype, device) if peft in CACHED else
                  load_model(model, dtype=dtype, device=device, device_map=device_map))
        loaded = apply_peft(loaded, peft)
        loaded.model.eval()
        if demonstrations:
            if loaded.kind != "causal" or peft in CACHED:
                raise ValueError("in-context demonstrations need a causal LM scored on its own (peft none, lora "
                                 "or prefix)")
            self.task = WithDemonstrations(self.task, tuple(self.splits.train), demonstrations, data_seed)
        self.scorer = make_scorer(loaded, self.task, peft if peft in CACHED else loaded.kind, max_length, calibrate)
        if hasattr(self.scorer, "prepare"):
            for examples in (self.splits.train, self.splits.dev, self.splits.test):
                self.scorer.prepare(examples)
        self.batch_size, self.seed = batch_size, seed
        self.gold = {name: [self.task.gold(e) for e in getattr(self.splits, name)] for name in ("train", "dev", "test")}

    def parameter_groups(self) -> list[dict]:
        return decay_groups(self.scorer.trainable())

    def trainable_parameters(self) -> int:
        return sum(p.numel() for g in self.parameter_groups() for p in g["params"])

    def loss_closure(self, step: int, shard: tuple[int, int] | None = None):
        """The loss on step ``step``'s batch; with ``shard`` = (rank, ranks), on that rank's equal share
        of it (examples rank, rank + ranks, …): the mean of the shards' losses is the batch's."""
        generator = torch.Generator().manual_seed(step_seed(self.seed, step))
        chosen = torch.randperm(len(self.splits.train), generator=generator)[:self.batch_size].tolist()
        if shard is not None:
            rank, ranks = shard
            if self.batch_size % ranks:
                raise ValueError(f"batch_size {self.batch_size} does not split into {ranks} equal shards; use a "
                                 f"multiple of {ranks}")
            if self.task.train_as == "lm" and self.objective == "loss":
                raise ValueError(f"task {self.task.name} trains on a token-averaged LM loss, which equal shards of "
                                 "examples do not average; use split probes")
            chosen = chosen[rank::ranks]
        examples = [self.splits.train[i] for i in chosen]
        gold = [self.gold["train"][i] for i in chosen]

        def loss_on(rows: slice):
            batch, batch_gold = examples[rows], gold[rows]
            if self.objective == "accuracy":
                return -torch.tensor(_hits(self.scorer.scores(batch), batch_gold)).float().mean()
            if self.objective in ("f1", "em"):
                return -torch.tensor(self._answer_scores(batch)[self.objective]).mean()
            if self.task.train_as == "lm":
                return self.scorer.lm_loss(batch)
            labels = torch.tensor([g[0] for g in batch_gold], device=self._device())
            return F.cross_entropy(self.scorer.scores(batch), labels)

        def closure():
            return loss_on(slice(None))
        closure.part = lambda part, parts: loss_on(batch_slice(len(examples), part, parts))
        closure.examples = len(examples)
        return closure

    def whole_train_closure(self):
        """The mean training loss over every training example, batch by batch (weighted by each batch's
        size), and the batches it takes. Classification's cross-entropy only: other objectives average
        over tokens or are not losses (refused in one line)."""
        if self.task.train_as == "lm" or self.objective != "loss":
            raise ValueError(f"a whole-training-set loss is computed for classification tasks' cross-entropy; "
                             f"{self.task.name} with objective {self.objective} has none")
        examples, gold = self.splits.train, self.gold["train"]
        starts = range(0, len(examples), self.batch_size)

        def whole():
            total = 0.0
            for start in starts:
                batch = examples[start:start + self.batch_size]
                labels = torch.tensor([g[0] for g in gold[start:start + self.batch_size]], device=self._device())
                total = total + F.cross_entropy(self.scorer.scores(batch), labels, reduction="sum")
            return total / len(examples)

        return whole, len(starts)

    def _device(self):
        return next(self.scorer.trainable().parameters()).device

    def _answer_scores(self, examples: list[dict]) -> dict[str, list[float]]:
        predictions = self.scorer.generate(examples)
        answers = [self.task.gold_answers(e) for e in examples]
        return {"f1": [metrics.f1(p, a) for p, a in zip(predictions, answers)],
                "em": [metrics.exact_match(p, a) for p, a in zip(predictions, answers)]}

    @torch.no_grad()
    def evaluate(self, split: str, batch_size: int = 32) -> dict[str, float]:
        """Accuracy and the cross-entropy over options; for generation, F1, exact match and the
        LM loss of the gold answers."""
        examples, gold = getattr(self.splits, split), self.gold[split]
        totals: dict[str, float] = {}
        for start in range(0, len(examples), batch_size):
            batch, batch_gold = examples[start:start + batch_size], gold[start:start + batch_size]
            if self.task.kind == "generation":
                for name, values in self._answer_scores(batch).items():
                    totals[name] = totals.get(name, 0.0) + sum(values)
                loss = float(self.scorer.lm_loss(batch)) * len(batch)
            else:
                scores = self.scorer.scores(batch).float().cpu()
                totals["accuracy"] = totals.get("accuracy", 0.0) + sum(_hits(scores, batch_gold))
                loss = float(F.cross_entropy(scores, torch.tensor([g[0] for g in batch_gold]), reduction="sum"))
            totals["loss"] = totals.get("loss", 0.0) + loss
        return {name: total / max(len(examples), 1) for name, total in totals.items()}

    def snapshot(self) -> dict:
        return {}

    def describe(self) -> dict:
        """What the run record keeps about the data and the model."""
        return {"data_source": self.splits.source, "split_sizes": self.splits.sizes,
                "class_balance": self.class_balance(), "trainable_parameters": self.trainable_parameters()}

    def class_balance(self) -> dict[str, dict[str, float]]:
        """Per split, the fraction of examples of each gold option (classification tasks; empty for
        others): a dev set that differs in balance from test explains dev gains that test does not show."""
        names = list(getattr(self.task, "candidates", {}) or {})
        if not names:
            return {}
        balance = {}
        for split, gold in self.gold.items():
            counts = [sum(correct == [i] for correct in gold) for i in range(len(names))]
            balance[split] = {name: count / max(len(gold), 1) for name, count in zip(names, counts)}
        return balance


def _hits(scores: torch.Tensor, gold: list[list[int]]) -> list[bool]:
    """Whether each example's best-scored option is a correct one."""
    return [prediction in correct for prediction, correct in zip(scores.argmax(-1).tolist(), gold)]


"""What a suite file becomes: its runs (each with the key that names its record), its tuning
studies and its report's table layouts."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import __version__
from .optimizers import REGISTRY


class SuiteError(ValueError):
    """A suite file that cannot run; the message is one line naming the YAML path."""


@dataclass(frozen=True)
class RunSpec:
    """One run: everything that determines its result, and a key derived from it."""

    suite: str
    problem: str
    optimizer: str
    label: str  # how reports name this optimizer configuration
    hyperparameters: dict
    seed: int
    steps: int
    eval_every: int
    targets: tuple[float, ...]
    forward_pass_budget: int | None = None
    seconds_budget: float | None = None  # training wall-clock seconds, device-synchronised
    dtype: str = "float32"
    device: str = "cpu"
    peft: str = "none"
    model: str = ""  # empty for the test functions
    data: dict = field(default_factory=dict)  # protocol, split sizes, batch size, max length, data seed
    data_dir: str | None = None  # where local task data lives: not part of the run's identity
    task_file: str | None = None  # where a task declared in a file lives: not part of the identity either
    task_hash: str = ""  # a digest of that declaration's content: a changed declaration is a new run
    objective: str = "loss"  # or a task metric (accuracy, f1, em), negated, without gradient (ZO only)
    revisions: dict = field(default_factory=dict)  # optimizer, problem family, scorer -> revision (1 if absent)
    key: str = field(default="", compare=False)

    def __post_init__(self):
        if not self.key:
            identity = {k: v for k, v in asdict(self).items() if k not in ("key", "label", "data_dir", "task_file")}
            # a revision counts from its first bump: at 1 it is left out, so the keys of runs of unchanged
            # code stay those written before revisions existed, and their records stay valid
            identity["revisions"] = {name: value for name, value in self.revisions.items() if value != 1}
            for name in ("task_hash", "seconds_budget", "revisions"):  # absent: keys stay those written before
                if not identity[name]:
                    identity.pop(name)
            identity["zobench"] = __version__
            digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
            object.__setattr__(self, "key", digest[:16])

    @property
    def data_options(self) -> dict:
        """Keyword arguments of the task problem; k-shot splits are chosen by the run's seed (LM-BFF)."""
        options = dict(self.data)
        data_seed = options.pop("seed", 0)
        options["data_seed"] = self.seed if options.get("protocol") == "kshot" else data_seed
        return options

    @property
    def schedule(self) -> str:
        """The optimizer's momentum schedule, as its registry entry declares it (``adam``, ``adamu``, …)."""
        return REGISTRY.get(self.optimizer).schedule

    @property
    def placement(self) -> str:
        """``δ`` or ``g``, as the registry entry declares (``zo-adamu`` is ``δ``); ``-`` otherwise."""
        return REGISTRY.get(self.optimizer).placement


@dataclass(frozen=True)
class TableLayout:
    """One report table: a quantity of the runs, pivoted to rows × columns of run fields."""

    name: str
    quantity: str
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    caption: str = ""
    paper: dict = field(default_factory=dict)  # row label -> column label -> the paper's value, as printed
    statistic: str = "iqm"  # per cell: "iqm" (IQM [95% bootstrap CI] over seeds) or "mean-std"
    improvement: dict = field(default_factory=dict)  # {over: column, of: column}: P(of > over) per row

    def cell(self, spec: RunSpec) -> tuple[str, str]:
        """The row and the column a run falls in."""
        return tuple(" ".join(str(getattr(spec, name)) for name in names) for names in (self.rows, self.columns))


@dataclass(frozen=True)
class Study:
    """The tuning of one optimizer entry on one problem, and the runs its choice becomes."""

    label: str
    space: dict  # hyperparameter -> list of values, or ("log" | "uniform", low, high)
    trials: int
    sampler: str
    trial: RunSpec  # a trial's run, without the searched hyperparameters
    final: RunSpec  # a reported run, likewise, with the suite's seed replaced by each of ``seeds``
    seeds: tuple[int, ...]
    higher_is_better: bool = True
    storage: str | None = None  # a shared Optuna storage (parallel trials), or None: rebuilt from the records

    @property
    def name(self) -> str:
        """The study's file stem: readable, and unique through a digest of what it tunes."""
        readable = "".join(c if c.isalnum() or c in "-_" else "-" for c in f"{self.label}--{self.trial.problem}")
        digest = hashlib.sha256(f"{self.trial.key} {sorted(self.space.items())!r}".encode()).hexdigest()[:8]
        return f"{readable[:60]}-{digest}"

    def trial_spec(self, params: dict) -> RunSpec:
        return dataclasses.replace(self.trial, hyperparameters={**self.trial.hyperparameters, **params}, key="")

    def final_specs(self, params: dict) -> list[RunSpec]:
        hyperparameters = {**self.final.hyperparameters, **params}
        return [dataclasses.replace(self.final, hyperparameters=hyperparameters, seed=seed, key="")
                for seed in self.seeds]


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    runs: tuple[RunSpec, ...]
    tables: tuple[TableLayout, ...]
    source: Path
    gap_targets: tuple[float, ...] = ()  # fractions of the gap from a run's initial metric to the best observed
    studies: tuple[Study, ...] = ()  # tuned entries: their runs join ``runs`` once tuned (zobench.tuning)
    labels: tuple[str, ...] = ()  # every entry's label, in the file's order (tuned runs take their place)
    track: str | None = None  # AlgoPerf's track (zobench.tracks): "external", "self-tuning", or None


@dataclass(frozen=True)
class RunSettings:
    """What the suite sets for all its runs and an optimizer entry may set for its own (Table 1's rows
    differ in PEFT mode, budget, demonstrations and precision)."""

    peft: str = "none"
    steps: int = 0
    eval_every: int = 0  # 0: a twentieth of the steps
    forward_passes: int | None = None
    seconds: float | None = None
    data: dict = field(default_factory=dict)
    objective: str = "loss"
    dtype: str = "float32"


DEFAULT_TABLES = (
    TableLayout("final_metric", "final", ("problem",), ("label",)),
    TableLayout("selected_test", "selected_test", ("problem",), ("label",)),
    TableLayout("steps_to_target", "steps_to_target", ("problem",), ("label",),
                "Steps to reach {target} (median over the seeds that did; reached/seeds)"),
)

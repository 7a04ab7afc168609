"""The declared shape of a suite file: pydantic models of its keys, types, choices and bounds.

These models are the one statement of what a suite may hold: ``load_suite`` validates a file with
them (every problem of the file reported at once, each with its YAML path), and ``zobench schema``
writes them as JSON Schema for editors. What needs the registry or another part of the file (an
optimizer's hyperparameters, labels, rows the paper's values name) is checked after, in
:mod:`zobench.suite`.

An optional key without a fixed default has default ``None``, meaning unset (the suite's value, the
protocol's, or a derived one applies); ``null`` in a file is refused like any other wrong type.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from .optimizers.lr_schedules import LearningRateSchedule
from .problems import DTYPES, PEFT_MODES
from .schema import Declared, NonNegativeInt, Number, PositiveInt
from .tasks.data import PROTOCOLS

SEED_LIMIT = 2 ** 32  # numpy's seeds, and so Optuna's samplers', are below it
MAX_TRIALS = 10_000  # per study: far past what any sampler needs, short of a typo's billions
DEVICES = ("cpu", "cuda", "auto", "sharded")  # sharded: device_map="auto", one model over every visible GPU
OBJECTIVES = ("loss", "accuracy", "f1", "em")
QUANTITIES = ("initial_test", "final", "selected_test", "steps_to_target", "forward_passes_to_target", "seconds_to_target",
              "seconds_per_step", "peak_train_memory")
STATISTICS = ("iqm", "mean-std")
RUN_FIELDS = ("problem", "model", "peft", "label", "optimizer", "schedule", "placement", "seed")
TUNE_SAMPLERS = ("grid", "random", "tpe")
TRACKS = ("external", "self-tuning")  # zobench.tracks

Seed = Annotated[int, Field(strict=True, ge=0, lt=SEED_LIMIT)]
Peft = Literal[PEFT_MODES]
Dtype = Literal[tuple(DTYPES)]
Objective = Literal[OBJECTIVES]
RunField = Literal[RUN_FIELDS]


class Budget(Declared):
    steps: NonNegativeInt = None  # 0 steps: evaluate only (zero-shot, in-context learning)
    eval_every: PositiveInt = None  # default: a twentieth of the steps
    forward_passes: PositiveInt = None
    seconds: Annotated[Number, Field(gt=0)] = None  # training wall-clock seconds, device-synchronised


class Data(Declared):
    """How a task's data is split and batched (applies to tasks only); unset keys take the protocol's."""

    protocol: Literal[PROTOCOLS] = None
    num_train: PositiveInt = None
    num_dev: PositiveInt = None
    num_test: PositiveInt = None
    batch_size: PositiveInt = None
    max_length: PositiveInt = None
    seed: NonNegativeInt = None
    demonstrations: NonNegativeInt = None
    calibrate: bool = None


class Tune(Declared):
    """A search on dev: ``space`` maps a hyperparameter to a list of values or ``{log|uniform: [low, high]}``;
    unset keys: 8 trials of TPE, seed 0, the suite's budget."""

    space: dict[str, Any] = None
    trials: Annotated[int, Field(strict=True, ge=1, le=MAX_TRIALS)] = None
    sampler: Literal[TUNE_SAMPLERS] = None
    budget: Budget = None
    seed: Seed = None
    # "journal" (a journal file beside the suite's records, safe on a shared file system) or an RDB URL:
    # several `zobench run` processes then run different trials of each study at once (zobench.tuning)
    storage: str = None
    # the external-tuning track's space per registry family (zo, fo, fg) or per optimizer name, in place of
    # ``space`` for those methods (a name over its family)
    families: dict[str, dict[str, Any]] = None


class Table(Declared):
    name: str
    quantity: Literal[QUANTITIES]
    rows: RunField | list[RunField]
    columns: RunField | list[RunField]
    caption: str = ""
    paper: dict[str, dict[str, int | Number]] = {}  # row -> column -> the paper's value, as printed
    statistic: Literal[STATISTICS] = "iqm"
    improvement: dict[Literal["over", "of"], str] = {}


class Report(Declared):
    tables: list[Table] = []


class OptimizerEntry(Declared):
    """One optimizer; its other keys are its hyperparameters (checked against its factory)."""

    model_config = ConfigDict(extra="allow")
    name: str
    label: str = None  # default: the name, and the values its grid varies
    overrides: dict[str, dict[str, Any]] = None  # problem -> hyperparameters
    peft: Peft = None  # unset: the suite's (so for budget, data, objective, dtype and tune)
    budget: Budget = None
    data: Data = None
    objective: Objective = None
    dtype: Dtype = None
    tune: Tune = None
    # a hyperparameter (a list is a grid), declared here for its checks and an editor's completion
    lr_schedule: LearningRateSchedule | list[LearningRateSchedule] = None


class SuiteFile(Declared):
    """A suite: problems (test functions) or tasks with models, optimizers, seeds, budget, targets, report."""

    model_config = ConfigDict(title="zobench suite")
    name: str
    description: str = ""
    problems: list[str] = []
    tasks: list[str] = []
    models: list[str] = []
    data: Data = None
    data_dir: str = None
    optimizers: Annotated[list[OptimizerEntry], Field(min_length=1)]
    seeds: Annotated[list[Seed], Field(min_length=1)] = [0]
    budget: Budget
    targets: list[Number | str] = []  # a value of the metric, or "50%" of the gap to the best run
    dtype: Dtype = "float32"
    device: Literal[DEVICES] = "cpu"
    peft: Peft = "none"
    objective: Objective = "loss"
    report: Report = None
    tune: Tune = None
    track: Literal[tuple(TRACKS)] = None  # AlgoPerf's tracks (zobench.tracks); unset: no track
    baseline_targets: str = None  # a file of per-problem targets from a baseline (zobench targets), beside the suite

"""Suite files: a declared experiment, validated whole before anything runs, expanded into runs.

A suite (``suites/*.yaml``) names its problems (test functions) or its tasks and models, its
optimizers with hyperparameters (a list means a grid; ``overrides`` sets hyperparameters per
problem), seeds, a budget, convergence targets, dtype, device, PEFT mode and the layout of its
report tables (with the paper's values to print beside ours). An optimizer entry may also set its
own ``peft``, ``budget``, ``data``, ``objective`` and ``dtype``, so one suite holds rows as different
as zero-shot, in-context learning, LoRA and full fine-tuning (Table 1). A target is an absolute value
of the dev metric, or a percentage: that fraction of
the gap between a run's initial metric and the best any run of the suite reached on the same problem
(COCO-style, resolved when the report is written). Every mistake is reported as one line that names
the YAML path, e.g. ``figure2.yaml: optimizers[2].lr: expected a number, got 'fast'``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import itertools
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from pydantic import ValidationError

from . import __version__
from .measure import host_memory_bytes
from .optimizers import REGISTRY, UnknownOptimizerError
from .problems import DTYPES, PEFT_MODES, problem_error, quadratic, revisions
from .store import unsafe_name
from .tasks import DEFINITIONS, PROTOCOLS, Task, TaskError, check_data, load_task
from .schema import one_line
from .suite_file import OptimizerEntry, SuiteFile
from .yaml_files import MAX_NODES, YamlFileError, load_yaml


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


MAX_RUNS = MAX_NODES  # a suite expanding beyond this is a mistake (a runaway grid), not an experiment
ENTRY_KEYS = tuple(OptimizerEntry.model_fields)  # an optimizer entry's other keys are hyperparameters
DEFAULT_TABLES = (
    TableLayout("final_metric", "final", ("problem",), ("label",)),
    TableLayout("selected_test", "selected_test", ("problem",), ("label",)),
    TableLayout("steps_to_target", "steps_to_target", ("problem",), ("label",),
                "Steps to reach {target} (median over the seeds that did; reached/seeds)"),
)


def _fail(where: str, message: str):
    raise SuiteError(f"{where}: {message}")


def _type_name(kind) -> str:
    return {str: "a string", list: "a list", dict: "a mapping", int: "an integer", float: "a number",
            bool: "true or false"}[kind]


def _check_type(where, value, kind):
    if isinstance(value, bool):
        ok = kind is bool
    elif kind is float:
        ok = isinstance(value, (int, float))
        if ok and not math.isfinite(value):
            _fail(where, f"expected a finite number, got {value!r}")
    else:
        ok = isinstance(value, kind)
    if not ok:
        _fail(where, f"expected {_type_name(kind)}, got {value!r}")


def _hyperparameter_names(factory) -> list[str]:
    """What a suite may set of an optimizer: its factory's arguments but the ones the harness gives."""
    return [name for name in inspect.signature(factory).parameters if name not in ("params", "total_steps", "seed")]


def _hyperparameter_grid(where: str, entry: dict, factory, required: bool = True, searched=()) -> list[dict]:
    """Expands list-valued hyperparameters into a grid, after checking names against the factory."""
    signature = inspect.signature(factory).parameters
    allowed = _hyperparameter_names(factory)
    axes = {}
    for key, value in entry.items():
        if key in ENTRY_KEYS:
            continue
        if key not in allowed:
            _fail(f"{where}.{key}", f"not a hyperparameter of {entry['name']}; allowed: {', '.join(allowed)}")
        default = signature[key].default
        takes_sequence = isinstance(default, (tuple, list))
        is_grid = isinstance(value, list) and (not takes_sequence or all(isinstance(v, list) for v in value))
        values = value if is_grid else [value]
        if not values:
            _fail(f"{where}.{key}", "an empty list gives no runs")
        for i, candidate in enumerate(values):
            path = f"{where}.{key}[{i}]" if is_grid else f"{where}.{key}"
            numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
            if numeric or key == "lr":
                _check_type(path, candidate, float)
            elif isinstance(default, bool):
                _check_type(path, candidate, bool)
        axes[key] = [tuple(v) if isinstance(v, list) else v for v in values]
    missing = [name for name, p in signature.items()
               if p.default is inspect.Parameter.empty and p.kind is p.KEYWORD_ONLY and name not in axes
               and name not in searched]
    if missing and required:
        _fail(where, f"{entry['name']} needs {', '.join(missing)}")
    return [dict(zip(axes, combination)) for combination in itertools.product(*axes.values())]


def _check_builds(where: str, info, hyperparameters: dict, steps: int) -> None:
    """Builds the optimizer on a dummy parameter, so a bad value fails now, not mid-suite."""
    try:
        info.create([torch.nn.Parameter(torch.zeros(2))], context={"total_steps": steps}, **hyperparameters)
    except (ValueError, TypeError) as error:
        _fail(where, f"{info.name} rejects {hyperparameters}: {error}")


def _label(name: str, hyperparameters: dict, varying: set[str]) -> str:
    shown = ", ".join(f"{k}={hyperparameters[k]}" for k in sorted(varying))
    return f"{name} ({shown})" if shown else name


def _tables(where: str, report: dict) -> tuple[TableLayout, ...]:
    """The report's table layouts (their shape is checked by :class:`~zobench.suite_file.Table`)."""
    layouts = []
    for i, table in enumerate(report.get("tables", [])):
        at = f"{where}: report.tables[{i}]"
        if unsafe_name(table["name"]):
            _fail(f"{at}.name", f"{unsafe_name(table['name'])}: a table's name is its file name")
        if table["name"] in [layout.name for layout in layouts]:
            _fail(f"{at}.name", f"{table['name']!r} names two tables; give each its own")
        try:
            table.get("caption", "").format(metric="", target="")
        except (KeyError, IndexError, ValueError) as error:
            _fail(f"{at}.caption", f"a caption may hold {{metric}} and {{target}} only, and a literal brace "
                                   f"doubled ({{{{ }}}}); {type(error).__name__}: {error}")
        improvement = table.get("improvement", {})
        if improvement and "over" not in improvement:
            _fail(f"{at}.improvement", "name the column to compare against, e.g. improvement: {over: MeZO}")
        if improvement and table["quantity"] in ("steps_to_target", "forward_passes_to_target"):
            _fail(f"{at}.improvement", "compares values, not runs that reached a target; use final or selected_test")
        axes = {key: tuple(table[key]) if isinstance(table[key], list) else (table[key],) for key in ("rows", "columns")}
        layouts.append(TableLayout(table["name"], table["quantity"], axes["rows"], axes["columns"],
                                   table.get("caption", ""), table.get("paper", {}), table.get("statistic", "iqm"),
                                   improvement))
    return tuple(layouts) or DEFAULT_TABLES


def _task(where: str, name: str, directory: Path) -> tuple[str, Task]:
    """A shipped task by name, or the task a file declares (its path relative to the suite's folder)."""
    if name.endswith((".yaml", ".yml")) and not Path(name).is_absolute():
        name = str((directory / name).resolve())
    try:
        return name, load_task(name)
    except TaskError as error:
        _fail(where, str(error))


def _task_identity(task: Task) -> tuple[str | None, str]:
    """(the declaration's file, a digest of its content) for a task declared in a user's file: the
    task's label is its declared name and its runs' keys follow its content, not where the file lies."""
    if task.source is None or task.source.parent == DEFINITIONS:
        return None, ""
    declaration = {k: v for k, v in asdict(task).items() if k != "source"}
    return str(task.source), hashlib.sha256(json.dumps(declaration, sort_keys=True, default=str).encode()).hexdigest()[:16]


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


def _run_settings(where: str, document: dict, base: RunSettings, test_functions: bool,
                  tasks: dict[str, Task]) -> RunSettings:
    """``document``'s peft, budget, data, objective and dtype over ``base``, checked against the problems."""
    peft = document.get("peft", base.peft)
    if peft != "none" and test_functions and not tasks:  # beside tasks, it applies to the tasks only
        _fail(f"{where}: peft", "test functions have no model to adapt; use peft: none")
    data, budget = document.get("data", {}), document.get("budget", {})
    if data and test_functions and not tasks:
        _fail(f"{where}: data", "applies to tasks, and this suite has test functions only; remove the block")
    objective = document.get("objective", base.objective)
    if objective != "loss" and test_functions:
        _fail(f"{where}: objective", "test functions are their own objective; use objective: loss")
    for name, task in tasks.items():
        if objective not in task.objectives:
            _fail(f"{where}: objective", f"{objective!r} does not fit task {Path(name).stem}; use one of "
                                          f"{', '.join(task.objectives)}")
    steps = budget.get("steps", base.steps)
    eval_every = budget.get("eval_every", base.eval_every or max(1, steps // 20))
    return RunSettings(peft, steps, eval_every, budget.get("forward_passes", base.forward_passes),
                       budget.get("seconds", base.seconds), {**base.data, **data}, objective,
                       document.get("dtype", base.dtype))


def _search_space(where: str, space: dict, allowed: list[str]) -> dict:
    """``{hyperparameter: [values]}`` or ``{hyperparameter: {log|uniform: [low, high]}}``, checked."""
    checked = {}
    for name, values in space.items():
        at = f"{where}.{name}"
        if name not in allowed:
            _fail(at, f"not a hyperparameter of this optimizer; allowed: {', '.join(allowed)}")
        if isinstance(values, list):
            if not values:
                _fail(at, "an empty list gives nothing to search")
            for i, value in enumerate(values):
                pair = isinstance(value, list) and all(isinstance(v, (int, float)) for v in value)
                if not (pair or isinstance(value, (int, float, str, bool))):
                    _fail(f"{at}[{i}]", f"a value to search is a number, a string, true/false or a list of numbers "
                                        f"(betas), not {value!r}")
            checked[name] = [tuple(value) if isinstance(value, list) else value for value in values]
            for i, value in enumerate(checked[name]):
                if value in checked[name][:i]:
                    _fail(f"{at}[{i}]", f"{values[i]!r} is listed twice: a trial would repeat another")
            continue
        if not isinstance(values, dict) or len(values) != 1 or next(iter(values)) not in ("log", "uniform"):
            _fail(at, "expected a list of values, {log: [low, high]} or {uniform: [low, high]}")
        [(kind, bounds)] = values.items()
        if not (isinstance(bounds, list) and len(bounds) == 2):
            _fail(f"{at}.{kind}", f"expected [low, high], got {bounds!r}")
        for i, bound in enumerate(bounds):
            _check_type(f"{at}.{kind}[{i}]", bound, float)
        low, high = bounds
        if not low < high or (kind == "log" and low <= 0):
            _fail(f"{at}.{kind}", f"needs low < high{' and low > 0' if kind == 'log' else ''}, got {bounds}")
        checked[name] = (kind, float(low), float(high))
    return checked


def _tune_block(where: str, suite_block: dict, entry: dict, factory) -> dict | None:
    """The entry's tuning (the suite's ``tune`` with the entry's over it), or ``None`` if nothing is
    searched; hyperparameters the entry fixes are left out of the suite-wide space."""
    entry_block = entry.get("tune", {})
    allowed = _hyperparameter_names(factory)
    space = {name: values for name, values in suite_block.get("space", {}).items()
             if name not in entry and name in allowed}
    space = {**_search_space(f"{where}: tune.space", space, allowed),
             **_search_space(f"{where}.tune.space", entry_block.get("space", {}), allowed)}
    if not space:
        if entry_block:
            _fail(f"{where}.tune", "searches nothing: give it a space, e.g. space: {lr: {log: [1.0e-4, 1.0e-1]}}")
        return None
    for name in space:
        if name in entry:
            _fail(f"{where}.{name}", f"is both fixed and searched (tune.space.{name}); keep one")
    tune = {"trials": 8, "sampler": "tpe", "budget": {}, "seed": 0, **suite_block, **entry_block, "space": space}
    if tune["sampler"] == "grid":
        ranges = [name for name, values in space.items() if not isinstance(values, list)]
        if ranges:
            _fail(f"{where}.tune.space.{ranges[0]}", "the grid sampler needs a list of values, not a range")
        points = math.prod(len(values) for values in space.values())
        if tune["trials"] > points:
            _fail(f"{where}.tune.trials", f"{tune['trials']} trials on a grid of {points} points would repeat "
                                          f"points; use trials: {points}")
    return tune


def _check_memory(where: str, problems: list[str], configurations: list) -> None:
    """Refuses a quadratic that one of the suite's optimizers cannot hold in this machine's memory,
    before anything runs (it would otherwise be killed by the kernel, or fail at allocation)."""
    capacity = host_memory_bytes()
    for index, problem in enumerate(problems):
        shape = quadratic.parse(problem)
        if not shape:
            continue
        for _, name, _, _, _, settings, _ in configurations:
            need = quadratic.memory_bytes(shape[0], torch.finfo(DTYPES[settings.dtype]).bits // 8,
                                          REGISTRY.get(name).buffers_per_parameter)
            if need > capacity:
                _fail(f"{where}: problems[{index}]", f"{problem} with {name} in {settings.dtype} needs at least "
                                                     f"{need / 2 ** 30:,.0f} GiB; this machine has "
                                                     f"{capacity / 2 ** 30:,.0f} GiB: choose a smaller d")


def load_suite(path: str | Path) -> Suite:
    """Reads, validates and expands a suite file; raises :class:`SuiteError` on the first mistake."""
    path = Path(path)
    where = path.name
    if not path.is_file():
        raise SuiteError(f"{path}: no such suite file (the suites shipped with zobench are in suites/)")
    try:
        document = load_yaml(path)
    except YamlFileError as error:
        raise SuiteError(str(error)) from None
    if not isinstance(document, dict):
        _fail(where, "a suite is a mapping of name, problems, optimizers, seeds, budget, targets")
    try:
        document = SuiteFile.model_validate(document).model_dump(exclude_unset=True)
    except ValidationError as error:
        raise SuiteError(one_line(error, where, SuiteFile)) from None
    if unsafe_name(document["name"]):
        _fail(f"{where}: name", f"{unsafe_name(document['name'])}: the suite's name is its results folder")

    problems = document.get("problems", [])
    for i, problem in enumerate(problems):
        reason = problem_error(problem)
        if reason:
            _fail(f"{where}: problems[{i}]", reason)
    tasks = dict(_task(f"{where}: tasks[{i}]", name, path.parent) for i, name in enumerate(document.get("tasks", [])))
    declared = [task.name for task in tasks.values()]
    for i, name in enumerate(declared):
        if name in declared[:i] or name in problems:
            _fail(f"{where}: tasks[{i}]", f"two problems are named {name!r}; give the task file its own name")
    tasks = {task.name: task for task in tasks.values()}
    models = document.get("models", [])
    if tasks and not models:
        _fail(where, "tasks need models (e.g. models: [minilm-l6])")
    if not problems and not tasks:
        _fail(where, "a suite needs problems (test functions) or tasks with models")
    pairs = [(problem, "") for problem in problems] + [(task, model) for task in tasks for model in models]
    problems = [problem for problem, _ in pairs]
    if "steps" not in document["budget"]:
        _fail(f"{where}: budget", "missing required key 'steps'")
    suite_settings = _run_settings(where, document, RunSettings(), bool(document.get("problems")), tasks)
    device = document.get("device", "cpu")
    seeds = document.get("seeds", [0])
    for i, seed in enumerate(seeds):
        if seed in seeds[:i]:
            _fail(f"{where}: seeds[{i}]", f"seed {seed} is listed twice: its runs would be identical")
    targets, gap_targets = [], []
    for i, target in enumerate(document.get("targets", [])):
        if isinstance(target, str) and target.endswith("%"):
            try:
                fraction = float(target[:-1]) / 100
            except ValueError:
                fraction = -1.0
            if not 0 < fraction <= 1:
                _fail(f"{where}: targets[{i}]", f"a gap target is a percentage in (0%, 100%], got {target!r}")
            gap_targets.append(fraction)
        elif isinstance(target, str):
            _fail(f"{where}: targets[{i}]", f"a target is a number or a percentage of the gap (50%), got {target!r}")
        else:
            if target < 0 or (tasks and target > 1):
                bounds = "task metrics (accuracy, F1, EM) lie in [0, 1]" if tasks else "a distance is >= 0"
                _fail(f"{where}: targets[{i}]", f"{target} can never be reached: {bounds}")
            targets.append(target)
    tables = _tables(where, document.get("report", {}))

    data_dir = document.get("data_dir")
    if data_dir is not None and not Path(data_dir).is_absolute():
        data_dir = str((path.parent / data_dir).resolve())
    checked_data = set()  # (task, protocol): its local files are read once, before any model loads
    configurations = []  # (entry index, name, label, hyperparameters, {problem: overrides}, run settings, tuning)
    for i, entry in enumerate(document["optimizers"]):
        at = f"{where}: optimizers[{i}]"
        try:
            info = REGISTRY.get(entry["name"])
        except UnknownOptimizerError as error:
            _fail(f"{at}.name", str(error))
        settings = _run_settings(at, entry, suite_settings, bool(document.get("problems")), tasks)
        if settings.objective != "loss" and info.family != "zo":
            _fail(f"{at}.name", f"objective {settings.objective} has no gradient; {info.name} needs one "
                                "(use a zo- optimizer)")
        protocol = settings.data.get("protocol", "mezo")
        for name, task in tasks.items():
            if (name, protocol) not in checked_data:
                checked_data.add((name, protocol))
                try:
                    check_data(task, protocol=protocol, seeds=seeds, data_dir=data_dir)
                except TaskError as error:
                    _fail(f"{at}" if "data" in entry else f"{where}: tasks", str(error))
        tune = _tune_block(at, document.get("tune", {}), entry, info.factory)
        searched = tune["space"] if tune else {}
        grid = _hyperparameter_grid(at, entry, info.factory, searched=searched)
        if tune and len(grid) > 1:
            _fail(at, "a tuned entry searches its tune.space; give its other hyperparameters one value each")
        sample = {name: values[0] if isinstance(values, list) else values[1] for name, values in searched.items()}
        samples = [sample] + [{**sample, name: value} for name, values in searched.items()  # each listed value builds
                              if isinstance(values, list) for value in values[1:]]
        overrides = entry.get("overrides", {})
        for problem, values in overrides.items():
            if problem not in problems:
                _fail(f"{at}.overrides.{problem}", f"not a problem of this suite; problems: {', '.join(problems)}")
            [checked] = _hyperparameter_grid(f"{at}.overrides.{problem}", {"name": entry["name"], **values},
                                             info.factory, required=False)
            overrides[problem] = checked
        varying = {key for key in grid[0] if len({repr(h[key]) for h in grid}) > 1}
        label = entry.get("label")
        if label is not None:
            if "\n" in label or not label.strip():
                _fail(f"{at}.label", "a label is one non-empty line: it heads a table column")
            if len(grid) > 1:
                _fail(f"{at}.label", f"one label for {len(grid)} configurations of a grid; drop it, and each is "
                                     f"labelled by its values")
        for hyperparameters in grid:
            for problem, searched_values in itertools.product(problems, samples):
                _check_builds(at, info, {**hyperparameters, **overrides.get(problem, {}), **searched_values},
                              settings.steps)
            name_label = label or _label(entry["name"], hyperparameters, varying)
            earlier = next((c[0] for c in configurations if c[2] == name_label), None)
            if earlier is not None:
                _fail(f"{at}.label", f"{name_label!r} also labels optimizers[{earlier}]; labels name table "
                                     "columns, so give each configuration its own")
            configurations.append((i, entry["name"], name_label, hyperparameters, overrides, settings, tune))
        if len(configurations) * len(pairs) * len(seeds) > MAX_RUNS:
            _fail(f"{at}", f"the suite expands to more than {MAX_RUNS:,} runs; narrow its grids")

    accepted = {name for _, optimizer, *_ in configurations for name in _hyperparameter_names(REGISTRY.get(optimizer).factory)}
    for name in document.get("tune", {}).get("space", {}):
        if name not in accepted:
            _fail(f"{where}: tune.space.{name}", "is a hyperparameter of none of the suite's optimizers; "
                                                 f"theirs: {', '.join(sorted(accepted))}")
    _check_memory(where, document.get("problems", []), configurations)
    task_identities = {name: dict(zip(("task_file", "task_hash"), _task_identity(task))) for name, task in tasks.items()}

    def spec(problem, model, name, label, hyperparameters, settings, seed, run_targets=targets) -> RunSpec:
        return RunSpec(suite=document["name"], problem=problem, optimizer=name, label=label,
                       hyperparameters=hyperparameters, seed=seed, steps=settings.steps, eval_every=settings.eval_every,
                       targets=tuple(float(t) for t in run_targets), forward_pass_budget=settings.forward_passes,
                       seconds_budget=settings.seconds and float(settings.seconds), dtype=settings.dtype, device=device,
                       peft=settings.peft if model else "none", model=model, data=settings.data if model else {},
                       data_dir=data_dir if model else None, objective=settings.objective,
                       revisions=revisions(problem, model, REGISTRY.get(name).revision),
                       **task_identities.get(problem, {}))

    expanded = [  # (the optimizer entry it comes from, the run)
        (entry, spec(problem, model, name, label, {**hyperparameters, **overrides.get(problem, {})}, settings, seed))
        for problem, model in pairs for entry, name, label, hyperparameters, overrides, settings, tune in configurations
        if tune is None for seed in seeds]
    studies = []
    for problem, model in pairs:
        for entry, name, label, hyperparameters, overrides, settings, tune in configurations:
            if tune is None:
                continue
            trial_settings = _run_settings(f"{where}: optimizers[{entry}].tune", {"budget": tune["budget"]},
                                           dataclasses.replace(settings, eval_every=0) if "steps" in tune["budget"]
                                           else settings, bool(document.get("problems")), tasks)
            if trial_settings.steps < 1:
                _fail(f"{where}: optimizers[{entry}].tune.budget.steps", "a trial trains: give it >= 1 step")
            fixed = {**hyperparameters, **overrides.get(problem, {})}
            studies.append(Study(label, tune["space"], tune["trials"], tune["sampler"],
                                 spec(problem, model, name, f"{label} (tuning)", fixed, trial_settings, tune["seed"], ()),
                                 spec(problem, model, name, label, fixed, settings, seeds[0]), tuple(seeds),
                                 higher_is_better=bool(model)))
    first_entry: dict[str, int] = {}
    for entry, run in expanded:
        if run.key in first_entry:
            _fail(f"{where}: optimizers[{entry}]", f"gives the same runs as optimizers[{first_entry[run.key]}] "
                                                   "(same optimizer, hyperparameters and settings); remove one")
        first_entry[run.key] = entry
    runs = tuple(run for _, run in expanded)
    for i, table in enumerate(tables):
        cells = [table.cell(run) for run in runs + tuple(study.final for study in studies)]
        labels = {"rows": {row for row, _ in cells}, "columns": {column for _, column in cells}}
        for key, column in table.improvement.items():
            if column not in labels["columns"]:
                _fail(f"{where}: report.tables[{i}].improvement.{key}", f"{column!r} is not a column of the table; "
                      f"columns: {', '.join(sorted(labels['columns']))}")
        for row, values in table.paper.items():
            if row not in labels["rows"]:
                _fail(f"{where}: report.tables[{i}].paper.{row}", f"not a row of the table; rows: "
                                                                   f"{', '.join(sorted(labels['rows']))}")
            for column in values:
                if column not in labels["columns"]:
                    _fail(f"{where}: report.tables[{i}].paper.{row}.{column}", "not a column of the table; "
                          f"columns: {', '.join(sorted(labels['columns']))}")
    return Suite(document["name"], document.get("description", ""), runs, tables, path, tuple(gap_targets),
                 tuple(studies), tuple(label for _, _, label, *_ in configurations))

"""What one part of a suite file says about another, checked after its shape (suite_file.py):
problems and tasks, targets against metrics, hyperparameters against each optimizer's factory,
tuning spaces, labels, the paper's rows and columns against the table's cells, and memory against
this machine. Every refusal is a :class:`SuiteError` of one line naming the YAML path.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import math
from dataclasses import asdict
from pathlib import Path

import torch

from .measure import host_memory_bytes
from .optimizers import REGISTRY
from .problems import DTYPES, problem_error, quadratic
from .spec import DEFAULT_TABLES, RunSettings, RunSpec, Study, SuiteError, TableLayout
from .store import unsafe_name
from .suite_file import OptimizerEntry
from .tasks import DEFINITIONS, Task, TaskError, check_data, load_task

# an optimizer entry's other keys, and lr_schedule, are hyperparameters
ENTRY_KEYS = tuple(key for key in OptimizerEntry.model_fields if key != "lr_schedule")
TO_TARGET = {"steps_to_target": "step", "forward_passes_to_target": "forward_passes", "seconds_to_target": "seconds"}


def fail(where: str, message: str):
    raise SuiteError(f"{where}: {message}")


def check_type(where, value, kind):
    """A hyperparameter's value against its default's type (a number, or true/false)."""
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, (int, float)):
        fail(where, f"expected {'true or false' if kind is bool else 'a number'}, got {value!r}")
    if not math.isfinite(value):
        fail(where, f"expected a finite number, got {value!r}")


def hyperparameter_names(factory) -> list[str]:
    """What a suite may set of an optimizer: its factory's arguments but the ones the harness gives."""
    return [name for name in inspect.signature(factory).parameters if name not in ("params", "total_steps", "seed")]


def hyperparameter_grid(where: str, entry: dict, factory, required: bool = True, searched=()) -> list[dict]:
    """Expands list-valued hyperparameters into a grid, after checking names against the factory."""
    signature = inspect.signature(factory).parameters
    allowed = hyperparameter_names(factory)
    axes = {}
    for key, value in entry.items():
        if key in ENTRY_KEYS:
            continue
        if key not in allowed:
            fail(f"{where}.{key}", f"not a hyperparameter of {entry['name']}; allowed: {', '.join(allowed)}")
        default = signature[key].default
        takes_sequence = isinstance(default, (tuple, list))
        is_grid = isinstance(value, list) and (not takes_sequence or all(isinstance(v, list) for v in value))
        values = value if is_grid else [value]
        if not values:
            fail(f"{where}.{key}", "an empty list gives no runs")
        for i, candidate in enumerate(values):
            path = f"{where}.{key}[{i}]" if is_grid else f"{where}.{key}"
            numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
            if numeric or key == "lr":
                check_type(path, candidate, float)
            elif isinstance(default, bool):
                check_type(path, candidate, bool)
        axes[key] = [tuple(v) if isinstance(v, list) else v for v in values]
    missing = [name for name, p in signature.items()
               if p.default is inspect.Parameter.empty and p.kind is p.KEYWORD_ONLY and name not in axes
               and name not in searched]
    if missing and required:
        fail(where, f"{entry['name']} needs {', '.join(missing)}")
    return [dict(zip(axes, combination)) for combination in itertools.product(*axes.values())]


def check_builds(where: str, info, hyperparameters: dict, steps: int) -> None:
    """Builds the optimizer on a dummy parameter, so a bad value fails now, not mid-suite."""
    try:
        info.create([torch.nn.Parameter(torch.zeros(2))], context={"total_steps": steps}, **hyperparameters)
    except (ValueError, TypeError) as error:
        fail(where, f"{info.name} rejects {hyperparameters}: {error}")


def tables(where: str, report: dict) -> tuple[TableLayout, ...]:
    """The report's table layouts (their shape is checked by :class:`~zobench.suite_file.Table`)."""
    layouts = []
    for i, table in enumerate(report.get("tables", [])):
        at = f"{where}: report.tables[{i}]"
        if unsafe_name(table["name"]):
            fail(f"{at}.name", f"{unsafe_name(table['name'])}: a table's name is its file name")
        if table["name"] in [layout.name for layout in layouts]:
            fail(f"{at}.name", f"{table['name']!r} names two tables; give each its own")
        try:
            table.get("caption", "").format(metric="", target="")
        except (KeyError, IndexError, ValueError) as error:
            fail(f"{at}.caption", f"a caption may hold {{metric}} and {{target}} only, and a literal brace "
                                   f"doubled ({{{{ }}}}); {type(error).__name__}: {error}")
        improvement = table.get("improvement", {})
        if improvement and "over" not in improvement:
            fail(f"{at}.improvement", "name the column to compare against, e.g. improvement: {over: MeZO}")
        if improvement and table["quantity"] in TO_TARGET:
            fail(f"{at}.improvement", "compares values, not runs that reached a target; use final or selected_test")
        axes = {key: tuple(table[key]) if isinstance(table[key], list) else (table[key],) for key in ("rows", "columns")}
        layouts.append(TableLayout(table["name"], table["quantity"], axes["rows"], axes["columns"],
                                   table.get("caption", ""), table.get("paper", {}), table.get("statistic", "iqm"),
                                   improvement))
    return tuple(layouts) or DEFAULT_TABLES


def task(where: str, name: str, directory: Path) -> tuple[str, Task]:
    """A shipped task by name, or the task a file declares (its path relative to the suite's folder)."""
    if name.endswith((".yaml", ".yml")) and not Path(name).is_absolute():
        name = str((directory / name).resolve())
    try:
        return name, load_task(name)
    except TaskError as error:
        fail(where, str(error))


def task_identity(task: Task) -> tuple[str | None, str]:
    """(the declaration's file, a digest of its content) for a task declared in a user's file: the
    task's label is its declared name and its runs' keys follow its content, not where the file lies."""
    if task.source is None or task.source.parent == DEFINITIONS:
        return None, ""
    declaration = {k: v for k, v in asdict(task).items() if k != "source"}
    return str(task.source), hashlib.sha256(json.dumps(declaration, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_settings(where: str, document: dict, base: RunSettings, test_functions: bool,
                  tasks: dict[str, Task]) -> RunSettings:
    """``document``'s peft, budget, data, objective and dtype over ``base``, checked against the problems."""
    peft = document.get("peft", base.peft)
    if peft != "none" and test_functions and not tasks:  # beside tasks, it applies to the tasks only
        fail(f"{where}: peft", "test functions have no model to adapt; use peft: none")
    data, budget = document.get("data", {}), document.get("budget", {})
    if data and test_functions and not tasks:
        fail(f"{where}: data", "applies to tasks, and this suite has test functions only; remove the block")
    objective = document.get("objective", base.objective)
    if objective != "loss" and test_functions:
        fail(f"{where}: objective", "test functions are their own objective; use objective: loss")
    for name, task in tasks.items():
        if objective not in task.objectives:
            fail(f"{where}: objective", f"{objective!r} does not fit task {Path(name).stem}; use one of "
                                          f"{', '.join(task.objectives)}")
    steps = budget.get("steps", base.steps)
    eval_every = budget.get("eval_every", base.eval_every or max(1, steps // 20))
    return RunSettings(peft, steps, eval_every, budget.get("forward_passes", base.forward_passes),
                       budget.get("seconds", base.seconds), {**base.data, **data}, objective,
                       document.get("dtype", base.dtype))


def search_space(where: str, space: dict, allowed: list[str]) -> dict:
    """``{hyperparameter: [values]}`` or ``{hyperparameter: {log|uniform: [low, high]}}``, checked."""
    checked = {}
    for name, values in space.items():
        at = f"{where}.{name}"
        if name not in allowed:
            fail(at, f"not a hyperparameter of this optimizer; allowed: {', '.join(allowed)}")
        if isinstance(values, list):
            if not values:
                fail(at, "an empty list gives nothing to search")
            for i, value in enumerate(values):
                pair = isinstance(value, list) and all(isinstance(v, (int, float)) for v in value)
                if not (pair or isinstance(value, (int, float, str, bool, dict))):
                    fail(f"{at}[{i}]", f"a value to search is a number, a string, true/false, a list of numbers "
                                        f"(betas) or a mapping (lr_schedule), not {value!r}")
            checked[name] = [tuple(value) if isinstance(value, list) else value for value in values]
            for i, value in enumerate(checked[name]):
                if value in checked[name][:i]:
                    fail(f"{at}[{i}]", f"{values[i]!r} is listed twice: a trial would repeat another")
            continue
        if not isinstance(values, dict) or len(values) != 1 or next(iter(values)) not in ("log", "uniform"):
            fail(at, "expected a list of values, {log: [low, high]} or {uniform: [low, high]}")
        [(kind, bounds)] = values.items()
        if not (isinstance(bounds, list) and len(bounds) == 2):
            fail(f"{at}.{kind}", f"expected [low, high], got {bounds!r}")
        for i, bound in enumerate(bounds):
            check_type(f"{at}.{kind}[{i}]", bound, float)
        low, high = bounds
        if not low < high or (kind == "log" and low <= 0):
            fail(f"{at}.{kind}", f"needs low < high{' and low > 0' if kind == 'log' else ''}, got {bounds}")
        checked[name] = (kind, float(low), float(high))
    return checked


def tune_block(where: str, suite_block: dict, entry: dict, factory) -> dict | None:
    """The entry's tuning (the suite's ``tune`` with the entry's over it), or ``None`` if nothing is
    searched; hyperparameters the entry fixes are left out of the suite-wide space."""
    entry_block = entry.get("tune", {})
    allowed = hyperparameter_names(factory)
    space = {name: values for name, values in suite_block.get("space", {}).items()
             if name not in entry and name in allowed}
    space = {**search_space(f"{where}: tune.space", space, allowed),
             **search_space(f"{where}.tune.space", entry_block.get("space", {}), allowed)}
    if not space:
        if entry_block:
            fail(f"{where}.tune", "searches nothing: give it a space, e.g. space: {lr: {log: [1.0e-4, 1.0e-1]}}")
        return None
    for name in space:
        if name in entry:
            fail(f"{where}.{name}", f"is both fixed and searched (tune.space.{name}); keep one")
    tune = {"trials": 8, "sampler": "tpe", "budget": {}, "seed": 0, **suite_block, **entry_block, "space": space}
    storage = tune.get("storage")
    if storage is not None and storage != "journal" and "://" not in storage:
        fail(f"{where}.tune.storage", f"{storage!r} is neither journal (a file beside the records, for a shared "
                                      "file system) nor an RDB URL such as postgresql://host/db")
    if tune["sampler"] == "grid":
        ranges = [name for name, values in space.items() if not isinstance(values, list)]
        if ranges:
            fail(f"{where}.tune.space.{ranges[0]}", "the grid sampler needs a list of values, not a range")
        points = math.prod(len(values) for values in space.values())
        if tune["trials"] > points:
            fail(f"{where}.tune.trials", f"{tune['trials']} trials on a grid of {points} points would repeat "
                                          f"points; use trials: {points}")
    return tune


def check_memory(where: str, problems: list[str], configurations: list) -> None:
    """Refuses a quadratic that one of the suite's optimizers cannot hold in this machine's memory,
    before anything runs (it would otherwise be killed by the kernel, or fail at allocation)."""
    capacity = host_memory_bytes()
    for index, problem in enumerate(problems):
        shape = quadratic.parse(problem)
        if not shape:
            continue
        for configuration in configurations:
            name, settings = configuration.optimizer, configuration.settings
            need = quadratic.memory_bytes(shape[0], torch.finfo(DTYPES[settings.dtype]).bits // 8,
                                          REGISTRY.get(name).buffers_per_parameter)
            if need > capacity:
                fail(f"{where}: problems[{index}]", f"{problem} with {name} in {settings.dtype} needs at least "
                                                     f"{need / 2 ** 30:,.0f} GiB; this machine has "
                                                     f"{capacity / 2 ** 30:,.0f} GiB: choose a smaller d")


def check_task_data(where: str, document: dict, configurations: list, tasks: dict[str, Task], seeds: list[int],
                    data_dir: str | None) -> None:
    """Each task's local files under each protocol the suite uses, read once before any model loads."""
    checked = set()
    for configuration in configurations:
        protocol = configuration.settings.data.get("protocol", "mezo")
        for name, declaration in tasks.items():
            if (name, protocol) in checked:
                continue
            checked.add((name, protocol))
            try:
                check_data(declaration, protocol=protocol, seeds=seeds, data_dir=data_dir)
            except TaskError as error:
                entry = configuration.entry
                fail(f"{where}: optimizers[{entry}]" if "data" in document["optimizers"][entry] else f"{where}: tasks",
                     str(error))


def problems(where: str, document: dict, folder: Path) -> tuple[list[tuple[str, str]], dict[str, Task]]:
    """The suite's (problem, model) pairs, test functions first, and its tasks by name."""
    functions = document.get("problems", [])
    for i, problem in enumerate(functions):
        reason = problem_error(problem)
        if reason:
            fail(f"{where}: problems[{i}]", reason)
    loaded = [task(f"{where}: tasks[{i}]", name, folder) for i, name in enumerate(document.get("tasks", []))]
    declared = [declaration.name for _, declaration in loaded]
    for i, name in enumerate(declared):
        if name in declared[:i] or name in functions:
            fail(f"{where}: tasks[{i}]", f"two problems are named {name!r}; give the task file its own name")
    tasks = {declaration.name: declaration for _, declaration in loaded}
    models = document.get("models", [])
    if tasks and not models:
        fail(where, "tasks need models (e.g. models: [minilm-l6])")
    if not functions and not tasks:
        fail(where, "a suite needs problems (test functions) or tasks with models")
    return [(problem, "") for problem in functions] + [(name, model) for name in tasks for model in models], tasks


def targets(where: str, document: dict, tasks: dict) -> tuple[list[float], list[float]]:
    """(absolute targets, gap fractions): ``50%`` is half the gap from a run's start to the best run."""
    absolute, gaps = [], []
    for i, target in enumerate(document.get("targets", [])):
        if isinstance(target, str):
            try:
                fraction = float(target.removesuffix("%")) / 100 if target.endswith("%") else -1.0
            except ValueError:
                fraction = -1.0
            if not 0 < fraction <= 1:
                fail(f"{where}: targets[{i}]", f"a gap target is a percentage in (0%, 100%], got {target!r}")
            gaps.append(fraction)
        elif target < 0 or (tasks and target > 1):
            bounds = "task metrics (accuracy, F1, EM) lie in [0, 1]" if tasks else "a distance is >= 0"
            fail(f"{where}: targets[{i}]", f"{target} can never be reached: {bounds}")
        else:
            absolute.append(target)
    return absolute, gaps


def check_seeds(where: str, seeds: list[int]) -> None:
    for i, seed in enumerate(seeds):
        if seed in seeds[:i]:
            fail(f"{where}: seeds[{i}]", f"seed {seed} is listed twice: its runs would be identical")


def check_label(where: str, label: str | None, configurations: int) -> None:
    """An entry's own label: one line, and only for an entry that is one configuration."""
    if label is None:
        return
    if "\n" in label or not label.strip():
        fail(f"{where}.label", "a label is one non-empty line: it heads a table column")
    if configurations > 1:
        fail(f"{where}.label", f"one label for {configurations} configurations of a grid; drop it, and each is "
                               "labelled by its values")


def check_overrides(where: str, entry: dict, factory, problem_names: list[str]) -> dict[str, dict]:
    """``overrides``: per problem of the suite, one value per hyperparameter of the entry's optimizer."""
    checked = {}
    for problem, values in entry.get("overrides", {}).items():
        if problem not in problem_names:
            fail(f"{where}.overrides.{problem}", f"not a problem of this suite; problems: {', '.join(problem_names)}")
        [checked[problem]] = hyperparameter_grid(f"{where}.overrides.{problem}", {"name": entry["name"], **values},
                                                 factory, required=False)
    return checked


def check_suite_space(where: str, document: dict, optimizer_names: set[str]) -> None:
    """The suite-wide ``tune.space`` names hyperparameters some optimizer of the suite has."""
    accepted = {name for optimizer in optimizer_names for name in hyperparameter_names(REGISTRY.get(optimizer).factory)}
    for name in document.get("tune", {}).get("space", {}):
        if name not in accepted:
            fail(f"{where}: tune.space.{name}", "is a hyperparameter of none of the suite's optimizers; "
                                                f"theirs: {', '.join(sorted(accepted))}")


def check_cells(where: str, tables: tuple[TableLayout, ...], runs: list[RunSpec], studies: list[Study]) -> None:
    """The paper's rows and columns, and the columns improvements compare, are cells of their table."""
    for i, table in enumerate(tables):
        cells = [table.cell(run) for run in [*runs, *(study.final for study in studies)]]
        labels = {"rows": {row for row, _ in cells}, "columns": {column for _, column in cells}}
        columns = ", ".join(sorted(labels["columns"]))
        for key, column in table.improvement.items():
            if column not in labels["columns"]:
                fail(f"{where}: report.tables[{i}].improvement.{key}", f"{column!r} is not a column of the table; "
                                                                        f"columns: {columns}")
        for row, values in table.paper.items():
            if row not in labels["rows"]:
                fail(f"{where}: report.tables[{i}].paper.{row}", f"not a row of the table; rows: "
                                                                 f"{', '.join(sorted(labels['rows']))}")
            for column in values:
                if column not in labels["columns"]:
                    fail(f"{where}: report.tables[{i}].paper.{row}.{column}", f"not a column of the table; "
                                                                              f"columns: {columns}")

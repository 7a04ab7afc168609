"""Suite files: a declared experiment, validated whole before anything runs, expanded into runs.

A suite (``suites/*.yaml``) names its problems, its optimizers with hyperparameters (a list means a
grid), seeds, a step budget and convergence targets. Every mistake is reported as one line that names
the YAML path, e.g. ``figure2.yaml: optimizers[2].lr: expected a number, got 'fast'``.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import yaml

from . import __version__
from .optimizers import REGISTRY, UnknownOptimizerError
from .problems.test_functions import TEST_FUNCTIONS


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
    targets: tuple[float, ...]
    record_every: int = 1
    key: str = field(default="", compare=False)

    def __post_init__(self):
        if not self.key:
            identity = {k: v for k, v in asdict(self).items() if k not in ("key", "label")}
            identity["zobench"] = __version__
            digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
            object.__setattr__(self, "key", digest[:16])


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    runs: tuple[RunSpec, ...]
    source: Path


TOP_LEVEL = {"name": str, "description": str, "problems": list, "optimizers": list, "seeds": list,
             "budget": dict, "targets": list}
REQUIRED = ("name", "problems", "optimizers", "budget")
BUDGET = {"steps": int, "record_every": int}


def _fail(where: str, message: str):
    raise SuiteError(f"{where}: {message}")


def _type_name(kind) -> str:
    return {str: "a string", list: "a list", dict: "a mapping", int: "an integer",
            float: "a number"}[kind]


def _check_type(where, value, kind):
    if isinstance(value, bool):
        ok = False
    elif kind is float:
        ok = isinstance(value, (int, float))
    else:
        ok = isinstance(value, kind)
    if not ok:
        _fail(where, f"expected {_type_name(kind)}, got {value!r}")


def _hyperparameter_grid(where: str, entry: dict, factory, required: bool = True) -> list[dict]:
    """Expands list-valued hyperparameters into a grid, after checking names against the factory."""
    signature = inspect.signature(factory).parameters
    allowed = [name for name in signature if name not in ("params", "total_steps", "seed")]
    axes = {}
    for key, value in entry.items():
        if key in ("name", "label", "overrides"):
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
        axes[key] = [tuple(v) if isinstance(v, list) else v for v in values]
    missing = [name for name, p in signature.items()
               if p.default is inspect.Parameter.empty and p.kind is p.KEYWORD_ONLY and name not in axes]
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


def load_suite(path: str | Path) -> Suite:
    """Reads, validates and expands a suite file; raises :class:`SuiteError` on the first mistake."""
    path = Path(path)
    where = path.name
    if not path.is_file():
        raise SuiteError(f"{path}: no such suite file (the suites shipped with zobench are in suites/)")
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise SuiteError(f"{where}:{line} is not valid YAML ({getattr(error, 'problem', error)})") from None
    if not isinstance(document, dict):
        _fail(where, "a suite is a mapping of name, problems, optimizers, seeds, budget, targets")
    for key, value in document.items():
        if key not in TOP_LEVEL:
            _fail(f"{where}: {key}", f"unknown key; allowed: {', '.join(TOP_LEVEL)}")
        _check_type(f"{where}: {key}", value, TOP_LEVEL[key])
    for key in REQUIRED:
        if key not in document:
            _fail(where, f"missing required key {key!r}")

    problems = document["problems"]
    for i, problem in enumerate(problems):
        if problem not in TEST_FUNCTIONS:
            _fail(f"{where}: problems[{i}]", f"unknown problem {problem!r}; known: {', '.join(TEST_FUNCTIONS)}")

    budget = document["budget"]
    for key, value in budget.items():
        if key not in BUDGET:
            _fail(f"{where}: budget.{key}", f"unknown key; allowed: {', '.join(BUDGET)}")
        _check_type(f"{where}: budget.{key}", value, BUDGET[key])
        if value < 1:
            _fail(f"{where}: budget.{key}", f"must be >= 1, got {value}")
    if "steps" not in budget:
        _fail(f"{where}: budget", "missing required key 'steps'")

    seeds = document.get("seeds", [0])
    for i, seed in enumerate(seeds):
        _check_type(f"{where}: seeds[{i}]", seed, int)
    targets = document.get("targets", [])
    for i, target in enumerate(targets):
        _check_type(f"{where}: targets[{i}]", target, float)

    configurations = []  # (name, label, hyperparameters, {problem: overriding hyperparameters})
    for i, entry in enumerate(document["optimizers"]):
        at = f"{where}: optimizers[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            _fail(at, "each optimizer is a mapping with a 'name' and its hyperparameters")
        try:
            info = REGISTRY.get(entry["name"])
        except UnknownOptimizerError as error:
            _fail(f"{at}.name", str(error))
        grid = _hyperparameter_grid(at, entry, info.factory)
        overrides = entry.get("overrides", {})
        if not isinstance(overrides, dict):
            _fail(f"{at}.overrides", "expected a mapping of problem -> hyperparameters")
        for problem, values in overrides.items():
            if problem not in problems:
                _fail(f"{at}.overrides.{problem}", f"not a problem of this suite; problems: {', '.join(problems)}")
            if not isinstance(values, dict):
                _fail(f"{at}.overrides.{problem}", "expected a mapping of hyperparameters")
            [checked] = _hyperparameter_grid(f"{at}.overrides.{problem}", {"name": entry["name"], **values},
                                             info.factory, required=False)
            overrides[problem] = checked
        varying = {key for key in grid[0] if len({repr(h[key]) for h in grid}) > 1}
        for hyperparameters in grid:
            for problem in problems:
                _check_builds(at, info, {**hyperparameters, **overrides.get(problem, {})}, budget["steps"])
            label = entry.get("label") or _label(entry["name"], hyperparameters, varying)
            configurations.append((entry["name"], label, hyperparameters, overrides))

    runs = tuple(
        RunSpec(suite=document["name"], problem=problem, optimizer=name, label=label,
                hyperparameters={**hyperparameters, **overrides.get(problem, {})}, seed=seed,
                steps=budget["steps"], targets=tuple(float(t) for t in targets),
                record_every=budget.get("record_every", 1))
        for problem in problems for name, label, hyperparameters, overrides in configurations
        for seed in seeds)
    return Suite(document["name"], document.get("description", ""), runs, path)

"""A checked suite expanded: each optimizer entry into its configurations (a grid's points), and
configurations × (problem, model) pairs × seeds into runs, or into tuning studies for tuned entries."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

from .optimizers import REGISTRY, UnknownOptimizerError
from .optimizers.contract import violations
from .problems import revisions
from .spec import RunSettings, RunSpec, Study
from .suite_references import (check_builds, check_label, check_overrides, fail, hyperparameter_grid, run_settings,
                               tune_block)
from .tracks import space_for
from .yaml_files import MAX_NODES

MAX_RUNS = MAX_NODES  # a suite expanding beyond this is a mistake (a runaway grid), not an experiment


@dataclass(frozen=True)
class Configuration:
    """One point of an optimizer entry's grid, with everything its runs share."""

    entry: int  # the entry's index in the file
    optimizer: str
    label: str
    hyperparameters: dict
    overrides: dict  # problem -> hyperparameters
    settings: RunSettings
    tune: dict | None  # the entry's tuning, or None when its values are fixed

    def hyperparameters_on(self, problem: str) -> dict:
        return {**self.hyperparameters, **self.overrides.get(problem, {})}


def _label(name: str, hyperparameters: dict, varying: set[str]) -> str:
    shown = ", ".join(f"{k}={hyperparameters[k]}" for k in sorted(varying))
    return f"{name} ({shown})" if shown else name


def configurations(where: str, document: dict, problems: list[str], suite_settings: RunSettings, tasks: dict,
                   runs_per_configuration: int) -> list[Configuration]:
    """Every entry's configurations, each built once per problem (so a bad value fails now, not mid-suite)."""
    found: list[Configuration] = []
    test_functions = bool(document.get("problems"))
    for i, entry in enumerate(document["optimizers"]):
        at = f"{where}: optimizers[{i}]"
        try:
            info = REGISTRY.get(entry["name"])
        except UnknownOptimizerError as error:
            fail(f"{at}.name", str(error))
        if ":" in entry["name"]:  # a method by reference: it keeps the contract before anything runs
            broken = violations(info)
            if broken:
                fail(f"{at}.name", f"{entry['name']} breaks the optimizer contract: {'; '.join(broken)}")
        settings = run_settings(at, entry, suite_settings, test_functions, tasks)
        if settings.objective != "loss" and info.family != "zo":
            fail(f"{at}.name", f"objective {settings.objective} has no gradient; {info.name} needs one "
                               "(use a zo- optimizer)")
        tune = tune_block(at, space_for(document.get("tune", {}), info), entry, info.factory)
        searched = tune["space"] if tune else {}
        grid = hyperparameter_grid(at, entry, info.factory, searched=searched)
        if tune and len(grid) > 1:
            fail(at, "a tuned entry searches its tune.space; give its other hyperparameters one value each")
        sample = {name: values[0] if isinstance(values, list) else values[1] for name, values in searched.items()}
        samples = [sample] + [{**sample, name: value} for name, values in searched.items()  # each listed value builds
                              if isinstance(values, list) for value in values[1:]]
        overrides = check_overrides(at, entry, info.factory, problems)
        check_label(at, entry.get("label"), len(grid))
        varying = {key for key in grid[0] if len({repr(h[key]) for h in grid}) > 1}
        for hyperparameters in grid:
            configuration = Configuration(i, entry["name"], entry.get("label") or _label(entry["name"], hyperparameters,
                                                                                          varying),
                                          hyperparameters, overrides, settings, tune)
            for problem, searched_values in itertools.product(problems, samples):
                check_builds(at, info, {**configuration.hyperparameters_on(problem), **searched_values}, settings.steps)
            earlier = next((c.entry for c in found if c.label == configuration.label), None)
            if earlier is not None:
                fail(f"{at}.label", f"{configuration.label!r} also labels optimizers[{earlier}]; labels name table "
                                    "columns, so give each configuration its own")
            found.append(configuration)
        if len(found) * runs_per_configuration > MAX_RUNS:
            fail(at, f"the suite expands to more than {MAX_RUNS:,} runs; narrow its grids")
    return found


@dataclass(frozen=True)
class Common:
    """What every run of the suite shares."""

    suite: str
    device: str
    seeds: tuple[int, ...]
    targets: tuple[float, ...]
    data_dir: str | None
    task_identities: dict  # task -> {task_file, task_hash}
    baseline: dict = dataclasses.field(default_factory=dict)  # (problem, model, peft) -> a baseline's target

    def targets_of(self, problem: str, model: str, peft: str) -> tuple[float, ...]:
        """The suite's absolute targets and, with a baseline, the baseline's target for this problem (checked
        present by :func:`zobench.tracks.check_baseline`)."""
        return (*self.targets, self.baseline[problem, model, peft]) if self.baseline else self.targets


def _spec(common: Common, problem: str, model: str, configuration: Configuration, settings: RunSettings,
          seed: int, label: str | None = None, targets=None) -> RunSpec:
    peft = settings.peft if model else "none"
    return RunSpec(suite=common.suite, problem=problem, optimizer=configuration.optimizer,
                   label=label or configuration.label, hyperparameters=configuration.hyperparameters_on(problem),
                   seed=seed, steps=settings.steps, eval_every=settings.eval_every,
                   targets=tuple(float(t) for t in (common.targets_of(problem, model, peft) if targets is None
                                                    else targets)),
                   forward_pass_budget=settings.forward_passes,
                   seconds_budget=settings.seconds and float(settings.seconds), dtype=settings.dtype,
                   device=common.device, peft=peft, model=model,
                   data=settings.data if model else {}, data_dir=common.data_dir if model else None,
                   objective=settings.objective,
                   revisions=revisions(problem, model, REGISTRY.get(configuration.optimizer).revision),
                   **common.task_identities.get(problem, {}))


def expand(where: str, common: Common, pairs: list[tuple[str, str]], found: list[Configuration],
           tasks: dict, test_functions: bool) -> tuple[list[RunSpec], list[Study]]:
    """The runs of fixed configurations and the studies of tuned ones, problem by problem."""
    runs, studies, first_entry = [], [], {}
    for problem, model in pairs:
        for configuration in found:
            if configuration.tune is None:
                for seed in common.seeds:
                    run = _spec(common, problem, model, configuration, configuration.settings, seed)
                    if run.key in first_entry:
                        fail(f"{where}: optimizers[{configuration.entry}]",
                             f"gives the same runs as optimizers[{first_entry[run.key]}] (same optimizer, "
                             "hyperparameters and settings); remove one")
                    first_entry[run.key] = configuration.entry
                    runs.append(run)
                continue
            tune, settings = configuration.tune, configuration.settings
            at = f"{where}: optimizers[{configuration.entry}].tune"
            base = dataclasses.replace(settings, eval_every=0) if "steps" in tune["budget"] else settings
            trial_settings = run_settings(at, {"budget": tune["budget"]}, base, test_functions, tasks)
            if trial_settings.steps < 1:
                fail(f"{at}.budget.steps", "a trial trains: give it >= 1 step")
            studies.append(Study(configuration.label, tune["space"], tune["trials"], tune["sampler"],
                                 _spec(common, problem, model, configuration, trial_settings, tune["seed"],
                                       f"{configuration.label} (tuning)", ()),
                                 _spec(common, problem, model, configuration, settings, common.seeds[0]),
                                 common.seeds, higher_is_better=bool(model), storage=tune.get("storage")))
    return runs, studies

"""Tuning as part of a suite: every optimizer gets the same number of trials on every problem, chosen
on dev only, then its best configuration runs over the suite's seeds and is reported on test.

A ``tune:`` block (suite-wide, and per optimizer entry over it) declares the search ``space`` (a list
of values, pairs such as ``betas`` included, or ``{log: [low, high]}`` / ``{uniform: [low, high]}``), the ``trials`` each optimizer gets
on each problem (the same for all unless an entry says otherwise), the ``budget`` of one trial (steps,
forward passes or seconds; the suite's budget by default), the ``sampler`` (grid, random or tpe) and
the ``seed`` of the trials' runs and of the sampler. A hyperparameter an entry fixes is not searched.

Each (optimizer entry, problem) is one Optuna study in its own SQLite file under
``<results>/tuning/``. A trial is an ordinary run of the suite (its key follows its hyperparameters),
so it is stored, logged and resumed like any other; its value is its best dev metric (the checkpoint
a user would select), and a diverged trial is failed, never selected. A study that was killed holds
the trial it was running as ``RUNNING``: the next invocation finishes that trial (its run resumes from
its log) before asking for another, so a killed study ends with the trials and the choice of an
uninterrupted one. One invocation drives a study at a time; trials of different studies run in
parallel on the executor.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

from .suite import Study, Suite


def _indexed(values) -> bool:
    """Whether Optuna searches ``values`` by index: its categorical choices are scalars, so a list
    holding pairs (``betas``) is offered as 0, 1, … and decoded."""
    return isinstance(values, list) and any(isinstance(v, tuple) for v in values)


def _optuna_space(study: Study) -> dict:
    return {name: list(range(len(values))) if _indexed(values) else values for name, values in study.space.items()}


def _decoded(study: Study, params: dict) -> dict:
    """A trial's hyperparameters from Optuna's params: indices back to the pairs they stand for."""
    return {name: study.space[name][value] if _indexed(study.space[name]) else value for name, value in params.items()}


def _distribution(values):
    import optuna

    if isinstance(values, list):
        return optuna.distributions.CategoricalDistribution(values)
    kind, low, high = values
    return optuna.distributions.FloatDistribution(low, high, log=kind == "log")


def _sampler(study: Study, number: int):
    """The sampler that proposes trial ``number``, seeded by the study's seed and that number (the grid
    by the study's seed alone): a proposal depends on the finished trials only, so a resumed study asks
    what an uninterrupted one would have asked."""
    import optuna

    if study.sampler == "grid":  # its seed shuffles the grid: one seed, or grid ids name other points
        return optuna.samplers.GridSampler(_optuna_space(study), seed=study.trial.seed)
    seed = study.trial.seed * 100_003 + number
    if study.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(1, study.trials // 3)))


def storage(root: Path, study: Study) -> str:
    folder = root / "tuning"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / study.name}.db"


def _open(root: Path, study: Study):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(storage=storage(root, study), study_name=study.name, load_if_exists=True,
                               direction="maximize" if study.higher_is_better else "minimize",
                               sampler=_sampler(study, 0))


def _finished(optuna_study) -> int:
    import optuna

    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
    return sum(t.state in done for t in optuna_study.get_trials(deepcopy=False))


def progress(root: Path, study: Study) -> tuple[int, dict | None, float | None]:
    """(finished trials, the best trial's searched values, its dev value), reading the study's file
    without creating it; ``(0, None, None)`` before the study starts."""
    if not (root / "tuning" / f"{study.name}.db").is_file():
        return 0, None, None
    optuna_study = _open(root, study)
    complete = [t for t in optuna_study.get_trials(deepcopy=False) if t.value is not None]
    if not complete:
        return _finished(optuna_study), None, None
    best = (max if study.higher_is_better else min)(complete, key=lambda t: (t.value, -t.number))
    return _finished(optuna_study), _decoded(study, best.params), best.value


def _next_trial(optuna_study, study: Study):
    """A trial to run: one left running by a killed invocation, else a new one from the sampler."""
    import optuna

    stale = [t for t in optuna_study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.RUNNING]
    if stale:
        return stale[0].number, _decoded(study, stale[0].params)
    optuna_study.sampler = _sampler(study, len(optuna_study.get_trials(deepcopy=False)))
    trial = optuna_study.ask({name: _distribution(values) for name, values in _optuna_space(study).items()})
    return trial.number, _decoded(study, trial.params)


def _tell(optuna_study, number: int, record: dict | None) -> None:
    import optuna

    # Optuna's grid sampler ends an exhausted study with study.stop(), which ask-and-tell refuses; a
    # neutral sampler takes the report (each proposal sets its own sampler: _next_trial).
    optuna_study.sampler = optuna.samplers.RandomSampler()
    value = record["best_dev"]["value"] if record and record["status"] == "finished" else None
    if value is None or not math.isfinite(value):
        optuna_study.tell(number, state=optuna.trial.TrialState.FAIL)
    else:
        optuna_study.tell(number, value)


def tune(suite: Suite, store, run_one, quiet: bool = False) -> list[str]:
    """Runs every study of ``suite`` to its trial count; ``run_one(spec)`` returns a future of the
    trial's record. One trial per study is in flight at a time; studies run side by side."""
    studies = {study.name: (study, _open(store.root, study)) for study in suite.studies}
    in_flight: dict[str, tuple[int, object]] = {}
    free = set(studies)  # studies with no trial in flight: each is read once, not at every poll
    failures = []
    while True:
        for name in sorted(free, key=list(studies).index):
            study, optuna_study = studies[name]
            if _finished(optuna_study) < study.trials:
                number, params = _next_trial(optuna_study, study)
                in_flight[name] = (number, run_one(study.trial_spec(params)))
        free.clear()
        if not in_flight:
            return failures
        for name, (number, job) in list(in_flight.items()):
            if job.done():
                try:
                    record = job.result()
                except Exception as error:  # a trial that raises is a failed trial, and tuning goes on
                    record = None
                    failures.append(f"trial {number} of {name} failed: {str(error).splitlines()[0] if str(error) else error!r}")
                _tell(studies[name][1], number, record)
                del in_flight[name]
                free.add(name)
                if not quiet:
                    print(f"tuning {name}: trial {number} done")
        time.sleep(0.05)


def resolved(suite: Suite, root: Path) -> Suite:
    """``suite`` with the runs of every finished study added: its best values over the suite's seeds,
    in their entry's place (problem by problem, entries in the file's order), so tables and figures
    order tuned and fixed entries as the file does."""
    runs = list(suite.runs)
    for study in suite.studies:
        finished, best, _ = progress(root, study)
        if finished >= study.trials and best is not None:
            runs += study.final_specs(best)
    problems = {problem: i for i, problem in enumerate(dict.fromkeys(run.problem for run in runs))}
    labels = {label: i for i, label in enumerate(suite.labels)}
    runs.sort(key=lambda run: (problems[run.problem], labels[run.label]))
    return dataclasses.replace(suite, runs=tuple(runs))


def plan_lines(suite: Suite, root: Path) -> list[str]:
    """The tuning plan for ``--dry-run``: per study, its trials to go and their forward passes."""
    from . import optimizers

    lines, total = [], 0
    for study in suite.studies:
        finished, best, value = progress(root, study)
        trial = study.trial
        passes = trial.steps * optimizers.get(trial.optimizer).passes_range[1]
        if trial.forward_pass_budget:
            passes = min(passes, trial.forward_pass_budget)
        remaining = max(0, study.trials - finished)
        total += remaining * passes
        chosen = f"; best so far {best} (dev {value:.4g})" if best else ""
        lines.append(f"tune {study.label} on {trial.problem}: {finished}/{study.trials} trials ({study.sampler}), "
                     f"{remaining * passes:,} forward passes to go{chosen}")
    if lines:
        lines.append(f"tuning: {len(suite.studies)} studies, {total:,} training forward passes to go; then each "
                     f"best configuration runs over seeds {list(suite.studies[0].seeds)}")
    return lines

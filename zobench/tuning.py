"""Tuning as part of a suite: every optimizer gets the same number of trials on every problem, chosen
on dev only, then its best configuration runs over the suite's seeds and is reported on test.

A ``tune:`` block (suite-wide, and per optimizer entry over it) declares the search ``space`` (a list
of values, pairs such as ``betas`` included, or ``{log: [low, high]}`` / ``{uniform: [low, high]}``), the ``trials`` each optimizer gets
on each problem (the same for all unless an entry says otherwise), the ``budget`` of one trial (steps,
forward passes or seconds; the suite's budget by default), the ``sampler`` (grid, random or tpe) and
the ``seed`` of the trials' runs and of the sampler. A hyperparameter an entry fixes is not searched.

Each (optimizer entry, problem) is one Optuna study. A trial is an ordinary run of the suite (its key
follows its hyperparameters), so it is stored, logged, claimed and resumed like any other; its value
is its best dev metric (the checkpoint a user would select), and a diverged trial is failed, never
selected. The study itself is not stored: Optuna's sampler is seeded per trial number and proposes
from the finished trials alone, so the study is rebuilt in memory from the run records at every
invocation (:class:`Replay`). The records, written atomically, are then the one source of truth, and
tuning is exactly-once whatever happens: a kill -9 at any instant (the trial in flight resumes from
its log), two invocations at once (the second waits on the first's claim of the trial and reads its
record), a full disk (the trial fails in one line and the next invocation goes on from it), or a
results folder copied elsewhere. Optuna's SQLite storage, used before, could disagree with the
records (a trial created but not yet given its values, a deleted or damaged database re-tuning over
good records, two processes racing to create its tables); rebuilding costs one sampler call per
finished trial.

Parallel trials (``tune: {storage: journal}`` or an RDB URL): rebuilding proposes one trial at a time,
so several processes would all propose the same next trial. With a storage, each study lives in
Optuna's storage instead (:class:`Shared`): every ``zobench run`` process that shares it (Slurm jobs on
one results folder) asks it for a trial of its own, runs it as an ordinary run and tells its value.
``journal`` is Optuna's journal file beside the records (``tuning.journal``), safe on a shared file
system. The proposals then depend on which trials had finished when each was asked (TPE with the
constant liar, so running trials are not proposed again), so they are not replayable; the trials'
runs are, and the choice is the same: the best dev value over the finished trials' records.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import socket
from concurrent import futures
from pathlib import Path

from .suite import Study, Suite


def _indexed(values) -> bool:
    """Whether Optuna searches ``values`` by index: its categorical choices are scalars, so a list
    holding pairs (``betas``) or mappings (``lr_schedule``) is offered as 0, 1, … and decoded."""
    return isinstance(values, list) and any(isinstance(v, (tuple, dict)) for v in values)


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


def _sampler(study: Study, number: int, shared: bool = False):
    """The sampler that proposes trial ``number``, seeded by the study's seed and that number (the grid
    by the study's seed alone): a proposal depends on the finished trials only, so a resumed study asks
    what an uninterrupted one would have asked. A ``shared`` study's (:class:`Shared`) is unseeded, or
    every process would propose the same values, and its TPE treats running trials as failed at their
    worst (the constant liar), so they are not proposed again."""
    import optuna

    if study.sampler == "grid":  # its seed shuffles the grid: one seed, or grid ids name other points
        return optuna.samplers.GridSampler(_optuna_space(study), seed=None if shared else study.trial.seed)
    seed = None if shared else (study.trial.seed * 100_003 + number) % 2 ** 32  # numpy's seeds are 32-bit
    if study.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(1, study.trials // 3)),
                                      constant_liar=shared)


class Replay:
    """A study rebuilt from the run records, trial by trial: trial n's values are what the sampler
    proposes given trials 0..n-1 and their recorded values, so they are found again, never stored.
    ``advance`` goes as far as the records go and returns the next trial's values (``None``: done)."""

    def __init__(self, study: Study):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = study
        self.optuna_study = optuna.create_study(direction="maximize" if study.higher_is_better else "minimize")
        self.distributions = {name: _distribution(values) for name, values in _optuna_space(study).items()}
        self.finished: list[tuple[dict, dict]] = []  # (searched values, the trial's record), in order
        self.proposal: tuple[object, dict] | None = None  # (Optuna's trial, its values) awaiting a record

    @property
    def number(self) -> int:
        return len(self.finished)

    def advance(self, store) -> dict | None:
        while self.number < self.study.trials:
            if self.proposal is None:
                self.optuna_study.sampler = _sampler(self.study, self.number)
                trial = self.optuna_study.ask(self.distributions)
                self.proposal = trial, _decoded(self.study, trial.params)
            trial, params = self.proposal
            record = store.record(self.study.trial_spec(params).key)
            if record is None:
                return params
            _tell(self.optuna_study, trial, record)
            self.finished.append((params, record))
            self.proposal = None
        return None

    def best(self) -> tuple[dict | None, float | None]:
        """The best finished trial's searched values and dev value (ties: the earlier trial when
        maximising, the later when minimising, as the first releases chose)."""
        scored = [(_value(record), -number, params) for number, (params, record) in enumerate(self.finished)
                  if _value(record) is not None]
        if not scored:
            return None, None
        value, _, params = (max if self.study.higher_is_better else min)(scored, key=lambda row: row[:2])
        return params, value


class Shared:
    """A study in a shared Optuna storage: the same ``advance``/``number``/``best`` as :class:`Replay`, but
    the trials are asked of the storage, so processes sharing it run different trials at once. Each
    process tells the storage only the trials it asked (two processes telling one trial would break
    the journal); whether a trial has finished is read from its run's record, the source of truth. A
    trial left running by a process that died is run again, once no new trial is left to ask: its
    run resumes from its log, or waits on the claim of a process still running it."""

    def __init__(self, study: Study, root: Path):
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study, self.root, self.mine = study, root, set()
        if study.storage == "journal":
            root.mkdir(parents=True, exist_ok=True)
            storage = JournalStorage(JournalFileBackend(str(root / "tuning.journal")))
        else:
            storage = study.storage
        self.optuna_study = optuna.create_study(study_name=study.name, storage=storage, load_if_exists=True,
                                                direction="maximize" if study.higher_is_better else "minimize")
        self.distributions = {name: _distribution(values) for name, values in _optuna_space(study).items()}

    def _recorded(self) -> list[tuple[object, dict, dict | None]]:
        """(Optuna's trial, its searched values, its run's record or None), for every trial asked so far."""
        store = _store(self.root)
        rows = []
        for trial in self.optuna_study.get_trials(deepcopy=False):
            params = _decoded(self.study, trial.params)
            rows.append((trial, params, store.record(self.study.trial_spec(params).key)))
        return rows

    @property
    def number(self) -> int:
        return sum(record is not None for _, _, record in self._recorded())

    def advance(self, store) -> dict | None:
        import optuna

        rows = self._recorded()
        for trial, _, record in rows:
            if record is not None and trial.number in self.mine and trial.state == optuna.trial.TrialState.RUNNING:
                _tell(self.optuna_study, trial.number, record)
        if len(rows) < self.study.trials:
            self.optuna_study.sampler = _sampler(self.study, len(rows), shared=True)
            trial = self.optuna_study.ask(self.distributions)
            trial.set_user_attr("process", f"{socket.gethostname()}:{os.getpid()}")  # who ran it, for the curious
            self.mine.add(trial.number)
            return _decoded(self.study, trial.params)
        unfinished = [params for _, params, record in rows if record is None]
        return unfinished[0] if unfinished else None

    def best(self) -> tuple[dict | None, float | None]:
        """The best finished trial's searched values and dev value, by :class:`Replay`'s rule."""
        scored = [(value, -trial.number, params) for trial, params, record in self._recorded()
                  if record is not None and (value := _value(record)) is not None]
        if not scored:
            return None, None
        value, _, params = (max if self.study.higher_is_better else min)(scored, key=lambda row: row[:2])
        return params, value


def _study(study: Study, root: Path):
    """The study as the records rebuild it, or as its shared storage holds it."""
    return Shared(study, Path(root)) if study.storage else Replay(study)


def _value(record: dict) -> float | None:
    """A trial's value: its best dev metric; ``None`` (a failed trial) if it diverged."""
    value = record["best_dev"]["value"] if record["status"] == "finished" else None
    return value if value is not None and math.isfinite(value) else None


def _tell(optuna_study, trial, record: dict) -> None:
    import optuna

    # Optuna's grid sampler ends an exhausted study with study.stop(), which ask-and-tell refuses; a
    # neutral sampler takes the report (each proposal sets its own sampler: Replay.advance).
    optuna_study.sampler = optuna.samplers.RandomSampler()
    value = _value(record)
    if value is None:
        optuna_study.tell(trial, state=optuna.trial.TrialState.FAIL)
    else:
        optuna_study.tell(trial, value)


@functools.cache
def _store(root: Path):
    """One store per results folder: it checks each trial's record and log once per process (and
    again only if they change), however often the report, plan and resolution ask."""
    from .store import ResultStore

    return ResultStore(root)


def progress(root: Path, study: Study) -> tuple[int, dict | None, float | None]:
    """(finished trials, the best trial's searched values, its dev value), from the run records."""
    replay = _study(study, root)
    if isinstance(replay, Replay):  # rebuilt as far as the records go; a shared study is read as it stands
        replay.advance(_store(Path(root)))
    return (replay.number, *replay.best())


def tune(suite: Suite, store, run_one, quiet: bool = False) -> list[str]:
    """Runs every study of ``suite`` to its trial count; ``run_one(spec)`` returns a future of the
    trial's record. One trial per study is in flight at a time; studies run side by side. A trial
    whose run fails (an error, not a divergence) stops its study there, since every later trial
    depends on its value: the line says so, and a rerun goes on from it."""
    replays = {study.name: _study(study, store.root) for study in suite.studies}
    in_flight: dict[str, tuple[int, object]] = {}
    failures = []

    def launch(name: str) -> None:
        replay = replays[name]
        params = replay.advance(store)
        if params is not None:
            in_flight[name] = (replay.number, run_one(replay.study.trial_spec(params)))

    for name in replays:
        launch(name)
    while in_flight:
        futures.wait([job for _, job in in_flight.values()], return_when=futures.FIRST_COMPLETED)
        for name, (number, job) in list(in_flight.items()):
            if not job.done():
                continue
            del in_flight[name]
            try:
                job.result()
            except Exception as error:
                message = str(error).splitlines()[0] if str(error) else repr(error)
                failures.append(f"trial {number} of {name} failed: {message}; the study stops there (its later "
                                "trials depend on this one); rerun to go on from it")
                continue
            if not quiet:
                print(f"tuning {name}: trial {number} done")
            launch(name)
            if name in in_flight and in_flight[name][0] == number:  # recorded, yet not found: never loop
                del in_flight[name]
                failures.append(f"trial {number} of {name} left no sound record; the study stops there")
    return failures


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
        passes = trial.steps * optimizers.get(trial.optimizer).describe(trial.steps, **trial.hyperparameters)["forward_passes"]
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

"""A suite's runs: choosing them (``--only``), planning them (``--dry-run``) and executing them."""

from __future__ import annotations

import dataclasses
import sys
from concurrent import futures
from contextlib import nullcontext

from tqdm import tqdm

from . import optimizers, tuning
from .distributed import SINGLE, World, shared
from .executors import InlineExecutor
from .measure import host_memory_bytes
from .runner import run
from .store import ResultStore
from .suite import RunSpec, Suite

FILTER_FIELDS = ("key", "problem", "model", "peft", "optimizer", "label", "seed", "schedule", "placement")


class DistributedRunError(RuntimeError):
    """A run that failed on one rank of a distributed run: the rank stops, so the others stop too."""


class FilterError(ValueError):
    """An ``--only`` filter that names no field of a run."""


def select(runs, only: str | None) -> list[RunSpec]:
    """Runs matching ``only``: a key prefix, a problem, optimizer or label, or ``field=value,...``.

    A filter that matches no run is an error (a typo would otherwise run nothing and succeed)."""
    runs = list(runs)
    if only is None:
        return runs
    if "=" in only:
        conditions = []
        for part in only.split(","):
            name, equals, value = part.partition("=")
            if not equals or not name or not value:
                raise FilterError(f"--only: {part!r} is not field=value; fields: {', '.join(FILTER_FIELDS)}")
            if name not in FILTER_FIELDS:
                raise FilterError(f"--only: unknown field {name!r}; fields: {', '.join(FILTER_FIELDS)}")
            conditions.append((name, value))
        chosen = [r for r in runs if all(str(getattr(r, name)) == value for name, value in conditions)]
    elif not only:
        raise FilterError("--only: empty filter; give a key prefix, a problem, optimizer or label, or field=value")
    else:
        chosen = [r for r in runs if r.key.startswith(only) or only in (r.problem, r.optimizer, r.label)]
    if not chosen:
        examples = ", ".join(sorted({r.label for r in runs})[:5])
        raise FilterError(f"--only {only!r} matches none of the suite's {len(runs)} runs (labels: {examples}); "
                          "see them with --dry-run")
    return chosen


def plan(runs: list[RunSpec], store: ResultStore) -> list[dict]:
    """What would run: each run's state and its forward-pass estimate (training plus evaluation)."""
    rows = []
    for spec in runs:
        info = optimizers.get(spec.optimizer)
        steps = spec.steps
        training = steps * info.describe(steps, **spec.hyperparameters)["forward_passes"]
        if spec.forward_pass_budget:
            training = min(training, spec.forward_pass_budget)
        if store.has(spec.key):
            state = "done"
        else:
            log = store.read_log(spec.key)
            state = f"resumes at step {log[-1]['step']}" if info.replayable and len(log) > 1 else "pending"
        rows.append({"key": spec.key, "state": state, "problem": spec.problem, "label": spec.label,
                     "seed": spec.seed, "steps": steps, "forward_passes": training,
                     "evaluations": steps // spec.eval_every + 1})
    return rows


def unreachable_models(runs: list[RunSpec]) -> dict[str, str]:
    """The runs' models that cannot load on this machine, each with why (checked once per model)."""
    from .models import unreachable

    reasons = {model: unreachable(model) for model in dict.fromkeys(spec.model for spec in runs if spec.model)}
    return {model: reason for model, reason in reasons.items() if reason}


def environment_notes(runs: list[RunSpec]) -> list[str]:
    """What a run cannot know until it starts, said before it starts: unreachable models and the
    device each run will really use."""
    import torch

    notes = [f"model {model} cannot load here, so its {sum(spec.model == model for spec in runs)} run(s) will "
             f"fail: {reason}" for model, reason in unreachable_models(runs).items()]
    gpus = torch.cuda.device_count()
    notes += _memory_notes(runs, gpus)
    for device in dict.fromkeys(spec.device for spec in runs):
        if device in ("auto", "sharded"):
            notes.append(f"device {device}: " + (f"{gpus} GPU(s) visible" if gpus else
                                                "no GPU is visible, so these runs use the CPU"))
        elif device == "cuda" and not gpus:
            notes.append("device cuda: no GPU is visible, so these runs will fail; on a CPU use the CPU-scale "
                         "suites (suites/quickstart.yaml, suites/table3-cpu.yaml, suites/figure2.yaml, suites/ci.yaml)")
    return notes


def _opt_size(model: str) -> str | None:
    """The OPT size a model name names (``facebook/opt-13b``, ``random:opt-1.3b``), if any."""
    from .models import OPT_SHAPES

    name = model.rsplit("/", 1)[-1].removeprefix("random:").lower()
    return name if name in OPT_SHAPES else None


def _memory_notes(runs: list[RunSpec], gpus: int) -> list[str]:
    """A lower bound of each full-parameter run's memory against what the device has: the weights, a
    gradient for first-order optimizers and the optimizer's declared parameter-sized buffers, in the
    run's dtype (activations come on top; ``zobench memory`` fits them)."""
    import torch

    from .memory.fit import BYTES
    from .memory.study import opt_shape

    if gpus:
        capacity = sum(torch.cuda.get_device_properties(i).total_memory for i in range(gpus))
        where = f"{gpus} GPU(s)"
    else:
        capacity, where = host_memory_bytes(), "this machine's memory (no GPU)"
    notes = []
    for model, optimizer, dtype in dict.fromkeys((s.model, s.optimizer, s.dtype) for s in runs
                                                  if s.peft == "none" and s.model and _opt_size(s.model)):
        info = optimizers.get(optimizer)
        parameters = opt_shape(_opt_size(model)).parameters()
        copies = 1 + info.buffers_per_parameter
        need = parameters * copies * BYTES[dtype]
        verdict = "does not fit" if need > capacity else "fits"
        notes.append(f"memory: {optimizer} on {model} ({parameters / 1e9:.1f}B parameters, {dtype}) needs at least "
                     f"{need / 2 ** 30:.0f} GiB ({copies} parameter copies, activations apart); {where} "
                     f"has {capacity / 2 ** 30:.0f} GiB: {verdict}")
    return notes


def select_studies(suite: Suite, only: str | None) -> Suite:
    """``suite`` with the studies whose reported runs ``only`` selects (any seed of theirs): ``--only``
    narrows the tuning as it narrows the runs. A filter matching neither is refused, as by :func:`select`."""
    if only is None or not suite.studies:
        return suite
    reported = {study.name: study.final_specs({}) for study in suite.studies}
    chosen = select([spec for specs in reported.values() for spec in specs] + list(suite.runs), only)
    kept = tuple(study for study in suite.studies if any(spec in chosen for spec in reported[study.name]))
    return dataclasses.replace(suite, studies=kept)


def print_plan(rows: list[dict]) -> None:
    print(f"{'key':16}  {'state':18} {'problem':12} {'optimizer':28} {'seed':>4} {'steps':>7} {'fwd passes':>10}")
    for row in rows:
        print(f"{row['key']:16}  {row['state']:18} {row['problem']:12} {row['label'][:28]:28} {row['seed']:>4} "
              f"{row['steps']:>7} {row['forward_passes']:>10}")
    pending = [r for r in rows if r["state"] != "done"]
    print(f"{len(rows)} runs, {len(pending)} to run, {sum(r['forward_passes'] for r in pending):,} training "
          f"forward passes to go (plus {sum(r['evaluations'] for r in pending):,} evaluations)")


def run_in_worker(spec: RunSpec, root: str) -> dict:
    """The unit of work an executor receives: one run, recorded in the store at ``root``."""
    return run(spec, ResultStore(root))


def execute(suite: Suite, store: ResultStore, *, executor=None, only: str | None = None,
            quiet: bool = False, world: World = SINGLE) -> list[str]:
    """Tunes the suite's tuned entries, then runs every selected run that has no record (the tuned
    entries' included); returns one line per failed run or trial (none: success). ``world``: the ranks
    of a distributed run, which run every run together, inline (rank 0 decides which are pending)."""
    executor = executor or InlineExecutor()
    failures = []
    suite = select_studies(suite, only)
    if suite.studies:
        failures += tuning.tune(suite, store, lambda spec: executor.submit(run_in_worker, spec, str(store.root)),
                                quiet=quiet)
        suite = tuning.resolved(suite, store.root)
    runs = select(suite.runs, only)
    pending = shared(world, [spec for spec in runs if not store.has(spec.key)] if world.leader else None)
    recorded = len(runs) - len(pending)
    for model, reason in unreachable_models(pending).items():  # said once for all its runs, not once per run
        skipped = [spec for spec in pending if spec.model == model]
        pending = [spec for spec in pending if spec.model != model]
        failures.append(f"model {model} cannot load here, {len(skipped)} run(s) skipped: {reason}")
    if not quiet:
        skipped = len(runs) - recorded - len(pending)
        print(f"{suite.name}: {len(runs)} runs, {recorded} recorded before, "
              + (f"{skipped} skipped, " if skipped else "") + f"{len(pending)} to run")
    with tqdm(total=len(runs), initial=len(runs) - len(pending), unit="run", desc=suite.name,
              disable=quiet, file=sys.stderr) as bar:
        if isinstance(executor, InlineExecutor):
            def run_inline(specs, wait: bool) -> list[RunSpec]:
                """Runs ``specs``; returns those another process holds (not waited for unless ``wait``)."""
                held = []
                for spec in specs:
                    with tqdm(total=spec.steps, unit="step", desc=f"{spec.label} on {spec.problem}, seed {spec.seed}",
                              leave=False, disable=quiet, file=sys.stderr) as steps:
                        outcome = []
                        failure = _attempt(spec, lambda: outcome.append(
                            run(spec, store, progress=_step_progress(steps), wait=wait, world=world)))
                    if failure and world.size > 1:  # the other ranks must not wait for this one
                        raise DistributedRunError(failure)
                    if failure:
                        failures.append(failure)
                    elif outcome[0] is None:
                        held.append(spec)
                        continue
                    bar.update(1)
                return held

            # runs another `zobench run` holds are left to it, then waited for (and run, if it died)
            run_inline(run_inline(pending, wait=False), wait=True)
        else:
            with getattr(executor, "batch", nullcontext)():  # Slurm: one job array for the suite
                jobs = {executor.submit(run_in_worker, spec, str(store.root)): spec for spec in pending}
            while jobs:
                finished, _ = futures.wait(jobs, return_when=futures.FIRST_COMPLETED)
                for job in finished:
                    failure = _attempt(jobs.pop(job), job.result)
                    if failure:
                        failures.append(failure)
                    bar.update(1)
    return failures


def _step_progress(bar):
    """A run's ``progress`` callback: the bar restarts its clock when training starts, so loading and
    feature caching do not enter the rate and the ETA of the first steps."""
    started = False

    def advance(step: int) -> None:
        nonlocal started
        if not started:
            started = True
            bar.reset(total=bar.total)
            bar.update(step)
        else:
            bar.update(step - bar.n)
    return advance


def _attempt(spec: RunSpec, call) -> str | None:
    """Calls ``call``; a run that raises is reported in one line and the suite goes on."""
    try:
        call()
    except Exception as error:  # one broken run must not lose the others
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        return f"run {spec.key} ({spec.label} on {spec.problem}, seed {spec.seed}) failed: {message}"
    return None

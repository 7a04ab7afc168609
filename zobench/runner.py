"""One run: an optimizer on a problem for a budget, measured, logged step by step, and recorded.

The step log (one JSON line per step, flushed as written) is the run's history and its checkpoint:
it holds the training loss, forward passes (a backward counted as two), step time and, for replayable
optimizers, the step's record (its seed and the values its closure gave); evaluation steps add the dev
and test metrics. The record is a summary of that
log plus the run's measurements, so a resumed run is summarised exactly as an uninterrupted one.

Resuming: a run of a replayable optimizer (the registry says which) with a partial log is rebuilt from
its initial weights and its logged step records are replayed (no forward pass), which reproduces
parameters and optimizer state bit for bit; it then continues. Other runs restart from step 0, as do
logs written before step records existed (they held only the seed and ĝ).

A wall-clock budget (``budget: {seconds: …}``) counts the training steps' device-synchronised seconds,
evaluations and loading apart, as logged; a resumed run goes on from the seconds its log already holds.
The step that crosses the budget is the last, and is evaluated. ``steps`` still bounds the run.

A NaN or infinite loss (or parameter) marks the run ``diverged`` at that step; a loss grown far past
its start, or a step estimate stuck at exactly zero, flags it (:mod:`zobench.health`). Half-precision
runs of zobench's ZO optimizers log, at each evaluation, how far a perturb–restore cycle drifts (``drift``).

Over several ranks (``torchrun``, :mod:`zobench.distributed`) every rank runs the same steps; rank 0
alone claims, reads and writes the store, and shares what it read, so all ranks resume alike.
"""

from __future__ import annotations

import math
import statistics
from contextlib import contextmanager, nullcontext
from dataclasses import asdict

import torch

from . import optimizers, targets
from .distributed import SINGLE, World, shared
from .health import flagged_at, flags
from .measure import PhaseMeter, environment
from .problems import build_problem
from .problems.base import batch_slice
from .record import SCHEMA_VERSION, RunRecord
from .store import ResultStore
from .suite import RunSpec

WARMUP_STEPS = 3  # excluded from the per-step time: allocator, caches and lazy state creation


def resolve_device(device: str) -> torch.device:
    """Where inputs and measurements go: ``sharded`` models start on the first GPU (or the CPU)."""
    if device in ("auto", "sharded"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _finite(value: float) -> bool:
    return value is not None and math.isfinite(value)


def _evaluation(problem) -> dict:
    return {"dev": problem.evaluate("dev"), "test": problem.evaluate("test")}


def run(spec: RunSpec, store: ResultStore, progress=None, wait: bool = True, world: World = SINGLE) -> dict | None:
    """The run's record: read if recorded, else run (or resumed) and written, under the run's claim
    so that no two processes run it at once; ``progress(step)`` is called when training starts (with
    the step it resumes from) and after each step. With ``wait=False``, ``None`` when another process
    holds the claim. ``world``: the ranks of a distributed run (rank 0 holds the claim for all)."""
    with store.claim(spec.key, wait=wait) if world.leader else nullcontext(True) as claimed:
        if not shared(world, claimed):
            return None
        return shared(world, store.record(spec.key) if world.leader else None) or _train(spec, store, progress, world)


@contextmanager
def _discarded(key: str, keep=()):
    """The log writer of a rank that is not rank 0: rank 0 writes the same entries."""
    yield lambda entry: None


def _train(spec: RunSpec, store: ResultStore, progress, world: World = SINGLE) -> dict:
    info = optimizers.get(spec.optimizer)
    if world.size > 1 and info.family == "fo":
        raise ValueError(f"{spec.optimizer} backpropagates: a distributed run splits zeroth-order steps only")
    device = resolve_device(spec.device)
    meter = PhaseMeter(device)
    with meter.phase("load"):
        torch.manual_seed(spec.seed)
        problem = build_problem(spec, device=str(device))
        optimizer = info.create(problem.parameter_groups(), context={"total_steps": spec.steps, "seed": spec.seed},
                                **spec.hyperparameters)
    exchange = world.exchange()
    if exchange is not None:
        if not hasattr(optimizer, "distribute"):
            raise ValueError(f"{spec.optimizer} is not built from zobench's parts: it cannot split a step over ranks")
        optimizer.distribute(exchange)
    shard = (world.rank, world.size) if world.size > 1 and world.split == "data" else None

    history = shared(world, store.read_log(spec.key) if world.leader else None)
    replayable = info.replayable and len(history) > 1 and all("record" in e for e in history[1:])
    if replayable and not history[-1].get("diverged"):
        for entry in history[1:]:
            optimizer.replay(entry["record"])
        resumed_at = history[-1]["step"]
    else:
        history, resumed_at = [], 0

    with (store.log_writer if world.leader else _discarded)(spec.key, keep=history) as log:
        if not history:
            with meter.phase("eval"):
                first = {"step": 0, "forward_passes": 0, **_evaluation(problem), **problem.snapshot()}
            log(first)
            history.append(first)
        if progress:
            progress(resumed_at)  # training starts here: what came before (loading, caching) is no step's time
        forward_passes = history[-1]["forward_passes"]
        seconds = sum(e.get("seconds", 0.0) for e in history)
        pass_cost = info.closure_cost  # one closure call: a forward, or one with a backward or tangents
        whole_train = None  # built when a method first asks for the whole training set's loss

        def whole():
            nonlocal forward_passes, whole_train
            whole_train = whole_train or problem.whole_train_closure()
            forward_passes += pass_cost * whole_train[1]
            return whole_train[0]()

        for step in range(resumed_at + 1, spec.steps + 1):
            closure = problem.loss_closure(step, shard)

            def counted():
                nonlocal forward_passes
                forward_passes += pass_cost
                return closure()
            counted.whole = whole  # MeZO-SVRG's full-batch loss, counted as the batches it takes
            if hasattr(closure, "part"):  # GRZO's slices of the batch, counted as the examples they take
                def part(index, parts):
                    nonlocal forward_passes
                    rows = batch_slice(closure.examples, index, parts)
                    forward_passes += pass_cost * (rows.stop - rows.start) / closure.examples
                    return closure.part(index, parts)
                counted.part = part

            entry = {"step": step}
            with meter.phase("train") as interval:
                try:
                    loss = optimizer.step(counted)
                except optimizers.NonFiniteLossError:
                    loss = math.nan
            seconds += interval["seconds"]
            forward_passes = round(forward_passes, 9)  # slices of a batch add fractions of a pass
            budget_spent = ((spec.forward_pass_budget is not None and forward_passes >= spec.forward_pass_budget)
                            or (spec.seconds_budget is not None and shared(world, seconds >= spec.seconds_budget)))
            evaluating = step % spec.eval_every == 0 or step == spec.steps or budget_spent
            # the loss every step; the parameters (a full read of the model) only before an evaluation:
            # an overflow in between shows as a non-finite loss one step later
            diverged = not _finite(loss) or (evaluating and not all(
                bool(torch.isfinite(p).all()) for g in optimizer.param_groups for p in g["params"]))
            entry.update(forward_passes=forward_passes, loss=loss if _finite(loss) else None,
                         seconds=interval["seconds"], **problem.snapshot())
            if info.replayable and not diverged:
                entry["record"] = optimizer.last_record
            if diverged:
                entry["diverged"] = True
            elif evaluating:
                with meter.phase("eval"):
                    entry.update(_evaluation(problem), **_drift(optimizer))
            log(entry)
            history.append(entry)
            if progress:
                progress(step)
            if diverged or budget_spent:
                break

    record = summarise(spec, history, problem) | {
        "schema_version": SCHEMA_VERSION,
        "resumed_at_step": resumed_at,
        "problem": problem.describe() if hasattr(problem, "describe") else {},
        "time": {**{f"{phase}_seconds": seconds for phase, seconds in meter.seconds.items()},
                 **_step_times(history)},
        "memory": meter.memory(),
        "environment": environment(device, spec.dtype) | ({} if exchange is None else {"distributed": {
            "world_size": world.size, "split": world.split,
            "bytes_sent_per_step": exchange.bytes_sent / max(len(history) - 1 - resumed_at, 1)}}),
    }
    if world.leader:
        store.write_record(RunRecord.model_validate(record).model_dump(mode="json"))
    return record


def _drift(optimizer) -> dict:
    """``{"drift": …}`` (unit roundoffs) where θ is fp16 or bf16 and the optimizer can measure it; else {}."""
    halves = [p.dtype in (torch.float16, torch.bfloat16) for g in optimizer.param_groups for p in g["params"]]
    return {"drift": optimizer.restore_drift()} if any(halves) and hasattr(optimizer, "restore_drift") else {}


def _step_times(history: list[dict]) -> dict:
    times = [e["seconds"] for e in history if "seconds" in e][WARMUP_STEPS:]
    if not times:
        return {"seconds_per_step": None, "seconds_per_step_median": None}
    return {"seconds_per_step": statistics.fmean(times), "seconds_per_step_median": statistics.median(times)}


def summarise(spec: RunSpec, history: list[dict], problem) -> dict:
    """The run's results, derived from its step log alone."""
    metric, higher = problem.metric, problem.higher_is_better
    evaluations = [e for e in history if "dev" in e]
    last = history[-1]
    best = (max if higher else min)(evaluations, key=lambda e: e["dev"][metric])
    final = evaluations[-1]
    health = flags(history)
    return {
        "key": spec.key, "spec": asdict(spec),
        "status": "diverged" if last.get("diverged") else "finished",
        "steps_done": last["step"], "forward_passes": last["forward_passes"],
        "metric": {"name": metric, "higher_is_better": higher},
        "initial": {"dev": history[0]["dev"], "test": history[0]["test"]},
        "final": {"step": final["step"], "dev": final["dev"], "test": final["test"],
                  **{k: last[k] for k in problem.snapshot()}},
        "best_dev": {"step": best["step"], "value": best["dev"][metric]},
        "selected_test": best["test"][metric],  # the test metric where dev was best: selected on dev
        "targets": targets.absolute(history, spec.targets, metric, higher, flagged_at=flagged_at(health)),
        "health": health,
    }

"""Executes runs: optimizer on problem for a step budget, measured, logged and recorded.

Measurements per run: the objective and the distance to the optimum along the way, the steps and
forward passes (counted at the closure, not inferred) at which each convergence target is first
reached (``None`` when it never is: unreached targets stay in the record), wall time of the training
steps, and the environment. A NaN or infinite loss marks the run ``diverged`` at that step.
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from . import __version__, optimizers
from .problems.test_functions import TEST_FUNCTIONS
from .store import ResultStore
from .suite import RunSpec, Suite


def environment() -> dict:
    """Where a run happened: versions, commit, hardware, threads."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"zobench": __version__, "git_commit": commit, "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}


def run_test_function(spec: RunSpec, store: ResultStore) -> dict:
    """Runs one optimizer on one 2-D test function and writes its record."""
    problem = TEST_FUNCTIONS[spec.problem]
    torch.manual_seed(spec.seed)
    point = problem.parameters()
    optimizer = optimizers.get(spec.optimizer).create(
        [point], context={"total_steps": spec.steps, "seed": spec.seed}, **spec.hyperparameters)
    forward_passes = 0

    def closure():
        nonlocal forward_passes
        forward_passes += 1
        return problem.loss(point)

    def snapshot(step: int) -> dict:
        with torch.no_grad():
            loss = float(problem.loss(point))
        x, y = (float(v) for v in point.detach())
        return {"step": step, "forward_passes": forward_passes, "x": x, "y": y, "loss": loss,
                "distance": problem.distance(point)}

    reached: dict[float, dict | None] = {target: None for target in spec.targets}
    status, last = "finished", None
    with store.log_writer(spec.key) as log:
        last = snapshot(0)
        log(last)
        started = time.perf_counter()
        for step in range(1, spec.steps + 1):
            try:
                loss = optimizer.step(closure)
            except optimizers.NonFiniteLossError:
                loss = math.nan
            if not math.isfinite(loss) or not bool(torch.isfinite(point).all()):
                status = "diverged"
                last = {**snapshot(step), "diverged": True}
                log(last)
                break
            current = snapshot(step)
            for target, hit in reached.items():
                if hit is None and current["distance"] <= target:
                    reached[target] = {"step": step, "forward_passes": forward_passes}
            if step % spec.record_every == 0 or step == spec.steps:
                log(current)
            last = current
        train_seconds = time.perf_counter() - started

    record = {
        "key": spec.key, "spec": asdict(spec), "status": status, "steps_done": last["step"],
        "forward_passes": forward_passes, "final": {k: last[k] for k in ("x", "y", "loss", "distance")},
        "targets": [{"target": t, "reached": hit is not None, **(hit or {"step": None, "forward_passes": None})}
                    for t, hit in reached.items()],
        "train_seconds": train_seconds, "seconds_per_step": train_seconds / max(last["step"], 1),
        "environment": environment(),
    }
    store.write_record(record)
    return record


def execute(suite: Suite, store: ResultStore, progress: Callable[[str], None] = print) -> list[dict]:
    """Runs every run of ``suite`` that has no record yet; returns all records of the suite."""
    total = len(suite.runs)
    for index, spec in enumerate(suite.runs, 1):
        prefix = f"[{index}/{total}] {spec.label} on {spec.problem}, seed {spec.seed}"
        if store.has(spec.key):
            progress(f"{prefix}: done before, skipped")
            continue
        record = run_test_function(spec, store)
        progress(f"{prefix}: {record['status']}, distance {record['final']['distance']:.3g} "
                 f"after {record['steps_done']} steps ({record['train_seconds']:.2f} s)")
    return [store.record(spec.key) for spec in suite.runs]

"""Where runs execute, behind the ``concurrent.futures`` interface (``submit`` -> ``result()``).

* ``inline`` — in this process, one after another (the default; progress per step).
* ``local`` — a process pool on this machine. With GPUs, one worker per GPU, each pinned to its GPU
  through ``CUDA_VISIBLE_DEVICES``; without, ``workers`` CPU workers sharing the cores.
* ``slurm`` — one Slurm job per run through ``submitit`` (its ``debug`` and ``local`` clusters run
  the same code on a machine without Slurm, which is how the tests exercise this path). Its jobs are
  wrapped as ``concurrent.futures`` futures, so the harness waits on every kind with
  ``futures.wait(FIRST_COMPLETED)`` rather than polling.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from pathlib import Path

import torch


class InlineExecutor(Executor):
    """Runs each submitted call at once, in this process."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as error:  # the caller reads it from the future, as with any executor
            future.set_exception(error)
        return future


def _pin_worker(devices, threads: int) -> None:
    """Pool initializer: claim one GPU (if any) and a share of the CPU threads."""
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(devices.get())
    torch.set_num_threads(threads)


def local_pool(workers: int | None = None) -> ProcessPoolExecutor:
    context = multiprocessing.get_context("spawn")  # CUDA cannot be re-initialised in a forked child
    gpus = torch.cuda.device_count()
    devices = None
    if gpus:
        workers = workers or gpus
        devices = context.Queue()
        for index in range(workers):
            devices.put(index % gpus)
    workers = workers or max(1, (os.cpu_count() or 1) // 2)
    threads = max(1, (os.cpu_count() or 1) // workers)
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_pin_worker,
                               initargs=(devices, threads))


class SubmititExecutor(Executor):
    """A submitit executor behind ``concurrent.futures``: each job's future is settled by a thread that
    waits on ``job.result()`` (submitit polls the scheduler there), so callers need no polling loop."""

    def __init__(self, executor):
        self.executor = executor

    def submit(self, fn, /, *args, **kwargs) -> Future:
        job = self.executor.submit(fn, *args, **kwargs)
        future: Future = Future()

        def settle():
            try:
                future.set_result(job.result())
            except Exception as error:
                future.set_exception(error)

        threading.Thread(target=settle, daemon=True).start()
        return future


def slurm(folder: Path, *, partition: str | None = None, time_minutes: int = 60, gpus: int = 1,
          cluster: str | None = None) -> SubmititExecutor:
    """A submitit executor; ``cluster="debug"`` or ``"local"`` runs without Slurm."""
    import submitit

    executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=cluster)
    parameters = {"timeout_min": time_minutes, "gpus_per_node": gpus, "name": "zobench"}
    if partition:
        parameters["slurm_partition"] = partition
    executor.update_parameters(**parameters)
    return SubmititExecutor(executor)


def make_executor(kind: str, *, workers: int | None = None, folder: Path | None = None, **slurm_options):
    if kind == "inline":
        return InlineExecutor()
    if kind == "local":
        return local_pool(workers)
    if kind == "slurm":
        return slurm(folder, **slurm_options)
    raise ValueError(f"unknown executor {kind!r}; choose inline, local or slurm")

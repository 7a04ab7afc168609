"""Where runs execute, behind the ``concurrent.futures`` interface (``submit`` -> ``result()``).

* ``inline`` — in this process, one after another (the default; progress per step).
* ``local`` — a process pool on this machine. With GPUs, one worker per GPU, each pinned to its GPU
  through ``CUDA_VISIBLE_DEVICES``; without, ``workers`` CPU workers sharing the cores.
* ``slurm`` — Slurm jobs through ``submitit`` (its ``debug`` and ``local`` clusters run the same code
  on a machine without Slurm, which is how the tests exercise this path). A suite's pending runs go
  out as one job array (:meth:`SubmititExecutor.batch`), at most ``parallel`` of them running at once;
  a job that is preempted or times out is requeued with the same run, which resumes from its log
  (:class:`Resumable`). Its jobs are wrapped as ``concurrent.futures`` futures, so the harness waits
  on every kind with ``futures.wait(FIRST_COMPLETED)`` rather than polling.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
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
    waits on ``job.result()`` (submitit polls the scheduler there), so callers need no polling loop.
    Every call is submitted as :class:`Resumable`; ``future.job`` is its submitit job."""

    def __init__(self, executor):
        self.executor = executor
        self._held: list[tuple[object, Future]] | None = None  # jobs of an open batch: not submitted yet

    @contextmanager
    def batch(self):
        """Submissions inside go out together when it closes: on Slurm, one job array."""
        self._held = []
        try:
            with self.executor.batch():
                yield
        finally:
            held, self._held = self._held, None
        for job, future in held:
            self._settle(job, future)

    def submit(self, fn, /, *args, **kwargs) -> Future:
        from .slurm_jobs import Resumable

        job = self.executor.submit(Resumable(fn), *args, **kwargs)
        future: Future = Future()
        future.job = job
        if self._held is not None:
            self._held.append((job, future))
        else:
            self._settle(job, future)
        return future

    @staticmethod
    def _settle(job, future: Future) -> None:
        def settle():
            try:
                future.set_result(job.result())
            except Exception as error:
                future.set_exception(error)

        threading.Thread(target=settle, daemon=True).start()


def slurm(folder: Path, *, partition: str | None = None, time_minutes: int = 60, gpus: int = 1,
          cluster: str | None = None, parallel: int = 16) -> SubmititExecutor:
    """A submitit executor; ``cluster="debug"`` or ``"local"`` runs without Slurm. ``parallel``: the most
    jobs of an array running at once (Slurm's ``--array=0-N%parallel``)."""
    import submitit

    executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=cluster)
    parameters = {"timeout_min": time_minutes, "gpus_per_node": gpus, "name": "zobench",
                  "slurm_array_parallelism": parallel}
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

"""Wall time and peak memory per phase of a run, and the environment the run happened in.

Phases (``load``, ``train``, ``eval``) may alternate; each keeps its total time and the largest peak
seen in any of its intervals.

* GPU: the allocator's peak statistics are reset when a phase interval starts and read when it
  ends, ``max_memory_allocated`` and ``max_memory_reserved``.
* CPU: torch's allocations are invisible to ``tracemalloc``, so we read the resident-set high-water
  mark (``VmHWM``), reset per interval by writing ``5`` to ``/proc/self/clear_refs``. This is the
  whole process's memory, the interpreter and libraries included. Where ``/proc`` cannot be reset
  (not Linux), the peak is ``ru_maxrss`` since the process started, and the record says so.

Times are taken after synchronising the device, so queued GPU work is counted where it was issued.
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import time
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import torch

from . import __version__


def host_memory_bytes() -> int:
    """This machine's physical memory: what a CPU run can hold at most."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_rss_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _rss_peak_bytes(field: str = "VmHWM") -> int:
    """The resident-set high-water mark (``VmRSS``: the resident set now) of this process."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PhaseMeter:
    """Accumulates time and peak memory of named phases."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds: dict[str, float] = {}
        self.peaks: dict[str, dict[str, int]] = {}
        self.memory_scope = "phase" if device.type == "cuda" or _reset_rss_peak() else "process"

    def _reset(self) -> None:
        if self.device.type == "cuda":
            for index in range(torch.cuda.device_count()):
                torch.cuda.reset_peak_memory_stats(index)
        elif self.memory_scope == "phase":
            _reset_rss_peak()

    def _read(self) -> dict[str, int]:
        if self.device.type == "cuda":  # summed over the visible GPUs: a sharded model spans several
            count = range(torch.cuda.device_count())
            return {"allocated_bytes": sum(torch.cuda.max_memory_allocated(i) for i in count),
                    "reserved_bytes": sum(torch.cuda.max_memory_reserved(i) for i in count)}
        return {"rss_bytes": _rss_peak_bytes()}

    @contextmanager
    def phase(self, name: str):
        """Measures the enclosed code as one interval of phase ``name``; yields a dict that receives
        the interval's ``seconds``."""
        interval: dict[str, float] = {}
        synchronize(self.device)
        self._reset()
        started = time.perf_counter()
        try:
            yield interval
        finally:
            synchronize(self.device)
            interval["seconds"] = time.perf_counter() - started
            self.seconds[name] = self.seconds.get(name, 0.0) + interval["seconds"]
            peaks = self.peaks.setdefault(name, {})
            for key, value in self._read().items():
                peaks[key] = max(peaks.get(key, 0), value)

    def memory(self) -> dict:
        return {"scope": self.memory_scope, **self.peaks}


def peak_bytes(memory: dict, phase: str) -> int | None:
    """A recorded phase's peak: GPU allocated bytes, else CPU peak RSS; ``None`` if not measured."""
    peaks = memory.get(phase, {})
    return peaks.get("allocated_bytes", peaks.get("rss_bytes"))


PACKAGES = ("transformers", "peft", "datasets", "numpy", "optuna")  # what else shapes a run's numbers


def _git(*arguments: str) -> str | None:
    """``git`` run in zobench's own checkout: its stdout, or ``None`` for an installed package (whose
    folder may lie inside some other repository, e.g. a virtual environment in a user's project)."""
    if not (Path(__file__).parent.parent / ".git").exists():
        return None
    try:
        done = subprocess.run(["git", *arguments], cwd=Path(__file__).parent, capture_output=True, text=True,
                              timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment(device: torch.device, dtype: str) -> dict:
    """Where a run happened (its provenance): the code (commit, and whether the tree had uncommitted
    changes), the packages and torch's build, the device and the CPU, the dtype and threads."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"zobench": __version__, "git_commit": commit.strip() if commit else None,
            "git_dirty": None if status is None else bool(status.strip()),
            "torch": torch.__version__, "torch_cuda": torch.version.cuda,
            **{package: _version(package) for package in PACKAGES},
            "python": platform.python_version(),
            "platform": platform.platform(), "cpu": _cpu_name(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "dtype": dtype,
            "fp16_restore_drift": dtype == "float16",  # ZO perturb/restore drifts in fp16 weights (warned)
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()

"""One zeroth-order run over several processes: the ranks exchange loss values, never tensors.

A ZO step needs no gradient exchange. Every rank regenerates the same noise from the step's seed,
so ranks that agree on the step's losses take the same update. There are two ways to split a step
(``split``):

* ``data``: every rank evaluates every probe on its shard of the batch. The ranks then average the
  shards' losses (one all-reduce of a float64 per forward pass), so each rank sees the loss of the
  whole batch: equal, to rounding, to one process on the whole batch.
* ``probes``: rank r runs the forward passes of the step's evaluations r, r + W, r + 2W, … . Every rank
  makes every move, so each evaluation runs at bitwise the θ it has in one process. One all-reduce of
  the step's losses at its end (each rank contributes the ones it computed, zeros elsewhere) gives
  every rank all of them. The estimator then runs again on those values without moving θ, and the
  step is bitwise the serial one. This needs an estimator whose moves do not depend on the losses
  (``describe()["splits"]`` says whether; ZO-SGD-Cons's trial points do).

The records are the serial run's (the seed and every loss of a step), so replay, resume and the
run's key are unchanged; the record states the world size and the split.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

SPLITS = ("data", "probes")


class RankLostError(RuntimeError):
    """A collective failed: another rank stopped (killed, out of memory, a node lost)."""


@dataclass(frozen=True)
class World:
    """This process's place in the run: rank, world size, and how a step is split."""

    rank: int = 0
    size: int = 1
    split: str = "data"

    @property
    def leader(self) -> bool:
        """Rank 0 alone writes records, logs and reports."""
        return self.rank == 0

    def exchange(self):
        """What the optimizer's evaluations go through (None in one process)."""
        if self.size == 1:
            return None
        return DataParallel(self.size) if self.split == "data" else ProbeParallel(self.rank, self.size)


SINGLE = World()


def from_environment(split: str = "data") -> World:
    """The world ``torchrun`` launched (its ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``), with the process
    group joined; one process without torchrun. The group is gloo's on every machine: what the ranks
    exchange are a few losses a step, already Python floats on the host, which NCCL would first have
    to copy to a GPU. With GPUs, each rank takes the one of its local rank."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if split not in SPLITS:
        raise ValueError(f"distributed split must be one of {', '.join(SPLITS)}, not {split!r}")
    if size == 1:
        return World(split=split)
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return World(dist.get_rank(), dist.get_world_size(), split)


def _collective(function, *args, **kwargs):
    """A collective whose failure (a rank gone) becomes one line naming the way back."""
    try:
        return function(*args, **kwargs)
    except RuntimeError as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise RankLostError(f"another rank stopped during the run ({first}); rerun the same command: the run "
                            "resumes from its records") from None


def shared(world: World, value):
    """``value`` as rank 0 has it, on every rank (a history read from the store, a decision)."""
    if world.size == 1:
        return value
    box = [value if world.leader else None]
    _collective(dist.broadcast_object_list, box, src=0)
    return box[0]


class DataParallel:
    """Each rank's closure gives the mean loss of its equal shard of the batch; the ranks average them."""

    defers = False

    def __init__(self, size: int):
        self.size = size
        self.bytes_sent = 0

    def evaluate(self, index: int, compute):
        value = compute()
        values = torch.tensor(value if isinstance(value, list) else [value], dtype=torch.float64)
        _collective(dist.all_reduce, values)
        self.bytes_sent += values.numel() * values.element_size()
        averaged = (values / self.size).tolist()
        return averaged if isinstance(value, list) else averaged[0]


class ProbeParallel:
    """Rank r computes evaluations r, r + W, …; the others are placeholders until :meth:`complete`."""

    defers = True  # its values are known only once complete() has run

    def __init__(self, rank: int, size: int):
        self.rank, self.size = rank, size
        self.bytes_sent = 0

    def _owns(self, index: int) -> bool:
        return index % self.size == self.rank

    def evaluate(self, index: int, compute):
        return compute() if self._owns(index) else 0.0

    def complete(self, values: list) -> list:
        """Every rank's computed values, in the step's order (zeros add exactly: each value is one rank's)."""
        if any(isinstance(v, list) for v in values):
            raise ValueError("split: probes exchanges losses; a forward-gradient step has no probes to split")
        mine = torch.tensor([v if self._owns(i) else 0.0 for i, v in enumerate(values)], dtype=torch.float64)
        _collective(dist.all_reduce, mine)
        self.bytes_sent += mine.numel() * mine.element_size()
        return mine.tolist()

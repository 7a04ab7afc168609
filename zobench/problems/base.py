"""What the harness optimises: a problem with trainable parameters, a loss per step and metrics.

A problem's training loss at step ``t`` must depend only on ``t`` (and the run's seed), never on how
many steps ran in this process: that is what lets a zeroth-order run resume from its seed log and
end bitwise equal to an uninterrupted one.
"""

from __future__ import annotations

from typing import Callable, Protocol

import torch


class Problem(Protocol):
    metric: str  # the name of the task metric that targets and dev selection use
    higher_is_better: bool

    def parameter_groups(self, weight_decay: float = 0.0) -> list[dict]:
        """The trainable parameters, as torch.optim param groups (``weight_decay`` set per group)."""

    def loss_closure(self, step: int, shard: tuple[int, int] | None = None) -> Callable[[], torch.Tensor]:
        """A closure returning the training loss on the batch of ``step`` (1-based); with ``shard`` =
        (rank, ranks), on that rank's share of the batch, whose mean over ranks is the batch's loss
        (a data-split distributed run; :func:`no_batch` for problems without a batch). A problem with
        examples gives the closure ``part(i, parts)``, the loss on :func:`batch_slice` i of the batch,
        and ``examples``, the batch's size (GRZO's per-example losses); without them every slice is the
        whole loss."""

    def whole_train_closure(self) -> tuple[Callable[[], torch.Tensor], int]:
        """A closure returning the training loss over the whole training set (MeZO-SVRG's full-batch
        estimate), and how many batch-sized forward passes one call costs."""

    def evaluate(self, split: str) -> dict[str, float]:
        """Metrics on ``split`` ("dev" or "test"); includes ``self.metric``."""

    def snapshot(self) -> dict:
        """Small extra state to log at every step (e.g. the point of a 2-D problem); may be empty."""


def batch_slice(examples: int, part: int, parts: int) -> slice:
    """Slice ``part`` of ``parts`` near-equal consecutive slices of a batch of ``examples`` (the first
    ``examples % parts`` one longer, as ``torch.tensor_split`` cuts); a slice with no example is refused."""
    if parts > examples:
        raise ValueError(f"{parts} batch slices (GRZO's groups) exceed the batch's {examples} examples; use at most "
                         f"{examples} groups or a larger batch_size")
    size, longer = divmod(examples, parts)
    start = part * size + min(part, longer)
    return slice(start, start + size + (part < longer))


def no_batch(shard: tuple[int, int] | None, problem) -> None:
    """Refuses a data split for a problem whose loss has no batch to share out."""
    if shard is not None:
        raise ValueError(f"{type(problem).__name__} has no batch to split between ranks; use split probes")

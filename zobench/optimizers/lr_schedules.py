r"""Learning-rate schedules: a factor of each parameter group's learning rate, a pure function of the step.

A schedule is declared as a mapping, in a suite (``lr_schedule: {name: cosine, warmup: 100}``) or in
code (``lr_schedule={"name": "cosine"}``), and gives :math:`\eta_k = \eta\,f(k)`, where k counts the
steps taken before this one (0 for the first step), as torch's ``LambdaLR`` and Hugging Face's
schedulers count. Being a function of k alone, a ZO step's rate is found again from the step number,
so replaying a run's records stays bitwise, and a first-order baseline runs the same f through
``LambdaLR`` (:mod:`.first_order`): ZO and first-order runs share one schedule axis.

The definitions are those of Hugging Face ``transformers`` (``get_constant_schedule_with_warmup``,
``get_linear_schedule_with_warmup``, ``get_cosine_schedule_with_warmup`` with half a cycle and its
``min_lr_rate``) and torch's ``StepLR``, so a run here and a run of a Hugging Face trainer step alike
(``tests/test_lr_schedules.py`` checks each against those libraries):

* warm-up (any schedule): :math:`f(k) = k / \max(1, W)` for :math:`k < W`, so the first step has rate 0;
* ``constant``: 1;
* ``linear``: :math:`\max(0, (T - k) / \max(1, T - W))`, from 1 to 0 at the last step;
* ``cosine``: :math:`\max(0, \tfrac12(1 + \cos \pi p))` with :math:`p = (k - W) / \max(1, T - W)`;
* ``step``: :math:`\gamma^{\lfloor (k - W) / \text{every} \rfloor}`;
* ``final`` (linear and cosine): the factor reached at the end, :math:`f \leftarrow f\,(1 - r) + r`.

T is ``total``, by default the run's step budget (the harness passes it).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, ValidationError

from ..schema import Declared, Number, NonNegativeInt, PositiveInt, one_line

NAMES = ("constant", "linear", "cosine", "step")


class LearningRateSchedule(Declared):
    """``lr_schedule``: the factor of the learning rate at each step (see the module docstring)."""

    name: Literal[NAMES]
    warmup: NonNegativeInt = 0  # steps of linear warm-up from 0
    total: PositiveInt = None  # T, the steps the decay spans; default: the run's steps
    final: Annotated[Number, Field(ge=0, le=1)] = 0.0  # linear, cosine: the factor at step T
    every: PositiveInt = None  # step: steps between decays
    gamma: Annotated[Number, Field(gt=0, le=1)] = 0.1  # step: the factor of each decay

    def factor(self, k: int) -> float:
        """f(k), k = the steps taken before this one."""
        warmup, total = self.warmup, self.total
        if k < warmup:
            return float(k) / float(max(1, warmup))
        if self.name == "constant":
            return 1.0
        if self.name == "step":
            return self.gamma ** ((k - warmup) // self.every)
        if self.name == "linear":
            factor = max(0.0, float(total - k) / float(max(1, total - warmup)))
        else:
            progress = float(k - warmup) / float(max(1, total - warmup))
            factor = 0.5 * (1.0 + math.cos(math.pi * progress))
        return max(0.0, factor * (1.0 - self.final) + self.final)


def learning_rate_schedule(declared, total_steps: int | None) -> LearningRateSchedule | None:
    """``declared`` (a mapping, a :class:`LearningRateSchedule` or None) checked, with T filled in from
    ``total_steps``; a problem is a one-line ``ValueError`` naming the key to fix."""
    if declared is None:
        return None
    if isinstance(declared, LearningRateSchedule):
        declared = declared.model_dump(exclude_unset=True)
    if not isinstance(declared, dict):
        raise ValueError(f"lr_schedule must be a mapping such as {{name: cosine, warmup: 100}}, not {declared!r}")
    try:
        schedule = LearningRateSchedule(**declared)
    except ValidationError as error:
        raise ValueError(one_line(error, "lr_schedule", LearningRateSchedule)) from None
    if (schedule.name == "step") != (schedule.every is not None):
        raise ValueError("lr_schedule: every: a step schedule needs it (steps between decays); only a step "
                         "schedule takes it")
    if schedule.name in ("linear", "cosine") and schedule.total is None:
        if total_steps is None:
            raise ValueError(f"lr_schedule: a {schedule.name} decay needs the steps it spans: give total, or "
                             f"run it where the step budget is known")
        schedule = schedule.model_copy(update={"total": total_steps})
    return schedule

r"""The simulated-annealing schedule of ZO-AdaMU (paper Eq. 7), as a pure function of the step.

.. math::

    \mathrm{Anneal}_\varphi(t) =
    \begin{cases}
      1 & 1 \le t < T_1 \\
      \tfrac12 + \tfrac12\cos\!\Big(\pi\,\dfrac{t - T_1}{T_3 - (t - T_1)\,\varphi\,\frac{T_3 - T_2}{T_2 - T_1}}\Big)
        & T_1 \le t < T_2 \\
      c_\varphi & T_2 \le t \le T_3
    \end{cases}

with :math:`\varphi = 1` for the uncertainty :math:`\alpha`, 0.1 for :math:`\beta_1` and 1.5 for
:math:`\beta_2`.

Choices where the paper is ambiguous (each tested in ``tests/test_anneal.py``):

* **Cosine numerator.** The extracted Eq. 7 reads :math:`T_3 - T_1` in the numerator, which makes the
  value jump from 1 to about 0 at :math:`T_1`; the released code uses :math:`t - T_1`, which is
  continuous at :math:`T_1` and matches Figure 1's smooth decay. We use :math:`t - T_1`.
* **Cosine denominator.** The released code shrinks a counter by
  :math:`\varphi (T_3-T_2)/(T_2-T_1)` on *every call* (per step, per tensor and per hyperparameter),
  so its schedule depends on the model's tensor count. We take the one-call-per-step reading,
  :math:`T_3 - (t - T_1)\varphi\frac{T_3-T_2}{T_2-T_1}`, a pure function of ``t``.
* **Last phase** (``last_phase``): ``"eq7"`` (default, the reading Algorithm 1 refers to) fixes all
  three values at 0.9; ``"text"`` fixes :math:`\alpha = 0.5, \beta_1 = 0.9, \beta_2 = 0.01` as the
  prose says.

Defaults: :math:`T_1 = 1024`, :math:`T_2 = 0.8\,T_3`, :math:`T_3` = the step budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

PHIS = {"alpha": 1.0, "beta1": 0.1, "beta2": 1.5}
LAST_PHASES = {
    "eq7": {"alpha": 0.9, "beta1": 0.9, "beta2": 0.9},
    "text": {"alpha": 0.5, "beta1": 0.9, "beta2": 0.01},
}


HYPERPARAMETERS = ("T1", "T2", "T3", "last_phase", "phi_alpha", "phi_beta1", "phi_beta2")


class AnnealValues(NamedTuple):
    alpha: float  # variance of the zero-centred part of the perturbation
    beta1: float  # weight of the fresh sample in the first moment
    beta2: float  # weight of the fresh sample in the second moment


def anneal(t: int, phi: float, T1: int, T2: int, T3: int, last: float) -> float:
    """Eq. 7 for one hyperparameter at step ``t`` (1-based)."""
    if t < T1:
        return 1.0
    if t < T2:
        shrink = phi * (T3 - T2) / (T2 - T1)
        return 0.5 + 0.5 * math.cos(math.pi * (t - T1) / (T3 - (t - T1) * shrink))
    return last


@dataclass(frozen=True)
class AnnealSchedule:
    """α, β1, β2 of ZO-AdaMU as a pure function of the step."""

    T3: int
    T1: int = 1024
    T2: int | None = None  # default 0.8 * T3
    last_phase: str = "eq7"
    phi_alpha: float = PHIS["alpha"]
    phi_beta1: float = PHIS["beta1"]
    phi_beta2: float = PHIS["beta2"]

    def __post_init__(self):
        if self.T2 is None:
            object.__setattr__(self, "T2", int(0.8 * self.T3))
        if self.last_phase not in LAST_PHASES:
            raise ValueError(f"last_phase must be one of {sorted(LAST_PHASES)}, not {self.last_phase!r}")
        if not 1 <= self.T1 < self.T2 <= self.T3:
            raise ValueError(f"the anneal needs 1 <= T1 < T2 <= T3, got T1={self.T1}, T2={self.T2}, "
                             f"T3={self.T3}; lower T1 or raise the step budget")
        worst_phi = max(self.phi_alpha, self.phi_beta1, self.phi_beta2)
        if self.T3 - worst_phi * (self.T3 - self.T2) <= 0:
            raise ValueError(f"the cosine denominator of Eq. 7 reaches zero before T2={self.T2}; "
                             f"raise T2 above {worst_phi - 1:.2f}/{worst_phi:.2f} of T3={self.T3}")

    @classmethod
    def for_run(cls, total_steps: int | None = None, *, T1: int = 1024, T2: int | None = None,
                T3: int | None = None, last_phase: str = "eq7", phi_alpha: float = PHIS["alpha"],
                phi_beta1: float = PHIS["beta1"], phi_beta2: float = PHIS["beta2"]) -> "AnnealSchedule":
        """The schedule of a ZO-AdaMU run: ``T3`` defaults to the run's step budget."""
        T3 = T3 or total_steps
        if T3 is None:
            raise ValueError("zo-adamu needs T3 (the anneal's horizon) or the run's total_steps")
        return cls(T3=T3, T1=T1, T2=T2, last_phase=last_phase, phi_alpha=phi_alpha, phi_beta1=phi_beta1,
                   phi_beta2=phi_beta2)

    def __call__(self, t: int) -> AnnealValues:
        last = LAST_PHASES[self.last_phase]
        phis = {"alpha": self.phi_alpha, "beta1": self.phi_beta1, "beta2": self.phi_beta2}
        return AnnealValues(**{
            name: anneal(t, phis[name], self.T1, self.T2, self.T3, last[name]) for name in PHIS})

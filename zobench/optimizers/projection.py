r"""DiZO's drift projection (Tan et al., "Harmony in Divergence: Towards Fast, Accurate, and
Memory-efficient Zeroth-order LLM Fine-tuning", NeurIPS 2025, arXiv 2502.03304): every κ steps, each
tensor's drift from where training started, :math:`\Delta = \theta - \theta_0`, is rescaled by a factor
learned with one zeroth-order step, so that tensors move by different amounts as first-order training
makes them.

After the step's update, with u a Gaussian vector of one entry per tensor and s each tensor's scale of
the probe (below), two more forward passes give

.. math::
    \hat g = \frac{L(\theta_0 + (1 + \epsilon_p s\odot u)\Delta) - L(\theta_0 + (1 - \epsilon_p s\odot u)\Delta)}{2\epsilon_p},
    \qquad \theta \leftarrow \theta_0 + \mathrm{clip}(1 - \eta_p\,\hat g\, s\odot u,\ 1-\tau,\ 1+\tau)\,\Delta.

The paper learns γ, re-initialised each time to :math:`\lVert\Delta\rVert`, and scales Δ by
:math:`\gamma/\lVert\Delta\rVert`. ``reading`` picks what ε_p and η_p perturb: ``"ratio"`` (zobench's
default, s = 1) perturbs the factor γ/‖Δ‖ itself, the same relative change for every tensor; ``"gamma"``
(s = 1/‖Δ‖, the restatement's letter) perturbs γ, so a tensor that has drifted little gets a factor far
from 1 (ε_p = 0.1 on a drift of norm 1e-3 scales it 100×, until the clip). θ₀ is kept: a copy of the
trainable tensors taken at the first step, one parameter-sized buffer (``anchor``, in ``state_dict``);
it could not be regenerated from seeds, since θ₀ is the model's own weights. The projection's two losses
join the step's record, so replay rebuilds it; the probes are regenerated from a hash of the step's seed.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .layers import layer_seed

READINGS = ("ratio", "gamma")


class DriftProjection(NamedTuple):
    every: int = 50  # κ
    eps: float = 0.1  # ε_p
    lr: float = 2.0  # η_p
    clip: float = 0.2  # τ
    reading: str = "ratio"
    buffers: tuple[str, ...] = ("anchor",)

    @property
    def name(self) -> str:
        return f"drift projection every {self.every}"

    def prepare(self, optimizer) -> None:
        """Keeps θ₀: each tensor as the first step finds it."""
        for _, param, state in optimizer._parameters():
            if "anchor" not in state:
                state["anchor"] = param.detach().clone()

    @torch.no_grad()
    def apply(self, optimizer, step: int, seed: int) -> None:
        """The projection, on the steps that are multiples of κ (after their update)."""
        if step % self.every:
            return
        tensors = [(param, state["anchor"]) for _, param, state in optimizer._parameters()]
        norms = [float((param - anchor).double().norm()) for param, anchor in tensors]
        generator = torch.Generator().manual_seed(layer_seed(seed))
        directions = torch.randn(len(tensors), generator=generator, dtype=torch.float64).tolist()
        if self.reading == "gamma":
            directions = [u / norm if norm else 0.0 for u, norm in zip(directions, norms)]
        losses, factor = [], [1.0] * len(tensors)  # factor: the scale of Δ that θ holds now
        try:
            for sign in (1.0, -1.0):
                wanted = [1.0 + sign * self.eps * u for u in directions]
                _rescale(tensors, factor, wanted)
                factor = wanted
                losses.append(optimizer.loss())
        except FloatingPointError:
            _rescale(tensors, factor, [1.0] * len(tensors))
            raise
        grad = (losses[0] - losses[1]) / (2.0 * self.eps)
        low, high = 1.0 - self.clip, 1.0 + self.clip
        _rescale(tensors, factor, [min(high, max(low, 1.0 - self.lr * grad * u)) for u in directions])


def _rescale(tensors, current: list[float], wanted: list[float]) -> None:
    """θ = θ₀ + current·Δ becomes θ₀ + wanted·Δ, in place: θ ← θ₀ + (wanted/current)(θ − θ₀)."""
    for (param, anchor), now, then in zip(tensors, current, wanted):
        if now != then:
            param.sub_(anchor).mul_(then / now).add_(anchor)

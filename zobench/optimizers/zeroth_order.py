r"""The zeroth-order optimizer: a composition of the four ablation axes.

* **direction sampler** (:mod:`.noise`): draws the probe noise, regenerated from a per-step seed;
* **gradient estimator**: the two-point (central) SPSA estimate
  :math:`\hat g = (\mathcal L(\theta + \epsilon d) - \mathcal L(\theta - \epsilon d)) / 2\epsilon`,
  a scalar — the directional derivative along the probe :math:`d`;
* **momentum schedule** (:mod:`.schedules`): turns one input per step into a direction :math:`n_t`;
* **placement**: ``g`` puts the schedule on the gradient estimate (probe :math:`d = z`, input
  :math:`\hat g z`, :math:`\theta \leftarrow \theta - \eta n_t`; ZO-AdaMM), ``delta`` puts it on the
  perturbation (input :math:`z`, probe = the schedule's first moment,
  :math:`\theta \leftarrow \theta - \eta \hat g n_t`; ZO-AdaMU).

Memory: the parameters are perturbed in place and the noise is regenerated in each pass, one tensor
at a time, so the step needs the inference memory, the schedule's buffers, and a few temporaries of
the largest single parameter tensor.

A step makes three passes over the parameters (MeZO makes four): :math:`+\epsilon d`, then
:math:`-2\epsilon d`, then one pass that restores (:math:`+\epsilon d`) and applies the update with
the same regenerated noise. ``fused=False`` gives MeZO's separate restore and update passes.
``cache_noise=True`` draws the noise once per step and keeps it for the later passes: one more copy
of the trainable parameters (two for a two-part sampler) in exchange for two fewer regenerations, with
bitwise the same result as the default.

The in-place restore is exact up to floating-point rounding, not bitwise: :math:`\mathrm{fl}(\theta +
\epsilon z)` cannot be inverted where :math:`|\epsilon z| \gg |\theta|` (many :math:`\theta` round to the
same value), so no in-place scheme without a stored copy restores every fp32 value bit for bit.
``tests/test_zeroth_order.py`` bounds the drift at a few units in the last place.

Weight decay (``weight_decay`` per parameter group; groups from :func:`decay_groups` skip biases
and norms as MeZO does) is coupled L2 in placement ``g`` for schedules without decoupled decay
(:math:`x = \hat g z + \lambda\theta`) and decoupled (:math:`\theta \leftarrow (1 - \eta\lambda)\theta`)
otherwise; in placement ``delta`` the moments never see a gradient, so decay is always decoupled.
"""

from __future__ import annotations

import math

import torch

from .noise import NoiseStream, Sample, Sampler, step_seed
from .schedules import MomentumSchedule

PLACEMENTS = ("g", "delta")


def is_real(value) -> bool:
    """A finite int or float (``True`` is no number here, though Python says it is one)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_number(name: str, value, low: float = 0.0, *, strict: bool = False) -> None:
    """Refuses, in one line, anything but a finite number ``>= low`` (``> low`` when ``strict``)."""
    if not is_real(value) or not (value > low if strict else value >= low):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {low:g}, not {value!r}")


class NonFiniteLossError(FloatingPointError):
    """A NaN or infinite loss; the parameters were restored before this was raised."""


class ZerothOrder(torch.optim.Optimizer):
    """Forward-only optimizer built from a sampler, a schedule and a placement.

    ``step(closure)`` calls ``closure()`` twice under ``torch.no_grad()``; the closure returns the
    loss on the current batch. After a step, ``last_seed`` and ``last_projected_grad`` hold the
    step's seed and :math:`\\hat g`: with the initial weights, the sequence of those pairs (and the
    schedule state) reconstructs the parameters exactly.
    """

    def __init__(self, params, *, schedule: MomentumSchedule, placement: str, sampler: Sampler,
                 lr: float, eps: float = 1e-3, weight_decay: float = 0.0, seed: int = 0,
                 cache_noise: bool = False,
                 fused: bool = True):
        if placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, not {placement!r}")
        check_number("lr", lr)
        check_number("eps", eps, strict=True)
        check_number("weight_decay", weight_decay)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, not {seed!r}")
        for name, value in (("fused", fused), ("cache_noise", cache_noise)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, not {value!r}")
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay})
        self.schedule, self.placement, self.sampler = schedule, placement, sampler
        self.eps, self.seed, self.fused = eps, seed, fused
        self.cache_noise, self._noise_cache = cache_noise, {}
        self.steps = 0
        self.noise = NoiseStream()
        self.last_seed: int | None = None
        self.last_projected_grad: float | None = None

    def _parameters(self):
        """(group, parameter, its state) for every trainable parameter, in a fixed order."""
        for group in self.param_groups:
            for param in group["params"]:
                if param.requires_grad:
                    state = self.state[param]
                    if len(state) < len(self.schedule.buffers):
                        for name in self.schedule.buffers:
                            state[name] = torch.zeros_like(param, memory_format=torch.preserve_format)
                    yield group, param, state

    def _sample(self, param) -> Sample:
        """The step's noise for ``param``: regenerated in each pass, or drawn once and kept."""
        if not self.cache_noise:
            return self.sampler(self.noise, param, self.steps)
        if param not in self._noise_cache:
            self._noise_cache[param] = self.sampler(self.noise, param, self.steps)
        return self._noise_cache[param]

    def _probe(self, state, sample: Sample) -> torch.Tensor:
        if self.placement == "g":
            return sample.fresh
        return self.schedule.preview(state, sample, self.steps)

    def _perturb(self, seed: int, scale: float) -> None:
        """θ ← θ + scale·ε·d, regenerating the probe d of step seed ``seed``."""
        self.noise.restart(seed)
        for _, param, state in self._parameters():
            param.add_(self._probe(state, self._sample(param)), alpha=scale * self.eps)

    def _update(self, group, param, state, sample: Sample, projected_grad: float) -> None:
        lr, decay = group["lr"], group["weight_decay"]
        coupled = self.placement == "g" and not self.schedule.decoupled_decay
        if self.placement == "g":
            estimate = sample.fresh.mul_(projected_grad)  # the probe is spent: reuse its memory
            if decay and coupled:
                estimate.add_(param, alpha=decay)
            direction, step_size = self.schedule.update(state, Sample(estimate), self.steps), lr
        else:
            direction, step_size = self.schedule.update(state, sample, self.steps), lr * projected_grad
        if decay and not coupled:
            param.mul_(1.0 - lr * decay)
        param.add_(direction, alpha=-step_size)

    def _restore_and_update(self, seed: int, projected_grad: float) -> None:
        if not self.fused:
            self._perturb(seed, +1.0)
        self.noise.restart(seed)
        for group, param, state in self._parameters():
            sample = self._sample(param)
            if self.fused:
                param.add_(self._probe(state, sample), alpha=self.eps)
            self._update(group, param, state, sample, projected_grad)

    @torch.no_grad()
    def step(self, closure) -> float:
        """One SPSA step; returns the loss at θ + εd (MeZO's convention)."""
        self.steps += 1  # the passes of step t see t (the anneal, the bias corrections)
        seed = step_seed(self.seed, self.steps)
        self._perturb(seed, +1.0)
        loss_plus = float(closure())
        self._perturb(seed, -2.0)
        loss_minus = float(closure())
        if not (math.isfinite(loss_plus) and math.isfinite(loss_minus)):
            self._perturb(seed, +1.0)
            self._noise_cache.clear()
            self.steps -= 1
            raise NonFiniteLossError(f"non-finite loss at step {self.steps + 1} "
                                     f"(loss+ = {loss_plus}, loss- = {loss_minus})")
        self._finish(seed, (loss_plus - loss_minus) / (2.0 * self.eps))
        return loss_plus

    @torch.no_grad()
    def replay(self, seed: int, projected_grad: float) -> None:
        """Re-applies a logged step without evaluating any loss.

        The passes and their arithmetic are those of :meth:`step`, so replaying a run's seed log
        from its initial weights reproduces its parameters and state bit for bit.
        """
        if seed != step_seed(self.seed, self.steps + 1):
            raise ValueError(f"seed log does not match: step {self.steps + 1} of seed {self.seed} "
                             f"has seed {step_seed(self.seed, self.steps + 1)}, the log says {seed}")
        self.steps += 1
        self._perturb(seed, +1.0)
        self._perturb(seed, -2.0)
        self._finish(seed, projected_grad)

    def _finish(self, seed: int, projected_grad: float) -> None:
        self._restore_and_update(seed, projected_grad)
        self._noise_cache.clear()
        self.last_seed, self.last_projected_grad = seed, projected_grad

    def state_dict(self):
        state = super().state_dict()
        state["zo"] = {"steps": self.steps, "seed": self.seed, "eps": self.eps}
        return state

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        zo = state_dict.pop("zo")
        super().load_state_dict(state_dict)
        self.steps, self.seed, self.eps = zo["steps"], zo["seed"], zo["eps"]


def _exempt_from_decay(module: torch.nn.Module, name: str) -> bool:
    """Biases and every parameter of a normalisation layer (LayerNorm, RMSNorm, BatchNorm, ...)."""
    return name == "bias" or "norm" in type(module).__name__.lower()


def decay_groups(model: torch.nn.Module, weight_decay: float | None = None) -> list[dict]:
    """Two parameter groups: decayed weights, and biases/norm parameters without decay (as MeZO).

    Without ``weight_decay`` the decayed group takes the optimizer's own ``weight_decay``.
    """
    decayed, exempt, seen = [], [], set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if param.requires_grad and param not in seen:
                seen.add(param)
                (exempt if _exempt_from_decay(module, name) else decayed).append(param)
    groups = [{"params": decayed}, {"params": exempt, "weight_decay": 0.0}]
    if weight_decay is not None:
        groups[0]["weight_decay"] = weight_decay
    return [group for group in groups if group["params"]]

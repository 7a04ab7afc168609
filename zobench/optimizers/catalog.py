"""The built-in optimizers: each one a short composition of sampler, schedule and placement.

Names: ``zo-sgd`` (MeZO), ``zo-adamu`` (ZO-AdaMU, Algorithm 1; the same as ``zo-adamu@delta``), and
``zo-{adamu,adam,adamw,adamax,adamm}@{delta,g}`` — the ten cells of the paper's Table 3 — plus the
first-order baselines ``fo-{sgd,adam,adamw,adamax}``. The learning rate has no default: it depends
on the model and task far too much for any default to be honest.
"""

from __future__ import annotations

import functools

import torch

from . import noise, schedules
from .anneal import AnnealSchedule
from .first_order import first_order
from .registry import BACKWARD_IN_FORWARDS, register
from .zeroth_order import PLACEMENTS, ZerothOrder, check_number, is_real

SAMPLERS = {"gaussian": noise.gaussian, "rademacher": noise.rademacher}


def _check_momentum(betas=(0.9, 0.999), sigma=1e-8) -> None:
    """Eager checks of the adaptive schedules' arguments, so a bad suite value fails at load time."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2 or not all(is_real(b) and 0 <= b < 1 for b in betas):
        raise ValueError(f"betas must be two numbers in [0, 1), not {betas!r}")
    check_number("sigma", sigma, strict=True)


def _sampler(direction: str):
    if direction not in SAMPLERS:
        raise ValueError(f"direction must be one of {sorted(SAMPLERS)}, not {direction!r}")
    return SAMPLERS[direction]


@register("zo-sgd", family="zo", forward_passes=2, state_buffers=0, schedule="sgd",
          description="MeZO: SPSA estimate times z, no momentum")
def zo_sgd(params, *, lr, eps=1e-3, weight_decay=0.0, direction="gaussian", seed=0, fused=True, cache_noise=False):
    return ZerothOrder(params, schedule=schedules.sgd(), placement="g", sampler=_sampler(direction),
                       lr=lr, eps=eps, weight_decay=weight_decay, seed=seed, fused=fused,
                       cache_noise=cache_noise)


# name -> (schedule factory, parameter-sized buffers, default weight decay, description)
ADAPTIVE = {
    "adam": (schedules.adam, 2, 0.0, "Adam"),
    "adamw": (functools.partial(schedules.adam, decoupled_decay=True), 2, 0.01, "AdamW (decoupled decay)"),
    "adamax": (schedules.adamax, 2, 0.0, "AdaMax"),
    "adamm": (schedules.adamm, 3, 0.0, "AdaMM (AMSGrad, as ZO-AdaMM)"),
}
WHERE = {"g": "on the gradient estimate", "delta": "on the perturbation"}
SYMBOL = {"g": "g", "delta": "δ"}


def _adaptive_factory(make_schedule, placement, default_decay):
    def factory(params, *, lr, eps=1e-3, betas=(0.9, 0.999), sigma=1e-8, weight_decay=default_decay,
                direction="gaussian", seed=0, fused=True, cache_noise=False):
        _check_momentum(betas, sigma)
        schedule = make_schedule(beta1=betas[0], beta2=betas[1], sigma=sigma)
        return ZerothOrder(params, schedule=schedule, placement=placement, sampler=_sampler(direction),
                           lr=lr, eps=eps, weight_decay=weight_decay, seed=seed, fused=fused,
                           cache_noise=cache_noise)
    return factory


for _name, (_schedule, _buffers, _decay, _label) in ADAPTIVE.items():
    for _placement in PLACEMENTS:
        register(f"zo-{_name}@{_placement}", family="zo", forward_passes=2, state_buffers=_buffers,
                 schedule=_name, placement=SYMBOL[_placement], description=f"{_label} momentum {WHERE[_placement]}")(
            _adaptive_factory(_schedule, _placement, _decay))


def _adamu_factory(placement):
    def factory(params, *, lr, eps=1e-3, sigma=1e-8, T1=1024, T2=None, T3=None, total_steps=None,
                last_phase="eq7", denominator="alg1", phi_alpha=1.0, phi_beta1=0.1, phi_beta2=1.5,
                weight_decay=0.0, seed=0, fused=True, cache_noise=False):
        _check_momentum(sigma=sigma)
        anneal = AnnealSchedule.for_run(total_steps, T1=T1, T2=T2, T3=T3, last_phase=last_phase,
                                        phi_alpha=phi_alpha, phi_beta1=phi_beta1, phi_beta2=phi_beta2)
        sampler = noise.uncertain_gaussian(anneal) if placement == "delta" else noise.gaussian
        return ZerothOrder(params, schedule=schedules.adamu(anneal, sigma, denominator),
                           placement=placement, sampler=sampler, lr=lr, eps=eps,
                           weight_decay=weight_decay, seed=seed, fused=fused,
                           cache_noise=cache_noise)
    return factory


register("zo-adamu", family="zo", forward_passes=2, state_buffers=1, schedule="adamu", placement="δ",
         description="ZO-AdaMU, Algorithm 1 (= zo-adamu@delta)")(_adamu_factory("delta"))
for _placement in PLACEMENTS:
    register(f"zo-adamu@{_placement}", family="zo", forward_passes=2, state_buffers=1, schedule="adamu",
             placement=SYMBOL[_placement],
             description=f"AdaMU annealed momentum {WHERE[_placement]}")(_adamu_factory(_placement))


FIRST_ORDER = {
    "sgd": (torch.optim.SGD, 0, "SGD by backpropagation"),
    "adam": (torch.optim.Adam, 2, "Adam by backpropagation"),
    "adamw": (torch.optim.AdamW, 2, "AdamW by backpropagation"),
    "adamax": (torch.optim.Adamax, 2, "AdaMax by backpropagation"),
}


def _first_order_factory(torch_optimizer):
    def factory(params, *, lr, **hyperparameters):
        check_number("lr", lr)  # torch's SGD takes a NaN
        return first_order(torch_optimizer)(params, lr=lr, **hyperparameters)
    return factory


for _name, (_torch_optimizer, _buffers, _label) in FIRST_ORDER.items():
    register(f"fo-{_name}", family="fo", forward_passes=1 + BACKWARD_IN_FORWARDS, state_buffers=_buffers,
             schedule=_name, description=_label)(_first_order_factory(_torch_optimizer))

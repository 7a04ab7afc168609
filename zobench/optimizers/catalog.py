"""The built-in optimizers: each one a short composition of sampler, schedule and placement.

Names: ``zo-sgd`` (MeZO), ``zo-adamu`` (ZO-AdaMU, Algorithm 1; the same as ``zo-adamu@delta``), and
``zo-{adamu,adam,adamw,adamax,adamm}@{delta,g}`` — the ten cells of the paper's Table 3 —; ZO-Bench's
methods (Zhang et al., ICML 2024) ``zo-sgd-sign``, ``zo-sgd-mmt``, ``zo-sgd-cons``, ``zo-adam`` (another
name of ``zo-adam@g``) and ``forward-grad``; the 2024–2026 methods ``hizoo``, ``lozo``, ``lozo-m``,
``subzero``, ``sparse-mezo``, ``fzoo`` and ``zo-muon``; and the first-order baselines
``fo-{sgd,adam,adamw,adamax}``.
The learning rate has no default: it depends on the model and task far too much for any default to be
honest. docs/optimizers.md tables them all with their forward passes and buffers.
"""

from __future__ import annotations

import functools

import torch

from . import estimators, noise, schedules
from .anneal import AnnealSchedule
from .first_order import first_order
from .registry import BACKWARD_IN_FORWARDS, REGISTRY, register
from .zeroth_order import PLACEMENTS, ZerothOrder, check_count, check_number, is_real

# ``direction``: Gaussian draws (MeZO's), packed-bit signs, or windows of the shared Gaussian table
SAMPLERS = {"gaussian": noise.gaussian, "rademacher": noise.rademacher, "table": noise.noise_table()}


def _check_momentum(betas=(0.9, 0.999), sigma=1e-8) -> None:
    """Eager checks of the adaptive schedules' arguments, so a bad suite value fails at load time."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2 or not all(is_real(b) and 0 <= b < 1 for b in betas):
        raise ValueError(f"betas must be two numbers in [0, 1), not {betas!r}")
    check_number("sigma", sigma, strict=True)


def _check_unit_interval(name: str, value) -> None:
    if not is_real(value) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1), not {value!r}")


def _check_subspace(rank, period) -> None:
    """The rank of a low-rank or subspace probe and the steps its kept factors last."""
    check_count("rank", rank, low=1)
    check_count("period", period, low=1)


def _check_probes(probes, low: int) -> None:
    """A probe count within the forward passes the multi-probe methods declare (at most 64 + 1)."""
    check_count("probes", probes, low=low)
    if probes > 64:
        raise ValueError(f"probes must be at most 64 (the declared forward passes), not {probes}")


def _sampler(direction: str):
    if direction not in SAMPLERS:
        raise ValueError(f"direction must be one of {sorted(SAMPLERS)}, not {direction!r}")
    return SAMPLERS[direction]


def _zo(name, *, forward_passes=2, state_buffers=0, schedule="sgd", placement="g", sampler="gaussian",
        estimator="central", revision=1, description):
    """Registers a zeroth-order composition; every one is replayable from its step records."""
    return register(name, family="zo", forward_passes=forward_passes, state_buffers=state_buffers,
                    schedule=schedule, placement=SYMBOL.get(placement, placement), sampler=sampler,
                    estimator=estimator, replayable=True, revision=revision, description=description)


WHERE = {"g": "on the gradient estimate", "delta": "on the perturbation"}
SYMBOL = {"g": "g", "delta": "δ"}


@_zo("zo-sgd", description="MeZO: SPSA estimate times z, no momentum")
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
        _zo(f"zo-{_name}@{_placement}", state_buffers=_buffers, schedule=_name, placement=_placement,
            description=f"{_label} momentum {WHERE[_placement]}")(_adaptive_factory(_schedule, _placement, _decay))


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


for _placement in PLACEMENTS:
    _zo(f"zo-adamu@{_placement}", state_buffers=1, schedule="adamu", placement=_placement,
        sampler="uncertain-gaussian" if _placement == "delta" else "gaussian",
        description=f"AdaMU annealed momentum {WHERE[_placement]}")(_adamu_factory(_placement))
REGISTRY.alias("zo-adamu", "zo-adamu@delta", "ZO-AdaMU, Algorithm 1 (= zo-adamu@delta)")


# ZO-Bench's methods (Zhang et al., "Revisiting Zeroth-Order Optimization for Memory-Efficient LLM
# Fine-Tuning: A Benchmark", ICML 2024; code: github.com/ZO-Bench/ZO-LLM, zo-bench/trainer.py)

@_zo("zo-sgd-sign", estimator="sign(central)", description="ZO-SGD-Sign: sign of the scalar SPSA estimate times z")
def zo_sgd_sign(params, *, lr, eps=1e-3, weight_decay=0.0, direction="gaussian", seed=0, fused=True):
    r""":math:`\theta \leftarrow \theta - \eta\,\mathrm{sign}(\hat g)\,z` (ZO-Bench: the sign of the scalar
    projected gradient, not of each coordinate; weight decay, which ZO-Bench ignores, is coupled L2)."""
    return ZerothOrder(params, schedule=schedules.sgd(), placement="g", sampler=_sampler(direction),
                       estimator=estimators.signed(estimators.central()), lr=lr, eps=eps,
                       weight_decay=weight_decay, seed=seed, fused=fused)


@_zo("zo-sgd-mmt", state_buffers=1, schedule="momentum", description="ZO-SGD-MMT: heavy-ball momentum on ĝz")
def zo_sgd_mmt(params, *, lr, eps=1e-3, momentum=0.9, weight_decay=0.0, direction="gaussian", seed=0, fused=True):
    r""":math:`b_t = \mu b_{t-1} + \hat g z + \lambda\theta`, :math:`\theta \leftarrow \theta - \eta b_t`:
    ZO-Bench feeds :math:`\hat g z` to ``torch.optim.SGD(momentum=0.9)`` (no dampening, no Nesterov)."""
    _check_unit_interval("momentum", momentum)
    return ZerothOrder(params, schedule=schedules.momentum(momentum), placement="g", sampler=_sampler(direction),
                       lr=lr, eps=eps, weight_decay=weight_decay, seed=seed, fused=fused)


@_zo("zo-sgd-cons", forward_passes=5, estimator="conservative(central)",
     description="ZO-SGD-Cons: keeps the best of θ, θ-ηĝz, θ+ηĝz")
def zo_sgd_cons(params, *, lr, eps=1e-3, direction="gaussian", seed=0, fused=True):
    r"""ZO-SGD whose step is taken only where it lowers the batch loss: of :math:`\{\theta,
    \theta - \eta\hat g z, \theta + \eta\hat g z\}` it keeps the lowest (5 forward passes; see
    :func:`~zobench.optimizers.estimators.conservative`). No weight decay: the trial points are plain
    SGD steps, and a decayed update would not be the point that was evaluated."""
    optimizer = ZerothOrder(params, schedule=schedules.sgd(), placement="g", sampler=_sampler(direction),
                            estimator=estimators.conservative(), lr=lr, eps=eps, seed=seed, fused=fused)
    if any(group["weight_decay"] for group in optimizer.param_groups):
        raise ValueError("zo-sgd-cons takes no weight decay: its trial points are plain SGD steps")
    return optimizer


REGISTRY.alias("zo-adam", "zo-adam@g", "ZO-Adam of ZO-Bench: Adam fed ĝz (= zo-adam@g)")


@register("forward-grad", family="fg", forward_passes=1 + BACKWARD_IN_FORWARDS, closure_cost=1 + BACKWARD_IN_FORWARDS,
          state_buffers=0, schedule="sgd", placement="g", sampler="gaussian", estimator="forward-jvp",
          replayable=True, description="Forward gradient: exact ∇L·z from one forward pass with tangents, times z")
def forward_grad(params, *, lr, weight_decay=0.0, direction="gaussian", seed=0):
    r""":math:`\theta \leftarrow \theta - \eta\,((\nabla L(\theta)\cdot v)\,v + \lambda\theta)`,
    :math:`v \sim \mathcal N(0, I)` (Baydin et al. 2022; ZO-Bench's Forward-Grad, which uses
    ``torch.func.jvp``). One forward pass carries the tangents v of every trainable parameter at once:
    one parameter-sized temporary during the pass, counted as three forward passes (see the registry)."""
    return ZerothOrder(params, schedule=schedules.sgd(), placement="g", sampler=_sampler(direction),
                       estimator=estimators.forward_gradient(), lr=lr, weight_decay=weight_decay, seed=seed)


# The 2024–2026 methods that recent papers compare against

@_zo("hizoo", forward_passes=3, state_buffers=1, schedule="hessian", placement="delta", estimator="central+base",
     description="HiZOO: probes and steps scaled by a diagonal curvature estimate Σ")
def hizoo(params, *, lr, eps=1e-3, hessian_smooth=1e-8, weight_decay=0.0, direction="gaussian", seed=0, fused=True):
    r"""HiZOO (Zhao et al., "Second-Order Fine-Tuning without Pain for LLMs: A Hessian Informed Zeroth-Order
    Optimizer", ICLR 2025): probe :math:`\sqrt\Sigma z`, one more forward pass for :math:`L(\theta)`, Σ
    smoothed from :math:`|L_+ + L_- - 2L_0|` (see :func:`~zobench.optimizers.schedules.hessian_diagonal`)."""
    if not is_real(hessian_smooth) or not 0 <= hessian_smooth <= 1:
        raise ValueError(f"hessian_smooth must be a number in [0, 1], not {hessian_smooth!r}")
    return ZerothOrder(params, schedule=schedules.hessian_diagonal(hessian_smooth, eps), placement="delta",
                       sampler=_sampler(direction), estimator=estimators.central_with_base(), lr=lr, eps=eps,
                       weight_decay=weight_decay, seed=seed, fused=fused)


@_zo("lozo", sampler="low-rank", description="LOZO: low-rank probes U Vᵀ per matrix, V kept for ν steps")
def lozo(params, *, lr, eps=1e-3, rank=1, period=100, weight_decay=0.0, seed=0, fused=True):
    r"""LOZO (Chen et al., "Enhancing Zeroth-Order Fine-Tuning for Language Models with Low-Rank
    Structures", ICLR 2025): MeZO's step with :math:`z = UV^\top` (:func:`~zobench.optimizers.noise.low_rank`);
    defaults r = 1, ν = 100 from LOZO's ``lozo.sh``."""
    _check_subspace(rank, period)
    return ZerothOrder(params, schedule=schedules.sgd(), placement="g", sampler=noise.low_rank(rank, period),
                       lr=lr, eps=eps, weight_decay=weight_decay, seed=seed, fused=fused)


@_zo("lozo-m", sampler="low-rank", schedule="low-rank momentum",
     description="LOZO-M: LOZO with momentum kept in factored form, carried over when V changes")
def lozo_m(params, *, lr, eps=1e-3, rank=1, period=100, momentum=0.9, weight_decay=0.0, seed=0, fused=True):
    r"""LOZO-M (Chen et al., ICLR 2025): LOZO's probes with the momentum :math:`N_t = \beta N_{t-1} +
    (1-\beta)\hat g U_t` of each matrix's m×r factor and :math:`\theta \leftarrow \theta - \eta N_t V^\top`
    (:func:`~zobench.optimizers.schedules.low_rank_momentum`); weight decay is decoupled. Vectors take
    LOZO's plain step. β = 0.9 is zobench's default (the paper's value was not retrieved)."""
    _check_unit_interval("momentum", momentum)
    _check_subspace(rank, period)
    return ZerothOrder(params, schedule=schedules.low_rank_momentum(momentum), placement="g",
                       sampler=noise.low_rank(rank, period), lr=lr, eps=eps, weight_decay=weight_decay,
                       seed=seed, fused=fused)


@_zo("subzero", sampler="subspace", description="SubZero: probes U Z Vᵀ in orthonormal subspaces refreshed every T₀ steps")
def subzero(params, *, lr, eps=1e-3, rank=24, period=1000, weight_decay=0.0, seed=0, fused=True):
    r"""SubZero (Yu et al., "Random Subspace Zeroth-Order Optimization for Memory-Efficient LLM
    Fine-Tuning", ICCV 2025): MeZO's step with :math:`z = UZV^\top` (:func:`~zobench.optimizers.noise.subspace`);
    defaults r = 24, T₀ = 1000 from SubZero's example command."""
    _check_subspace(rank, period)
    return ZerothOrder(params, schedule=schedules.sgd(), placement="g", sampler=noise.subspace(rank, period),
                       lr=lr, eps=eps, weight_decay=weight_decay, seed=seed, fused=fused)


@_zo("fzoo", forward_passes=(3, 65), sampler="rademacher", estimator="normalised(one-sided×N)",
     description="FZOO: N one-sided Rademacher probes, step divided by the spread of their losses")
def fzoo(params, *, lr, eps=1e-3, probes=8, weight_decay=0.0, seed=0, fused=True):
    r"""FZOO (Dang et al., "FZOO: Fast Zeroth-Order Optimizer for Fine-Tuning Large Language Models
    towards Adam-Scale Speed", 2025): :math:`\theta \leftarrow \theta - \eta\, g_t/\sigma_t`,
    :math:`g_t = \frac{1}{\epsilon N}\sum_i (L(\theta+\epsilon u_i) - L(\theta))\,u_i` over N Rademacher probes
    (N + 1 forward passes; 2 ≤ N ≤ 64 here), :math:`\sigma_t` the spread of the N perturbed losses
    (:func:`~zobench.optimizers.estimators.normalised`). N = 8 is zobench's default, not the paper's."""
    _check_probes(probes, low=2)
    return ZerothOrder(params, schedule=schedules.sgd(), placement="g", sampler=noise.rademacher,
                       estimator=estimators.normalised(estimators.one_sided(probes)), lr=lr, eps=eps,
                       weight_decay=weight_decay, seed=seed, fused=fused)


@_zo("sparse-mezo", sampler="magnitude-masked gaussian",
     description="Sparse-MeZO: perturbs and updates only each tensor's smallest-magnitude entries")
def sparse_mezo(params, *, lr, eps=1e-3, sparsity=0.75, weight_decay=0.0, seed=0, fused=True):
    r"""Sparse-MeZO (Liu et al., "Sparse MeZO: Less Parameters for Better Performance in Zeroth-Order LLM
    Fine-Tuning", 2024): MeZO's step with :math:`z \odot m`, m keeping the ``1 - sparsity`` fraction of each
    tensor's entries with the smallest |θ| at the step's start (:func:`~zobench.optimizers.noise.magnitude_masked`;
    the mask costs one byte per parameter). Weight decay, if any, is MeZO's coupled L2 on every entry.
    ``sparsity=0.75`` is zobench's default."""
    _check_unit_interval("sparsity", sparsity)
    return ZerothOrder(params, schedule=schedules.sgd(), placement="g",
                       sampler=noise.magnitude_masked(noise.gaussian, sparsity), lr=lr, eps=eps,
                       weight_decay=weight_decay, seed=seed, fused=fused)


@_zo("zo-muon", forward_passes=(2, 65), sampler="projected", schedule="orthogonalised", estimator="one-sided×N",
     description="ZO-Muon: one-sided probes P Ψ in a kept subspace, estimate orthogonalised by Newton–Schulz")
def zo_muon(params, *, lr, eps=1e-3, probes=4, rank=2, period=100, weight_decay=0.0, seed=0, fused=True):
    r"""ZO-Muon (Lang et al., "Powering Up Zeroth-Order Training via Subspace Gradient Orthogonalization",
    2026): N one-sided probes :math:`z_i = P\Psi_i` (:func:`~zobench.optimizers.noise.projected`) around a
    shared :math:`L(\theta)`, :math:`\hat G = \frac1N\sum_i \hat g_i z_i` and, per matrix,
    :math:`\theta \leftarrow (1-\eta\lambda)\theta - \eta\,\mathrm{msign}(\hat G)`
    (:func:`~zobench.optimizers.schedules.orthogonalised`). Defaults from the released ``lowdim.sh``: N = 4,
    r = 2, P kept 100 steps. Vectors take the plain estimate with the same η (the released code steps
    them with a fixed 1e-7)."""
    _check_probes(probes, low=1)
    _check_subspace(rank, period)
    return ZerothOrder(params, schedule=schedules.orthogonalised(), placement="g", sampler=noise.projected(rank, period),
                       estimator=estimators.one_sided(probes), lr=lr, eps=eps, weight_decay=weight_decay,
                       seed=seed, fused=fused)


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
    register(f"fo-{_name}", family="fo", forward_passes=1 + BACKWARD_IN_FORWARDS, closure_cost=1 + BACKWARD_IN_FORWARDS,
             state_buffers=_buffers, schedule=_name, estimator="backprop",
             description=_label)(_first_order_factory(_torch_optimizer))

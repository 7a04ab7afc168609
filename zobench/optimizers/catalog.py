"""The built-in optimizers: each one a short composition of sampler, estimator and transforms.

Names: ``zo-sgd`` (MeZO), ``zo-adamu`` (ZO-AdaMU, Algorithm 1; the same as ``zo-adamu@delta``), and
``zo-{adamu,adam,adamw,adamax,adamm}@{delta,g}`` — the ten cells of the paper's Table 3 —; ZO-Bench's
methods (Zhang et al., ICML 2024) ``zo-sgd-sign``, ``zo-sgd-mmt``, ``zo-sgd-cons``, ``zo-adam`` (another
name of ``zo-adam@g``) and ``forward-grad``; the 2024–2026 methods ``hizoo``, ``lozo``, ``lozo-m``,
``subzero``, ``sparse-mezo``, ``fzoo`` and ``zo-muon``; the 2025–26 methods ``meazo``, ``zo-mopi``, ``lezo``,
``adamezo``, ``dizo``, ``mezo-svrg``, ``grzo`` and its cores ``grzo-lozo`` and ``grzo-sparse``, and
``agzo``; and the first-order baselines ``fo-{sgd,adam,adamw,adamax}``.
The learning rate has no default: it depends on the model and task far too much for any default to be
honest. docs/optimizers.md tables them all with their forward passes and buffers.
"""

from __future__ import annotations

import torch

from . import estimators, layers, noise, transforms
from .activations import ActivationBases
from .anneal import AnnealSchedule
from .first_order import first_order
from .method import Method, register_method
from .projection import READINGS, DriftProjection
from .registry import REGISTRY, register
from .transforms import (adam, adamax, adamm, adamu, adamw, add_decayed_weights, hessian_diagonal, low_rank_momentum,
                         orthogonalised, partial_orthogonalised, replayed_adam, scale_by_estimate)
from .zeroth_order import PLACEMENTS, check_count, check_number, is_real


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


def _placed(preconditioner, placement: str, coupled: bool = False) -> tuple:
    """The chain of a preconditioner on the perturbation (δ) or on the estimate (g), the decay coupled
    (L2, before it) or decoupled (after it, added by the optimizer)."""
    if placement == "delta":
        return preconditioner, scale_by_estimate()
    return (scale_by_estimate(), add_decayed_weights(), preconditioner) if coupled else (scale_by_estimate(), preconditioner)


WHERE = {"g": "on the gradient estimate", "delta": "on the perturbation"}


@register_method("zo-sgd", description="MeZO: SPSA estimate times z, no momentum")
def zo_sgd():
    return Method()


# name -> (transform, coupled decay, default weight decay, description)
ADAPTIVE = {
    "adam": (adam, True, 0.0, "Adam"),
    "adamw": (adamw, False, 0.01, "AdamW (decoupled decay)"),
    "adamax": (adamax, True, 0.0, "AdaMax"),
    "adamm": (adamm, True, 0.0, "AdaMM (AMSGrad, as ZO-AdaMM)"),
}


def _adaptive(make, placement, coupled):
    def recipe(betas=(0.9, 0.999), sigma=1e-8):
        _check_momentum(betas, sigma)
        return Method(chain=_placed(make(betas[0], betas[1], sigma), placement, coupled))
    return recipe


for _name, (_make, _coupled, _decay, _label) in ADAPTIVE.items():
    for _placement in PLACEMENTS:
        register_method(f"zo-{_name}@{_placement}", description=f"{_label} momentum {WHERE[_placement]}",
                        weight_decay=_decay)(_adaptive(_make, _placement, _coupled))


def _adamu(placement):
    def recipe(sigma=1e-8, T1=1024, T2=None, T3=None, last_phase="eq7", denominator="alg1", phi_alpha=1.0,
               phi_beta1=0.1, phi_beta2=1.5, total_steps=None):
        _check_momentum(sigma=sigma)
        anneal = AnnealSchedule.for_run(total_steps, T1=T1, T2=T2, T3=T3, last_phase=last_phase,
                                        phi_alpha=phi_alpha, phi_beta1=phi_beta1, phi_beta2=phi_beta2)
        around = noise.uncertain if placement == "delta" else None
        return Method(chain=_placed(adamu(anneal, sigma, denominator), placement), sampler=around)
    return recipe


for _placement in PLACEMENTS:
    register_method(f"zo-adamu@{_placement}",
                    description=f"AdaMU annealed momentum {WHERE[_placement]}")(_adamu(_placement))
REGISTRY.alias("zo-adamu", "zo-adamu@delta", "ZO-AdaMU, Algorithm 1 (= zo-adamu@delta)")


# ZO-Bench's methods (Zhang et al., "Revisiting Zeroth-Order Optimization for Memory-Efficient LLM
# Fine-Tuning: A Benchmark", ICML 2024; code: github.com/ZO-Bench/ZO-LLM, zo-bench/trainer.py)

@register_method("zo-sgd-sign", description="ZO-SGD-Sign: sign of the scalar SPSA estimate times z")
def zo_sgd_sign():
    r""":math:`\theta \leftarrow \theta - \eta\,\mathrm{sign}(\hat g)\,z` (ZO-Bench: the sign of the scalar
    projected gradient, not of each coordinate; weight decay, which ZO-Bench ignores, is coupled L2)."""
    return Method(estimator=estimators.signed(estimators.central()))


@register_method("zo-sgd-mmt", description="ZO-SGD-MMT: heavy-ball momentum on ĝz")
def zo_sgd_mmt(momentum=0.9):
    r""":math:`b_t = \mu b_{t-1} + \hat g z + \lambda\theta`, :math:`\theta \leftarrow \theta - \eta b_t`:
    ZO-Bench feeds :math:`\hat g z` to ``torch.optim.SGD(momentum=0.9)`` (no dampening, no Nesterov)."""
    _check_unit_interval("momentum", momentum)
    return Method(chain=_placed(transforms.momentum(momentum), "g", coupled=True))


@register_method("zo-sgd-cons", description="ZO-SGD-Cons: keeps the best of θ, θ-ηĝz, θ+ηĝz")
def zo_sgd_cons():
    r"""ZO-SGD whose step is taken only where it lowers the batch loss: of :math:`\{\theta,
    \theta - \eta\hat g z, \theta + \eta\hat g z\}` it keeps the lowest (5 forward passes; see
    :func:`~zobench.optimizers.estimators.conservative`). No weight decay: the trial points are plain
    SGD steps, and a decayed update would not be the point that was evaluated."""
    return Method(estimator=estimators.conservative(),
                  refuses={"weight_decay": "its trial points are plain SGD steps"})


REGISTRY.alias("zo-adam", "zo-adam@g", "ZO-Adam of ZO-Bench: Adam fed ĝz (= zo-adam@g)")


@register_method("forward-grad", description="Forward gradient: exact ∇L·z from one forward pass with tangents, times z")
def forward_grad():
    r""":math:`\theta \leftarrow \theta - \eta\,((\nabla L(\theta)\cdot v)\,v + \lambda\theta)`,
    :math:`v \sim \mathcal N(0, I)` (Baydin et al. 2022; ZO-Bench's Forward-Grad, which uses
    ``torch.func.jvp``). One forward pass carries the tangents v of every trainable parameter at once:
    one parameter-sized temporary during the pass, counted as three forward passes (see the registry)."""
    return Method(estimator=estimators.forward_gradient())


# The 2024–2026 methods that recent papers compare against

@register_method("hizoo", description="HiZOO: probes and steps scaled by a diagonal curvature estimate")
def hizoo(hessian_smooth=1e-8, rule="released", eps=1e-3):
    r"""HiZOO (Zhao et al., "Second-Order Fine-Tuning without Pain for LLMs: A Hessian Informed Zeroth-Order
    Optimizer", ICLR 2025): probes and steps scaled by a diagonal curvature estimate H, smoothed from
    :math:`|L_+ + L_- - 2L_0|` with one more forward pass for :math:`L(\theta)`. ``rule`` picks the released
    code's reading (the default) or the paper's (:func:`~zobench.optimizers.transforms.hessian_diagonal`)."""
    if not is_real(hessian_smooth) or not 0 <= hessian_smooth <= 1:
        raise ValueError(f"hessian_smooth must be a number in [0, 1], not {hessian_smooth!r}")
    return Method(chain=_placed(hessian_diagonal(hessian_smooth, eps, rule), "delta"),
                  estimator=estimators.central_with_base())


@register_method("lozo", revision=2,
                 description="LOZO: low-rank probes U Vᵀ per matrix, V kept for ν steps")
def lozo(rank=1, period=100):
    r"""LOZO (Chen et al., "Enhancing Zeroth-Order Fine-Tuning for Language Models with Low-Rank
    Structures", ICLR 2025): MeZO's step with :math:`z = UV^\top` (:func:`~zobench.optimizers.noise.low_rank`);
    defaults r = 1, ν = 100 from LOZO's ``lozo.sh``."""
    _check_subspace(rank, period)
    return Method(sampler=noise.low_rank(rank, period))


@register_method("lozo-m", revision=2,
                 description="LOZO-M: LOZO with momentum kept in factored form, carried over when V changes")
def lozo_m(rank=1, period=100, momentum=0.9, first_momentum="zero"):
    r"""LOZO-M (Chen et al., ICLR 2025): LOZO's probes with the momentum :math:`N_t = \beta N_{t-1} +
    (1-\beta)\hat g U_t` of each matrix's m×r factor and :math:`\theta \leftarrow \theta - \eta N_t V^\top`
    (:func:`~zobench.optimizers.transforms.low_rank_momentum`); weight decay is decoupled. Vectors take
    LOZO's plain step. β = 0.9 is zobench's default (the paper's value was not retrieved);
    ``first_momentum`` is zobench's N₀ = 0 (``zero``) or the released code's N₁ = ĝU₁ (``estimate``)."""
    _check_unit_interval("momentum", momentum)
    _check_subspace(rank, period)
    return Method(chain=_placed(low_rank_momentum(momentum, first_momentum), "g"), sampler=noise.low_rank(rank, period))


@register_method("subzero", revision=2,
                 description="SubZero: probes U Z Vᵀ in orthonormal subspaces refreshed every T₀ steps")
def subzero(rank=24, period=1000, scale="paper"):
    r"""SubZero (Yu et al., "Random Subspace Zeroth-Order Optimization for Memory-Efficient LLM
    Fine-Tuning", ICCV 2025): MeZO's step with :math:`z = UZV^\top` (:func:`~zobench.optimizers.noise.subspace`);
    defaults r = 24, T₀ = 1000 from SubZero's example command; ``scale`` picks the paper's UZVᵀ (the default)
    or the released code's √(mn)/r times it."""
    _check_subspace(rank, period)
    return Method(sampler=noise.subspace(rank, period, scale))


@register_method("fzoo", description="FZOO: N one-sided Rademacher probes, step divided by the spread of their losses")
def fzoo(probes=8):
    r"""FZOO (Dang et al., "FZOO: Fast Zeroth-Order Optimizer for Fine-Tuning Large Language Models
    towards Adam-Scale Speed", 2025): :math:`\theta \leftarrow \theta - \eta\, g_t/\sigma_t`,
    :math:`g_t = \frac{1}{\epsilon N}\sum_i (L(\theta+\epsilon u_i) - L(\theta))\,u_i` over N Rademacher probes
    (N + 1 forward passes; 2 ≤ N ≤ 64 here), :math:`\sigma_t` the spread of the N perturbed losses
    (:func:`~zobench.optimizers.estimators.normalised`). N = 8 is zobench's default, not the paper's."""
    _check_probes(probes, low=2)
    return Method(estimator=estimators.normalised(estimators.one_sided(probes)),
                  sampler=noise.rademacher)  # Rademacher by definition


@register_method("sparse-mezo", description="Sparse-MeZO: perturbs and updates only each tensor's smallest-magnitude entries")
def sparse_mezo(sparsity=0.75):
    r"""Sparse-MeZO (Liu et al., "Sparse MeZO: Less Parameters for Better Performance in Zeroth-Order LLM
    Fine-Tuning", 2024): MeZO's step with :math:`z \odot m`, m keeping the ``1 - sparsity`` fraction of each
    tensor's entries with the smallest |θ| at the step's start (:func:`~zobench.optimizers.noise.magnitude_masked`;
    the mask costs one byte per parameter). Weight decay, if any, is MeZO's coupled L2 on every entry.
    ``sparsity=0.75`` is zobench's default."""
    _check_unit_interval("sparsity", sparsity)
    return Method(sampler=lambda direction: noise.magnitude_masked(direction, sparsity))


@register_method("zo-muon", revision=3,
                 description="ZO-Muon: one-sided probes P Ψ in a kept subspace, estimate orthogonalised by Newton–Schulz")
def zo_muon(probes=4, rank=2, period=100):
    r"""ZO-Muon (Lang et al., "Powering Up Zeroth-Order Training via Subspace Gradient Orthogonalization",
    2026): N one-sided probes :math:`z_i = P\Psi_i` (:func:`~zobench.optimizers.noise.projected`) around a
    shared :math:`L(\theta)`, :math:`\hat G = \frac1N\sum_i \hat g_i z_i` and, per matrix,
    :math:`\theta \leftarrow (1-\eta\lambda)\theta - \eta\,\mathrm{msign}(\hat G)`
    (:func:`~zobench.optimizers.transforms.orthogonalised`). Defaults N = 4, r = 2, P kept 100
    steps are zobench's: they were read beside the released ``lowdim.sh``, but not every one is that
    script's value, so none is attributed to it. Vectors take the plain estimate with the same η (the released code steps
    them with a fixed 1e-7)."""
    _check_probes(probes, low=1)
    _check_subspace(rank, period)
    return Method(chain=_placed(orthogonalised(), "g"), estimator=estimators.one_sided(probes),
                  sampler=noise.projected(rank, period))


# The 2025–26 frontier

@register_method("meazo", description="MEAZO: ZO-SGD with one global step size from a scalar second moment of ĝ")
def meazo(beta=0.999, zeta=1e-8, probes=1):
    r"""MEAZO (Dbouk et al., "On Adaptivity in Zeroth-Order Optimization", arXiv 2605.03869, 2026):
    :math:`\theta \leftarrow \theta - \frac{\eta}{\sqrt{\hat v_t} + \zeta}\,\frac1q\sum_i \hat g_i z_i`, with
    :math:`\hat v_t` the bias-corrected average of the squared mean :math:`\hat g`
    (:func:`~zobench.optimizers.estimators.scalar_second_moment`): Adam-like adaptivity for the memory of
    ZO-SGD. q central probes (2q forward passes; the paper's default q = 1). β = 0.999 and ζ = 1e-8 are
    zobench's defaults (Adam's β₂ and σ), not values read in the paper. Weight decay, if any, is
    decoupled, :math:`\theta \leftarrow (1-\eta\lambda)\theta`, not scaled by the adaptive factor."""
    _check_unit_interval("beta", beta)
    check_number("zeta", zeta, strict=True)
    _check_probes(probes, low=1)
    return Method(estimator=estimators.scalar_second_moment(estimators.central(probes), beta, zeta))


@register_method("zo-mopi", revision=2,
                 description="ZO-MOPI: momentum in a kept subspace, its top directions orthogonalised by power iteration")
def zo_mopi(probes=2, rank=2, period=100, momentum=0.9, spectral_rank=1):
    r"""ZO-MOPI (arXiv 2605.09034, 2026): N central probes :math:`z_i = A\Psi_i`
    (:func:`~zobench.optimizers.noise.projected`, A orthonormal m×r kept ν steps), the momentum of their
    r×n estimate, and :math:`\theta \leftarrow (1-\eta\lambda)\theta - \eta A U_tV_t^\top` with the rank-k
    frame from one power-iteration sweep (:func:`~zobench.optimizers.transforms.partial_orthogonalised`).
    2N forward passes. N = 2, r = 2 (as ZO-Muon here), ν = 100, β = 0.9 and k = 1 are zobench's defaults: no value was
    read from the paper or a released script. A orthonormal (as ZO-Muon's P) is zobench's reading of
    the paper's "random subspace sketch"."""
    _check_probes(probes, low=1)
    _check_subspace(rank, period)
    _check_unit_interval("momentum", momentum)
    check_count("spectral_rank", spectral_rank, low=1)
    if spectral_rank > rank:
        raise ValueError(f"spectral_rank must be at most rank ({rank}), not {spectral_rank}")
    return Method(chain=_placed(partial_orthogonalised(momentum, spectral_rank), "g"),
                  estimator=estimators.central(probes), sampler=noise.projected(rank, period))


@register_method("lezo", description="LeZO: MeZO's step on a random subset of the layers, the others untouched")
def lezo(sparsity=0.75):
    r"""LeZO (Wang et al., "Simultaneous Computation and Memory Efficient Zeroth-Order Optimizer for
    Fine-Tuning Large Language Models", arXiv 2410.09823, 2024): MeZO's step with the probe zero outside
    round((1 − ρ)·L) layers chosen at random each step (:func:`~zobench.optimizers.layers.random_layers`;
    a layer is a numbered block, or a module outside the blocks). The unchosen layers are neither
    perturbed nor updated (nor decayed), which is the method's saving: its claim is wall-clock time,
    not forward passes. No rescaling: ĝz estimates the gradient of the chosen layers only, as in the
    paper. ρ = ``sparsity`` = 0.75 is zobench's default. Any sampler (``direction``) applies."""
    _check_unit_interval("sparsity", sparsity)
    return Method(layers=layers.random_layers(1.0 - sparsity))


@register_method("adamezo", description="AdaMeZO: Adam over the last h steps, its moments rebuilt from their seeds, never stored")
def adamezo(betas=(0.9, 0.999), sigma=1e-8, horizon=10):
    r"""AdaMeZO (Cai et al., "AdaMeZO: Adam-style Zeroth-Order Optimizer for LLM Fine-tuning Without
    Maintaining the Moments", arXiv 2605.00650, 2026): :math:`\theta \leftarrow \theta - \eta\, m_t/\sqrt{v_t+\sigma}`
    with both moments truncated to the last h steps and regenerated from their seeds and ĝ in each update
    (:func:`~zobench.optimizers.transforms.replayed_adam`): Adam-like steps at MeZO's memory, for h − 1
    more noise draws per step. h = 10 and the betas are zobench's defaults; weight decay is decoupled."""
    _check_momentum(betas, sigma)
    check_count("horizon", horizon, low=1)
    return Method(chain=_placed(replayed_adam(betas[0], betas[1], sigma, horizon), "g"))


@register_method("dizo", description="DiZO: MeZO, and every κ steps each tensor's drift from θ₀ rescaled by a ZO-learned factor")
def dizo(interval=50, projection_eps=0.1, projection_lr=2.0, clip=0.2, reading="ratio"):
    r"""DiZO (Tan et al., "Harmony in Divergence", NeurIPS 2025, arXiv 2502.03304): MeZO's step, and every
    κ = ``interval`` steps each tensor's drift from the starting weights rescaled by
    :math:`\mathrm{clip}(1 - \eta_p\hat g u, 1-\tau, 1+\tau)`, learned with two more forward passes
    (:class:`~zobench.optimizers.projection.DriftProjection`; θ₀ kept as one buffer). ε_p = 0.1, η_p = 2.0 and
    τ = 0.2 are the released README's example; κ = 50 is its first-order example's interval. ``reading``:
    ``ratio`` (zobench's default) or ``gamma`` (the restatement's letter), see the class."""
    check_count("interval", interval, low=1)
    check_number("projection_eps", projection_eps, strict=True)
    check_number("projection_lr", projection_lr)
    _check_unit_interval("clip", clip)
    if reading not in READINGS:
        raise ValueError(f"reading must be one of {', '.join(READINGS)}, not {reading!r}")
    return Method(after=DriftProjection(interval, projection_eps, projection_lr, clip, reading))


@register_method("mezo-svrg", description="MeZO-SVRG: a full-batch ZO snapshot every q steps as the control variate of the steps between")
def mezo_svrg(period=10, snapshot_scale=10.0):
    r"""MeZO-SVRG (Gautam et al., "Variance-reduced Zeroth-Order Methods for Fine-Tuning Language Models",
    ICML 2024): every q = ``period`` steps a full-batch estimate at a snapshot θ̄ and a step of
    η₁ = ``snapshot_scale`` × η; between, minibatch estimates at θ and at θ̄ along the same z corrected by the
    snapshot's (:func:`~zobench.optimizers.estimators.variance_reduced`). θ̄ is one buffer; the snapshot's
    estimate is two scalars and its regenerated direction. q = 10 and η₁/η₂ = 10 are zobench's defaults.
    It needs the whole training set's loss (the harness's closures carry it); weight decay is MeZO's."""
    check_count("period", period, low=1)
    check_number("snapshot_scale", snapshot_scale, strict=True)
    return Method(estimator=estimators.variance_reduced(period, snapshot_scale))


def _group_relative(groups, reading) -> estimators.Estimator:
    check_count("groups", groups, low=2)  # one group has no spread to normalise by
    return estimators.group_relative(groups, reading)


@register_method("grzo", description="GRZO: one Flipout probe per example, the loss differences normalised over the batch")
def grzo(groups=16, reading="scaled"):
    r"""GRZO (Tan et al., "GRZO: Group-Relative Zeroth-Order Optimization for Large Language Model
    Fine-Tuning", arXiv 2606.02857, 2026): each example of the batch gets its own probe
    :math:`z_i = U \odot r_i s_i^\top` (:func:`~zobench.optimizers.noise.flipout`), its two-sided loss
    difference :math:`\delta_i`, and :math:`\theta \leftarrow \theta - \frac{\eta}{2\epsilon B}\sum_i
    \frac{\delta_i}{s + \varepsilon} z_i` (:func:`~zobench.optimizers.estimators.group_relative`). Two
    forward passes' worth of examples. ``groups`` = 16 is the batch size of every zobench suite, so each
    group is one example, the paper's case; a smaller value gives groups of examples. ``reading``:
    ``scaled`` (the default, δᵢ/(s + ε)) or ``centred`` (GRPO's (δᵢ − δ̄)/(s + ε)). Weight decay, if any,
    is MeZO's coupled L2."""
    return Method(estimator=_group_relative(groups, reading), sampler=noise.flipout)


@register_method("grzo-lozo", revision=2,
                 description="GRZO's estimate as LOZO's core: one low-rank probe per example")
def grzo_lozo(groups=16, reading="scaled", rank=1, period=100):
    r"""GRZO as a drop-in core (arXiv 2606.02857, "+6 as a core"): LOZO's step with one probe
    :math:`z_i = U_i V^\top` per example (fresh :math:`U_i`, the kept V shared) and GRZO's group-relative
    estimate. Each probe drawn by LOZO's own sampler, not Flipout's, is zobench's reading of "drop-in":
    the paper's variants' code was not retrieved. LOZO's defaults r = 1, ν = 100."""
    _check_subspace(rank, period)
    return Method(estimator=_group_relative(groups, reading), sampler=noise.low_rank(rank, period))


@register_method("grzo-sparse", description="GRZO's estimate as Sparse-MeZO's core: one masked probe per example")
def grzo_sparse(groups=16, reading="scaled", sparsity=0.75):
    r"""GRZO as a drop-in core (arXiv 2606.02857): Sparse-MeZO's step, each example's probe masked to
    the smallest-magnitude entries (one mask per step, shared by the probes), with GRZO's
    group-relative estimate. The probes are the ``direction`` option's draws, one per example (zobench's
    reading of "drop-in", as for ``grzo-lozo``)."""
    _check_unit_interval("sparsity", sparsity)
    return Method(estimator=_group_relative(groups, reading),
                  sampler=lambda direction: noise.magnitude_masked(direction, sparsity))


@register_method("agzo", revision=2,
                 description="AGZO: each linear weight probed in the subspace of its inputs, found on the step's base pass")
def agzo(rank=8, power_steps=2):
    r"""AGZO (Lin et al., "AGZO: Activation-Guided Zeroth-Order Optimization for LLM Fine-Tuning", ICML 2026,
    arXiv 2601.17261): on the step's unperturbed pass each trained linear weight's inputs give an
    orthonormal basis A of their top r directions by power iteration, the probe is :math:`\Delta = RA^\top`
    (R Gaussian; other tensors Gaussian, or the ``direction`` option's probe), and
    :math:`\theta \leftarrow \theta - \eta\,\frac{L(\theta+\epsilon\Delta) - L(\theta)}{\epsilon}\,\Delta`
    (:mod:`~zobench.optimizers.activations`). Two forward passes. r = 8 and two
    power steps are zobench's defaults. The probes depend on the batch's activations, not only on seeds,
    so a run is not replayed from its step records (it resumes from its start) and is not split over ranks.
    Weight decay, if any, is MeZO's coupled L2."""
    check_count("rank", rank, low=1)
    check_count("power_steps", power_steps, low=1)
    return Method(estimator=estimators.one_sided(1),
                  sampler=lambda direction: ActivationBases(rank, power_steps).sampler(direction))


FIRST_ORDER = {
    "sgd": (torch.optim.SGD, "SGD by backpropagation"),
    "adam": (torch.optim.Adam, "Adam by backpropagation"),
    "adamw": (torch.optim.AdamW, "AdamW by backpropagation"),
    "adamax": (torch.optim.Adamax, "AdaMax by backpropagation"),
}


def _first_order_factory(torch_optimizer, schedule):
    def factory(params, *, lr, lr_schedule=None, total_steps=None, **hyperparameters):
        check_number("lr", lr)  # torch's SGD takes a NaN
        return first_order(torch_optimizer, schedule)(params, lr=lr, lr_schedule=lr_schedule,
                                                      total_steps=total_steps, **hyperparameters)
    return factory


for _name, (_torch_optimizer, _label) in FIRST_ORDER.items():
    register(f"fo-{_name}", description=_label)(_first_order_factory(_torch_optimizer, _name))

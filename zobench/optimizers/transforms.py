r"""Transforms: the post-estimate part of a zeroth-order step, a chain in optax's manner.

A ZO step ends in a chain of small transforms (:class:`Transform`), each acting on one parameter
tensor's update with its own state (a dict of named buffers, created by the optimizer):

* ``update(state, x, t)`` — absorbs ``x`` (a :class:`~zobench.optimizers.noise.Sample`) and returns
  the direction it gives: a tensor, or a factored ``Sample`` that θ is moved by without forming its
  product (LOZO-M's, ZO-Muon's and ZO-MOPI's low-rank directions); a transform declared with
  ``takes_estimate`` is called as ``update(state, x, t, estimate)`` and sees the step's
  :class:`~zobench.optimizers.estimators.Estimate` (its losses and ĝ), as optax passes extra
  arguments only to the transformations that ask for them;
* ``preview(state, x, t)`` — the direction *after* absorbing ``x``, without touching ``state``: the
  probe, when the transform sits on the perturbation;
* ``linear`` — whether the transform is the identity on its input: a chain of linear transforms
  adds the probes themselves to θ, in the step's single fused pass, never forming the update;
* ``horizon`` — a transform declared with ``horizon=h`` is called as ``update(state, x, t, past)`` with
  the ĝ and regenerated sample of each of the last h steps: moments rebuilt from seeds, not stored.

Three transforms mark where the step's scalars enter, and their order in the chain *is* the
ablation's placement and the kind of weight decay:

* :func:`scale_by_estimate` multiplies by ĝ. A preconditioner before it sits on the perturbation
  (placement δ, ZO-AdaMU: it absorbs z, its preview is the probe, θ moves by ĝ times its output);
  after it, on the gradient estimate (placement g, ZO-AdaMM: it absorbs ĝz).
* :func:`add_decayed_weights` adds λθ (λ the group's ``weight_decay``): before a preconditioner it is
  coupled L2 (Adam), after it decoupled (AdamW).
* :func:`scale_by_learning_rate` multiplies by −η f(k), the group's rate times the
  :mod:`~zobench.optimizers.lr_schedules` factor of the step. It ends every chain; the optimizer adds
  it (and the decay, after the preconditioner, if the chain has none) when the chain does not.

So Adam on the estimate with L2 is ``chain(scale_by_estimate(), add_decayed_weights(), adam())``,
AdamW ``chain(scale_by_estimate(), adamw())`` and Adam on the perturbation ``chain(adam(),
scale_by_estimate())``. :func:`compile_chain` checks a chain's order and names its parts.

Notation: :math:`\sigma` is the small constant of every denominator (the paper's σ = 1e-8);
:math:`b_1 = 1-\beta_1^t`, :math:`b_2 = 1-\beta_2^t` are Adam's bias corrections.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from .anneal import AnnealSchedule
from .noise import Sample, orthonormal

State = dict[str, torch.Tensor]
MARKERS = ("estimate", "decay", "learning_rate")


class Transform(NamedTuple):
    name: str
    buffers: tuple[str, ...] = ()  # names of the parameter-sized buffers kept in the state
    preview: Callable[[State, Sample, int], torch.Tensor] | None = None
    update: Callable[[State, Sample, int], torch.Tensor] | None = None
    linear: bool = False  # the identity on its input: the fused single-pass update survives it
    takes_estimate: bool = False  # update(state, x, t, estimate) also gets the step's losses and ĝ
    initial: float = 0.0  # the value every buffer starts from
    elementwise: bool = False  # each entry's output depends on that entry alone: may run slice by slice
    horizon: int = 0  # update(state, x, t, past) also gets the last ``horizon`` steps' (ĝ, sample), newest first


def transform(name: str, update, preview=None, *, buffers: tuple[str, ...] = (), takes_estimate: bool = False,
              initial: float = 0.0, elementwise: bool = False) -> Transform:
    """A preconditioner from its ``update(state, x, t) -> tensor`` over a plain tensor x, and optionally its
    ``preview`` (needed only to sit on the perturbation); the short way for a plugin's own rule. Declare
    ``elementwise=True`` when each entry's output depends on that entry alone, so that the optimizer may
    run it on slices of a large tensor (:data:`~zobench.optimizers.zeroth_order.PIECE`)."""
    def plain_update(state, x, t, *estimate):
        return update(state, _plain(x), t, *estimate)
    plain_preview = None if preview is None else (lambda state, x, t: preview(state, _plain(x), t))
    return Transform(name, buffers, plain_preview, plain_update, takes_estimate=takes_estimate, initial=initial,
                     elementwise=elementwise)


def scale_by_estimate() -> Transform:
    """× ĝ: where the estimate enters the chain (see the module docstring)."""
    return Transform("estimate", linear=True)


def add_decayed_weights() -> Transform:
    """+ λθ, λ the parameter group's ``weight_decay``: coupled before a preconditioner, decoupled after."""
    return Transform("decay", linear=True)


def scale_by_learning_rate() -> Transform:
    """× −η f(k): the group's learning rate times the schedule's factor at the step."""
    return Transform("learning_rate", linear=True)


class Chain(NamedTuple):
    """A checked chain: its preconditioner and where the estimate and the decay sit around it."""

    transforms: tuple[Transform, ...]
    preconditioner: Transform | None  # None: plain SGD
    placement: str  # "delta": the preconditioner absorbs the perturbation; "g": the estimate
    coupled_decay: bool  # λθ enters the preconditioner's input (L2), rather than θ's shrink

    @property
    def linear(self) -> bool:
        """Every transform is linear: the update adds the probes themselves (one fused pass)."""
        return self.preconditioner is None or self.preconditioner.linear

    @property
    def schedule(self) -> str:
        """The momentum schedule's name, the ablation axis reports pivot on."""
        return "sgd" if self.preconditioner is None else self.preconditioner.name


def compile_chain(transforms) -> Chain:
    """Checks the order of ``transforms`` and completes it: the estimate once, at most one preconditioner
    (buffers are named per preconditioner), the decay at most once, the learning rate last; a missing
    decay goes after the preconditioner (decoupled), a missing learning rate at the end."""
    transforms = list(transforms)
    names = [t.name if t.name in MARKERS else "preconditioner" for t in transforms]
    if names.count("estimate") != 1:
        raise ValueError("a chain has scale_by_estimate() exactly once: where ĝ multiplies decides the placement")
    if names.count("preconditioner") > 1 or names.count("decay") > 1 or names.count("learning_rate") > 1:
        raise ValueError("a chain holds at most one preconditioner, one add_decayed_weights() and one "
                         "scale_by_learning_rate()")
    if "learning_rate" in names[:-1]:
        raise ValueError("scale_by_learning_rate() ends a chain")
    if "decay" not in names:
        at = names.index("learning_rate") if "learning_rate" in names else len(names)
        transforms.insert(at, add_decayed_weights())
        names.insert(at, "decay")
    if "learning_rate" not in names:
        transforms.append(scale_by_learning_rate())
        names.append("learning_rate")
    preconditioner = next((t for t, n in zip(transforms, names) if n == "preconditioner"), None)
    if preconditioner is None:
        return Chain(tuple(transforms), None, "g", False)
    where = names.index("preconditioner")
    if where < names.index("estimate"):
        if names.index("decay") < where:
            raise ValueError("on the perturbation the moments never see a gradient: add_decayed_weights() "
                             "goes after scale_by_estimate()")
        return Chain(tuple(transforms), preconditioner, "delta", False)
    return Chain(tuple(transforms), preconditioner, "g", names.index("decay") < where)


def _plain(x: Sample) -> torch.Tensor:
    if x.jitter is not None:
        raise ValueError("this schedule takes a plain sample; the uncertain sampler belongs to zo-adamu")
    return x.fresh


def _ema(state: State, key: str, x: torch.Tensor, beta: float) -> torch.Tensor:
    """Moves ``state[key]`` to β·state + (1-β)·x in place and returns it."""
    return state[key].mul_(beta).add_(x, alpha=1.0 - beta)


def _ema_preview(state: State, key: str, x: torch.Tensor, beta: float) -> torch.Tensor:
    return torch.add(state[key] * beta, x, alpha=1.0 - beta)


def _corrected_first_moment(beta1: float):
    """The δ probe of Adam and AdaMax: the bias-corrected first moment after absorbing x."""
    def preview(state, x, t):
        return _ema_preview(state, "m", _plain(x), beta1).div_(1.0 - beta1 ** t)
    return preview


def momentum(mu: float = 0.9) -> Transform:
    r"""Heavy-ball momentum, torch's ``SGD(momentum=μ)`` without dampening:
    :math:`b_t = \mu b_{t-1} + x_t`, :math:`n_t = b_t` (ZO-Bench's ZO-SGD-MMT); probe :math:`\mu b_{t-1} + x_t`.
    Torch starts :math:`b_1 = x_1`, which the zero-initialised buffer gives exactly.
    """

    def preview(state, x, t):
        return torch.add(state["momentum"] * mu, _plain(x))

    def update(state, x, t):
        return state["momentum"].mul_(mu).add_(_plain(x))

    return Transform("momentum", ("momentum",), preview, update, elementwise=True)


def adam(beta1: float = 0.9, beta2: float = 0.999, sigma: float = 1e-8) -> Transform:
    r"""Adam (with decoupled decay after it in the chain, AdamW: :func:`adamw`):

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) x_t,\quad v_t = \beta_2 v_{t-1} + (1-\beta_2) x_t^2,\quad
        n_t = \frac{m_t / b_1}{\sqrt{v_t / b_2} + \sigma};\qquad \text{probe } m_t / b_1.
    """

    def update(state, x, t):
        x = _plain(x)
        m = _ema(state, "m", x, beta1)
        v = state["v"].mul_(beta2).addcmul_(x, x, value=1.0 - beta2)
        denominator = v.sqrt().div_((1.0 - beta2 ** t) ** 0.5).add_(sigma)
        return torch.div(m, 1.0 - beta1 ** t).div_(denominator)

    return Transform("adam", ("m", "v"), _corrected_first_moment(beta1), update, elementwise=True)


def adamw(beta1: float = 0.9, beta2: float = 0.999, sigma: float = 1e-8) -> Transform:
    """Adam under the name AdamW: the chain places the weight decay after it (decoupled)."""
    return adam(beta1, beta2, sigma)._replace(name="adamw")


def adamax(beta1: float = 0.9, beta2: float = 0.999, sigma: float = 1e-8) -> Transform:
    r"""AdaMax (torch's form): :math:`u_t = \max(\beta_2 u_{t-1}, |x_t| + \sigma)`,
    :math:`n_t = m_t / (b_1 u_t)`; probe :math:`m_t / b_1`.
    """

    def update(state, x, t):
        x = _plain(x)
        m = _ema(state, "m", x, beta1)
        u = torch.maximum(state["u"].mul_(beta2), x.abs().add_(sigma), out=state["u"])
        return torch.div(m, u).div_(1.0 - beta1 ** t)

    return Transform("adamax", ("m", "u"), _corrected_first_moment(beta1), update, elementwise=True)


def adamm(beta1: float = 0.9, beta2: float = 0.999, sigma: float = 1e-8) -> Transform:
    r"""AdaMM, the AMSGrad form of ZO-AdaMM (Chen et al. 2019), without bias correction:
    :math:`\hat v_t = \max(\hat v_{t-1}, v_t)`, :math:`n_t = m_t / (\sqrt{\hat v_t} + \sigma)`;
    probe :math:`m_t`.
    """

    def preview(state, x, t):
        return _ema_preview(state, "m", _plain(x), beta1)

    def update(state, x, t):
        x = _plain(x)
        m = _ema(state, "m", x, beta1)
        v = state["v"].mul_(beta2).addcmul_(x, x, value=1.0 - beta2)
        v_max = torch.maximum(state["v_max"], v, out=state["v_max"])
        denominator = v_max.sqrt().add_(sigma)
        return torch.div(m, denominator, out=denominator)

    return Transform("adamm", ("m", "v", "v_max"), preview, update, elementwise=True)


def adamu(anneal: AnnealSchedule, sigma: float = 1e-8, denominator: str = "alg1") -> Transform:
    r"""ZO-AdaMU's moments: a mixture of a fresh sample and a momentum-centred one.

    With :math:`(\alpha_t, \beta_{1,t}, \beta_{2,t})` from the anneal (Eq. 7), the fresh part
    :math:`\dot z = \sqrt{\alpha_t}\,x.\mathrm{fresh}` and the centred part
    :math:`\ddot z = m_{t-1} + \sqrt{1-\alpha_t}\,x.\mathrm{jitter}` (the two unit draws of
    :func:`~zobench.optimizers.noise.uncertain`, scaled here, slice by slice):

    .. math::
        m_t = \beta_{1,t}\,\dot z + (1-\beta_{1,t})\,\ddot z,\qquad
        v_t = \beta_{2,t}\,\dot z^2 + (1-\beta_{2,t})\,\ddot z^2,\qquad
        n_t = \frac{m_t}{\sqrt{v_t + \sigma}}\ \text{(Algorithm 1, ``denominator="alg1"``)}
        \ \text{or}\ \frac{m_t}{\sqrt{v_t^2 + \sigma}}\ \text{(Eq. 6, ``"eq6"``)}.

    The probe is :math:`m_t`. Only :math:`m` is kept between steps: as in Algorithm 1, :math:`v` is a
    mixture of this step's two samples, not a running average. In placement ``delta`` the sampler is
    :func:`~zobench.optimizers.noise.uncertain` and this is exactly Algorithm 1. In placement
    ``g`` the fresh part is the estimate :math:`\hat g z` (not scaled) and there is no jitter, so
    :math:`\ddot z = m_{t-1}`: the same annealed mixing of new and old, applied to the gradient.
    """
    if denominator not in ("alg1", "eq6"):
        raise ValueError(f"denominator must be 'alg1' or 'eq6', not {denominator!r}")

    def parts(state, x, t):
        values = anneal(t)
        if x.jitter is None:  # placement g: the estimate, and the moment itself as the centred part
            return x.fresh, state["m"], values
        return x.fresh * values.alpha ** 0.5, state["m"] + x.jitter * (1.0 - values.alpha) ** 0.5, values

    def preview(state, x, t):
        fresh, centre, values = parts(state, x, t)
        return torch.add(fresh * values.beta1, centre, alpha=1.0 - values.beta1)

    def update(state, x, t):
        fresh, centre, values = parts(state, x, t)
        v = (fresh * fresh).mul_(values.beta2).addcmul_(centre, centre, value=1.0 - values.beta2)
        if denominator == "eq6":
            v.mul_(v)
        m = state["m"]
        torch.add(fresh * values.beta1, centre, alpha=1.0 - values.beta1, out=m)
        return torch.div(m, v.add_(sigma).sqrt_(), out=v)

    return Transform("adamu", ("m",), preview, update, elementwise=True)


HESSIAN_RULES = ("released", "paper")


def hessian_diagonal(smooth: float, eps: float, rule: str = "released") -> Transform:
    r"""HiZOO's diagonal curvature (Zhao et al., ICLR 2025), on the perturbation. The state H starts at
    ones; with the step's losses :math:`(L_0, L_+, L_-)` from :func:`~.estimators.central_with_base` and
    :math:`c = |L_+ + L_- - 2L_0| / 2\epsilon^2`, the two sources read differently (``rule``):

    * ``"released"`` (the released ``trainer.py``): probe :math:`\sqrt{H_{t-1}}\,z`,
      :math:`H_t = (1-s)H_{t-1} + s\,c\,z^2/H_{t-1}`, :math:`n_t = \sqrt{H_t}\,z` — larger probes and steps
      where the curvature estimate is larger;
    * ``"paper"`` (Algorithm 1, with H the smoothed :math:`\Sigma^{-1}`): probe :math:`z/\sqrt{H_{t-1}}`,
      :math:`H_t = (1-s)H_{t-1} + s\,c\,z^2 H_{t-1}` (the diagonal of
      :math:`c\,\Sigma_{t-1}^{-1/2} z z^\top \Sigma_{t-1}^{-1/2}`), :math:`n_t = z/\sqrt{H_t}` — smaller probes
      and steps where the curvature is higher, the method's stated intent.

    θ moves by :math:`-\eta\,\hat g\,n_t`. The default is ``released``: HiZOO's published numbers came from
    that code. ``smooth`` is s (the released scripts use a constant 1e-8, under which H stays within
    1e-8 of ones and both readings are MeZO with one more forward pass).
    """
    if rule not in HESSIAN_RULES:
        raise ValueError(f"rule must be one of {', '.join(HESSIAN_RULES)}, not {rule!r}")
    paper = rule == "paper"

    def scaled(hessian, z):
        root = hessian.sqrt()
        return torch.div(z, root, out=root) if paper else root.mul_(z)

    def preview(state, x, t):
        return scaled(state["sigma"], _plain(x))

    def update(state, x, t, estimate):
        z = _plain(x)
        base, plus, minus = estimate.losses[:3]
        curvature = abs(plus + minus - 2.0 * base) / (2.0 * eps * eps)
        hessian = state["sigma"]
        observed = (z * z).mul_(hessian) if paper else (z * z).div_(hessian)  # with the previous H
        hessian.mul_(1.0 - smooth).add_(observed, alpha=smooth * curvature)
        return scaled(hessian, z)

    return Transform("hessian", ("sigma",), preview, update, takes_estimate=True, initial=1.0, elementwise=True)


FIRST_MOMENTA = ("zero", "estimate")


def low_rank_momentum(beta: float = 0.9, first: str = "zero") -> Transform:
    r"""LOZO-M's momentum (Chen et al., ICLR 2025), kept in factored form, in placement g.

    For a matrix probed with :math:`z = UV^\top` (:func:`~zobench.optimizers.noise.low_rank`, whose
    sample carries ``factors``), the input is :math:`\hat g\,UV^\top` and only the :math:`m\times r` factor
    is averaged: :math:`N_t = \beta N_{t-1} + (1-\beta)\,\hat g\,U_t`, :math:`n_t = N_t V^\top`. When V is
    redrawn (a new block of ν steps) the old momentum is carried into the new subspace,
    :math:`N \leftarrow N\,V_{\text{old}}^\top V_{\text{new}} / n` (:math:`E[V^\top V] = nI`). The state is
    N and the V it is expressed in, :math:`(m+n)r` numbers per matrix instead of :math:`mn`. Vectors
    (biases, norms), which have no factors, take LOZO's plain step :math:`\hat g z`: no parameter-sized
    buffer at all. The state holds V rather than regenerating the previous block's draw, and a new
    block is recognised by V itself changing, so the schedule needs neither the period nor the stream.

    ``first`` is where N starts: ``"zero"`` (zobench's default, :math:`N_0 = 0`, a zero-initialised average
    as Adam's first moment) or ``"estimate"`` (the released code: :math:`N_1 = \hat g\,U_1`, the first step
    undamped).
    """
    if first not in FIRST_MOMENTA:
        raise ValueError(f"first_momentum must be one of {', '.join(FIRST_MOMENTA)}, not {first!r}")

    def preview(state, x, t):
        raise ValueError("LOZO-M's factored momentum sits on the gradient estimate: use placement g")

    def update(state, x, t):
        if x.factors is None:
            return _plain(x)
        scaled_u, v = x.factors
        if "momentum_factor" not in state:
            state["momentum_factor"], state["basis"] = torch.zeros_like(scaled_u), v.clone()
            if first == "estimate":
                return Sample(factors=(state["momentum_factor"].copy_(scaled_u), v), shape=x.shape)
        elif not torch.equal(state["basis"], v):
            carried = state["momentum_factor"] @ (state["basis"].T @ v).div_(v.shape[0])
            state["momentum_factor"].copy_(carried)
            state["basis"].copy_(v)
        return Sample(factors=(_ema(state, "momentum_factor", scaled_u, beta), v), shape=x.shape)

    return Transform("low-rank momentum", (), preview, update)


NEWTON_SCHULZ = (3.4445, -4.7750, 2.0315)  # Muon's quintic: pushes singular values towards 1 in 5 steps


def newton_schulz(matrix: torch.Tensor, steps: int = 5) -> torch.Tensor:
    r"""Muon's approximate orthogonalisation (Jordan et al. 2024): :math:`X \leftarrow aX + b(XX^\top)X +
    c(XX^\top)^2X`, ``steps`` times, from :math:`X = G/(\lVert G\rVert_F + 10^{-7})`. An odd polynomial of G:
    the singular vectors are kept and each singular value s becomes p(s) ≈ 1 (within about [0.7, 1.2]).
    The Gram matrix is taken on the smaller side."""
    a, b, c = NEWTON_SCHULZ
    tall = matrix.shape[0] > matrix.shape[1]
    x = matrix.T if tall else matrix
    x = x / (x.norm() + 1e-7)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


def orthogonalised(steps: int = 5) -> Transform:
    r"""ZO-Muon's direction (Lang et al. 2026): no momentum, :math:`n_t = \mathrm{msign}(x_t)` for weight
    matrices (trailing dimensions flattened) by :func:`newton_schulz`, and :math:`n_t = x_t` for vectors.

    With ZO-Muon's probes :math:`z = P\Psi` (:func:`~zobench.optimizers.noise.projected`) the estimate
    arrives as factors :math:`x = LR^\top` (L = P, an m×r basis). With the thin QR :math:`L = QS`,
    :math:`x = Q(SR^\top)`, and since the iteration is an odd polynomial in :math:`xx^\top` and Q has
    orthonormal columns, :math:`\mathrm{NS}(Q M) = Q\,\mathrm{NS}(M)`: the paper's subspace update, the
    iteration run on the r×n matrix :math:`M = SR^\top` and one m×r by r×n product back. The same
    value as the full-space iteration up to rounding, at a fraction of its flops (on MiniLM-L6, r = 2,
    the full iteration's m×m or n×n Gram products took most of the step). An estimate without factors
    (coupled weight decay, other samplers) takes the full iteration.
    """

    def update(state, x, t):
        if x.factors is not None:
            left, right = x.factors
            work = torch.promote_types(left.dtype, torch.float32)  # QR has no half-precision kernel
            basis, triangle = (f.to(left.dtype) for f in torch.linalg.qr(left.to(work)))
            return Sample(factors=(basis, newton_schulz(triangle @ right.T, steps).T), shape=x.shape)
        x = _plain(x)
        if x.dim() < 2:
            return x
        return newton_schulz(x.reshape(x.shape[0], -1), steps).view_as(x)

    return Transform("orthogonalised", (), lambda state, x, t: _plain(x), update)


def partial_orthogonalised(beta: float = 0.9, spectral_rank: int = 1) -> Transform:
    r"""ZO-MOPI's direction (arXiv 2605.09034, 2026): momentum kept in the probes' subspace and only its
    top singular directions orthogonalised, by one warm-started power-iteration sweep.

    With the estimate in factored form :math:`x = A\hat G` (:func:`~zobench.optimizers.noise.projected`:
    A the kept m×r basis, :math:`\hat G` the r×n average of :math:`\hat g_i\Psi_i`), per matrix:

    .. math::
        M_t = \beta M_{t-1} + (1-\beta)\hat G_t,\quad V_t = \mathrm{QR}(M_t^\top M_t V_{t-1}),\quad
        U_t = \mathrm{normalise\_columns}(M_t V_t),\quad n_t = A\,U_t V_t^\top,

    k = ``spectral_rank`` columns in V. When A is redrawn (a new block of ν steps) the momentum is carried
    into it, :math:`M \leftarrow A_{\text{new}}^\top A_{\text{old}} M` (both orthonormal: the projection). The
    state is :math:`M^\top` (n×r, the layout of the samples' right factors), V (n×k) and the A they are
    written in: :math:`(r + k)n + mr` numbers per matrix, less than the matrix's mn while r < m. Two choices of zobench's, where the
    restatement we read is silent: V starts as the first k columns of the QR of :math:`M_1^\top` (M's own
    row space, so the first sweep is already warm), and a column of :math:`M_tV_t` is divided by its
    norm plus 1e-12 (a zero momentum gives a zero step, not a NaN). Vectors, which have no factors,
    take the plain estimate.
    """

    def preview(state, x, t):
        raise ValueError("ZO-MOPI's subspace momentum sits on the gradient estimate: use placement g")

    def update(state, x, t):
        if x.factors is None:
            return _plain(x)
        basis, estimate = x.factors  # estimate: Ĝᵀ, n×r, the layout of the samples' right factors
        if "momentum" not in state:
            state["momentum"], state["basis"] = torch.zeros_like(estimate), basis.clone()
        elif not torch.equal(state["basis"], basis):
            state["momentum"].copy_((state["momentum"] @ state["basis"].T) @ basis)
            state["basis"].copy_(basis)
        momentum = _ema(state, "momentum", estimate, beta)  # Mᵀ
        if "singular" not in state:
            state["singular"] = orthonormal(momentum)[:, :spectral_rank].contiguous()
        state["singular"].copy_(orthonormal(momentum @ (momentum.T @ state["singular"])))
        left = momentum.T @ state["singular"]
        left.div_(left.norm(dim=0).add_(1e-12))
        return Sample(factors=(basis @ left, state["singular"]), shape=x.shape)  # A U Vᵀ, never formed

    return Transform("partial-orthogonalised", (), preview, update)


def replayed_adam(beta1: float = 0.9, beta2: float = 0.999, sigma: float = 1e-8, horizon: int = 10) -> Transform:
    r"""AdaMeZO's moments (Cai et al., arXiv 2605.00650, 2026): Adam's two averages over the last
    ``horizon`` = h steps only, rebuilt each step from their seeds and :math:`\hat g` instead of kept:

    .. math::
        m_t = (1-\beta_1)\sum_{j=0}^{h-1}\beta_1^j g_{t-j},\quad
        v_t = (1-\beta_2)\sum_{j=0}^{h-1}\beta_2^j g_{t-j}^2,\quad n_t = \frac{m_t}{\sqrt{v_t + \sigma}},

    :math:`g_k = \hat g_k z_k` (fewer terms in the first h − 1 steps). No parameter-sized buffer: the
    optimizer regenerates the h − 1 earlier probes of each tensor, slice by slice, from the seeds and ĝ it
    keeps as scalars (its ``memory``), which the step records already hold. No bias correction, σ inside
    the root, as the restatement we read writes them."""

    def preview(state, x, t):
        raise ValueError("AdaMeZO's moments are of the gradient estimate: use placement g")

    def update(state, x, t, past=()):
        g = _plain(x)
        m, v = g * (1.0 - beta1), (g * g).mul_(1.0 - beta2)
        for lag, (grad, sample) in enumerate(past, start=1):
            earlier = sample.fresh * grad
            m.add_(earlier, alpha=(1.0 - beta1) * beta1 ** lag)
            v.addcmul_(earlier, earlier, value=(1.0 - beta2) * beta2 ** lag)
        return m.div_(v.add_(sigma).sqrt_())

    return Transform("replayed-adam", (), preview, update, elementwise=True, horizon=horizon - 1)

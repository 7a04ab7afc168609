r"""Momentum schedules: how moment buffers absorb one input per step and what direction they give.

A schedule is a small tuple of pure-ish functions over one parameter tensor's state (a dict of
named buffers, zero-initialised by the optimizer), in the spirit of optax's ``(init, update)``:

* ``preview(state, x, t)`` — the first moment *after* absorbing ``x``, without touching ``state``
  (the probe direction when momentum sits on the perturbation);
* ``update(state, x, t)`` — absorbs ``x`` into ``state`` in place and returns the normalised
  direction :math:`n_t` the parameters move along. A schedule declared with ``takes_estimate``
  is called as ``update(state, x, t, estimate)`` and sees the step's
  :class:`~zobench.optimizers.estimators.Estimate` (its losses and ĝ), as optax passes extra
  arguments only to the transformations that ask for them (a Hessian-informed schedule needs them).

``x`` is a :class:`~zobench.optimizers.noise.Sample`. Where the schedule sits (the placement) decides
what ``x`` is; see :mod:`zobench.optimizers.zeroth_order`:

* placement ``g``: :math:`x_t = \hat g_t z_t` (+ :math:`\lambda\theta` for coupled weight decay), and
  :math:`\theta \leftarrow \theta - \eta\, n_t`;
* placement ``delta``: :math:`x_t` is the sampler's fresh perturbation, the probe is
  ``preview(state, x_t, t)``, and :math:`\theta \leftarrow \theta - \eta\, \hat g_t\, n_t`.

Notation: :math:`\sigma` is the small constant of every denominator (the paper's σ = 1e-8);
:math:`b_1 = 1-\beta_1^t`, :math:`b_2 = 1-\beta_2^t` are Adam's bias corrections.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from .anneal import AnnealSchedule
from .noise import Sample

State = dict[str, torch.Tensor]


class MomentumSchedule(NamedTuple):
    name: str
    buffers: tuple[str, ...]  # names of the parameter-sized buffers kept in the state
    preview: Callable[[State, Sample, int], torch.Tensor]
    update: Callable[[State, Sample, int], torch.Tensor]
    decoupled_decay: bool  # False: in placement g, weight decay enters x as λθ (L2)
    takes_estimate: bool = False  # True: update(state, x, t, estimate) also gets the step's losses and ĝ
    initial: float = 0.0  # the value every buffer starts from
    linear: bool = False  # True: n_t = x_t, so the update adds the probes themselves, never forming x


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


def sgd() -> MomentumSchedule:
    r"""No momentum: :math:`n_t = x_t` (MeZO)."""
    return MomentumSchedule("sgd", (), lambda state, x, t: _plain(x), lambda state, x, t: _plain(x),
                            decoupled_decay=False, linear=True)


def momentum(mu: float = 0.9) -> MomentumSchedule:
    r"""Heavy-ball momentum, torch's ``SGD(momentum=μ)`` without dampening:
    :math:`b_t = \mu b_{t-1} + x_t`, :math:`n_t = b_t` (ZO-Bench's ZO-SGD-MMT); probe :math:`\mu b_{t-1} + x_t`.
    Torch starts :math:`b_1 = x_1`, which the zero-initialised buffer gives exactly.
    """

    def preview(state, x, t):
        return torch.add(state["momentum"] * mu, _plain(x))

    def update(state, x, t):
        return state["momentum"].mul_(mu).add_(_plain(x))

    return MomentumSchedule("momentum", ("momentum",), preview, update, decoupled_decay=False)


def adam(beta1: float = 0.9, beta2: float = 0.999, sigma: float = 1e-8,
         decoupled_decay: bool = False) -> MomentumSchedule:
    r"""Adam (AdamW with ``decoupled_decay``):

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) x_t,\quad v_t = \beta_2 v_{t-1} + (1-\beta_2) x_t^2,\quad
        n_t = \frac{m_t / b_1}{\sqrt{v_t / b_2} + \sigma};\qquad \text{probe } m_t / b_1.
    """

    def update(state, x, t):
        x = _plain(x)
        m = _ema(state, "m", x, beta1)
        v = state["v"].mul_(beta2).addcmul_(x, x, value=1.0 - beta2)
        denominator = (v.sqrt() / (1.0 - beta2 ** t) ** 0.5).add_(sigma)
        return (m / (1.0 - beta1 ** t)).div_(denominator)

    return MomentumSchedule("adamw" if decoupled_decay else "adam", ("m", "v"),
                            _corrected_first_moment(beta1), update, decoupled_decay)


def adamax(beta1: float = 0.9, beta2: float = 0.999, sigma: float = 1e-8) -> MomentumSchedule:
    r"""AdaMax (torch's form): :math:`u_t = \max(\beta_2 u_{t-1}, |x_t| + \sigma)`,
    :math:`n_t = m_t / (b_1 u_t)`; probe :math:`m_t / b_1`.
    """

    def update(state, x, t):
        x = _plain(x)
        m = _ema(state, "m", x, beta1)
        u = torch.maximum(state["u"].mul_(beta2), x.abs().add_(sigma), out=state["u"])
        return m / u / (1.0 - beta1 ** t)

    return MomentumSchedule("adamax", ("m", "u"), _corrected_first_moment(beta1), update,
                            decoupled_decay=False)


def adamm(beta1: float = 0.9, beta2: float = 0.999, sigma: float = 1e-8) -> MomentumSchedule:
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
        return m / v_max.sqrt().add_(sigma)

    return MomentumSchedule("adamm", ("m", "v", "v_max"), preview, update, decoupled_decay=False)


def adamu(anneal: AnnealSchedule, sigma: float = 1e-8, denominator: str = "alg1") -> MomentumSchedule:
    r"""ZO-AdaMU's moments: a mixture of a fresh sample and a momentum-centred one.

    With :math:`(\alpha_t, \beta_{1,t}, \beta_{2,t})` from the anneal (Eq. 7), the fresh part
    :math:`\dot z = x.\mathrm{fresh}` and the centred part :math:`\ddot z = m_{t-1} + x.\mathrm{jitter}`:

    .. math::
        m_t = \beta_{1,t}\,\dot z + (1-\beta_{1,t})\,\ddot z,\qquad
        v_t = \beta_{2,t}\,\dot z^2 + (1-\beta_{2,t})\,\ddot z^2,\qquad
        n_t = \frac{m_t}{\sqrt{v_t + \sigma}}\ \text{(Algorithm 1, ``denominator="alg1"``)}
        \ \text{or}\ \frac{m_t}{\sqrt{v_t^2 + \sigma}}\ \text{(Eq. 6, ``"eq6"``)}.

    The probe is :math:`m_t`. Only :math:`m` is kept between steps: as in Algorithm 1, :math:`v` is a
    mixture of this step's two samples, not a running average. In placement ``delta`` the sampler is
    :func:`~zobench.optimizers.noise.uncertain_gaussian` and this is exactly Algorithm 1. In placement
    ``g`` the fresh part is the estimate :math:`\hat g z` and the jitter is zero, so
    :math:`\ddot z = m_{t-1}`: the same annealed mixing of new and old, applied to the gradient.
    """
    if denominator not in ("alg1", "eq6"):
        raise ValueError(f"denominator must be 'alg1' or 'eq6', not {denominator!r}")

    def parts(state, x, t):
        centre = state["m"] if x.jitter is None else state["m"] + x.jitter
        return x.fresh, centre, anneal(t)

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
        return m / v.add_(sigma).sqrt_()

    return MomentumSchedule("adamu", ("m",), preview, update, decoupled_decay=True)


def hessian_diagonal(smooth: float, eps: float) -> MomentumSchedule:
    r"""HiZOO's diagonal curvature (Zhao et al., ICLR 2025), as its released code computes it, in
    placement δ. :math:`\Sigma` starts at ones; the probe is :math:`\sqrt{\Sigma_{t-1}}\,z`; with the
    step's losses :math:`(L_0, L_+, L_-)` from :func:`~.estimators.central_with_base`,

    .. math::
        \Sigma_t = (1-s)\,\Sigma_{t-1} + s\,\frac{|L_+ + L_- - 2L_0|}{2\epsilon^2}\,\frac{z^2}{\Sigma_{t-1}},
        \qquad n_t = \sqrt{\Sigma_t}\,z,\qquad \theta \leftarrow \theta - \eta\,\hat g\,n_t.

    The paper's Algorithm 1 smooths :math:`\Sigma^{-1}` with that term instead; the code (trainer.py,
    ``zo_Hessian_step_update``) smooths Σ itself and scales probe and update by :math:`\sqrt\Sigma`.
    zobench follows the code, which produced the paper's numbers. ``smooth`` is s (the released
    scripts use a constant 1e-8, under which Σ stays within 1e-8 of ones).
    """

    def preview(state, x, t):
        return state["sigma"].sqrt() * _plain(x)

    def update(state, x, t, estimate):
        z = _plain(x)
        base, plus, minus = estimate.losses[:3]
        curvature = abs(plus + minus - 2.0 * base) / (2.0 * eps * eps)
        sigma = state["sigma"]
        estimate_of_sigma = z * z / sigma  # with the previous Σ, as HiZOO's code
        sigma.mul_(1.0 - smooth).add_(estimate_of_sigma, alpha=smooth * curvature)
        return sigma.sqrt() * z

    return MomentumSchedule("hessian", ("sigma",), preview, update, decoupled_decay=True, takes_estimate=True,
                            initial=1.0)


def low_rank_momentum(beta: float = 0.9) -> MomentumSchedule:
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
    """

    def preview(state, x, t):
        raise ValueError("LOZO-M's factored momentum sits on the gradient estimate: use placement g")

    def update(state, x, t):
        if x.factors is None:
            return _plain(x)
        scaled_u, v = x.factors
        if "momentum_factor" not in state:
            state["momentum_factor"], state["basis"] = torch.zeros_like(scaled_u), v.clone()
        elif not torch.equal(state["basis"], v):
            carried = state["momentum_factor"] @ (state["basis"].T @ v).div_(v.shape[0])
            state["momentum_factor"].copy_(carried)
            state["basis"].copy_(v)
        return (_ema(state, "momentum_factor", scaled_u, beta) @ v.T).view_as(x.fresh)

    return MomentumSchedule("low-rank momentum", (), preview, update, decoupled_decay=True)


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


def orthogonalised(steps: int = 5) -> MomentumSchedule:
    r"""ZO-Muon's direction (Lang et al. 2026): no momentum, :math:`n_t = \mathrm{msign}(x_t)` for weight
    matrices (trailing dimensions flattened) by :func:`newton_schulz`, and :math:`n_t = x_t` for vectors.
    With ZO-Muon's probes :math:`z = P\Psi` (:func:`~zobench.optimizers.noise.projected`) the estimate is
    :math:`PG` with orthonormal P, and since the iteration is an odd polynomial,
    :math:`\mathrm{NS}(PG) = P\,\mathrm{NS}(G)`: the paper's subspace update, computed in the full space
    (more flops than the r×n iteration, no extra memory beyond the m×n temporaries).
    """

    def update(state, x, t):
        x = _plain(x)
        if x.dim() < 2:
            return x
        return newton_schulz(x.reshape(x.shape[0], -1), steps).view_as(x)

    return MomentumSchedule("orthogonalised", (), lambda state, x, t: _plain(x), update, decoupled_decay=True)

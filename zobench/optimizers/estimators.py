r"""Gradient estimators: how a zeroth-order step turns loss evaluations into projected gradients.

An estimator is a small function of a :class:`Probe` (the step's view of the parameters): it moves
:math:`\theta` along the step's probe directions :math:`d_1 \dots d_q`, asks for losses, and returns an
:class:`Estimate` — the loss the step reports and one scalar :math:`\hat g_i` per probe. The optimizer
then updates with :math:`\frac1q \sum_i \hat g_i d_i` (placement ``g``) and restores whatever
displacement the estimator left, fused into its update pass.

Replay comes for free: the optimizer logs every evaluation an estimator asked for, and replaying a
step runs the same estimator with a probe that answers from that log instead of the closure. The
moves, their order and their arithmetic are the same, so the branch a step took (ZO-SGD-Cons keeps
one of three points) is rebuilt bitwise, with no forward pass and nothing for the estimator to declare.
"""

from __future__ import annotations

import math
import statistics
from contextlib import nullcontext
from typing import Callable, NamedTuple, Protocol


class Probe(Protocol):
    """What an estimator may do in a step (implemented by the optimizer)."""

    eps: float  # the perturbation scale ε
    steps: int  # the step being taken, from 1
    memory: dict  # scalars an estimator keeps between steps (saved with the optimizer's state)

    def move(self, scale: float, index: int = 0, unit: str = "eps") -> None:
        """θ ← θ + scale·ε·d_index (``unit="lr"``: scale·η·d_index, η the group's learning rate)."""

    def restore(self) -> None:
        """Moves θ back to where the step started (up to rounding)."""

    def loss(self) -> float:
        """The loss at the current θ (one forward pass)."""

    def part_loss(self, part: int, parts: int) -> float:
        """The loss at the current θ on slice ``part`` of ``parts`` of the batch (the closure's ``part``;
        the whole loss where the problem has no batch to slice)."""

    def derivative(self, index: int = 0) -> tuple[float, float]:
        """(L(θ), ∇L(θ)·d_index) from one forward pass with tangents (forward-mode AD)."""

    def whole_loss(self) -> float:
        """The loss over the whole training set at the current θ (the closure's ``whole``)."""

    def reading(self):
        """A context in which the sampler reads the forward pass (AGZO's activations); a no-op for others."""

    def keep_snapshot(self) -> None:
        """θ̄ ← θ: a copy of the parameters, kept in the optimizer's state (``snapshot``)."""

    def at_snapshot(self):
        """A context in which θ is θ̄ (the two swapped, and swapped back on leaving)."""

    def use_direction(self, index: int, step: int) -> None:
        """Probe ``index`` draws the noise of step ``step`` (a direction regenerated from an earlier step)."""


class Estimate(NamedTuple):
    loss: float  # the loss the step reports
    grads: tuple[float, ...]  # ĝ_i, one per probe direction
    losses: tuple[float, ...] = ()  # the losses evaluated, in the order each estimator documents


class Estimator(NamedTuple):
    name: str
    probes: int  # q, the probe directions a step draws
    estimate: Callable[[Probe], Estimate]
    calls: int  # closure calls per step (the forward passes, unless forward_mode)
    forward_mode: bool = False  # each call is one forward pass with tangents (counts as three)
    independent: bool = False  # its moves never depend on its losses: ranks may split its evaluations
    buffers: tuple[str, ...] = ()  # parameter-sized tensors it keeps in the optimizer's state
    whole_train: bool = False  # it asks for the whole training set's loss (the closure's ``whole``)
    parts: int = 1  # each of its forward passes is this many closure calls on slices of the batch (GRZO)


def central(q: int = 1) -> Estimator:
    r"""Two-point (central) SPSA, MeZO's: :math:`\hat g_i = (L(\theta+\epsilon d_i) - L(\theta-\epsilon d_i))/2\epsilon`,
    averaged over ``q`` probes (2q forward passes); ``losses`` = (L(θ+εd₁), L(θ−εd₁), …). Reports
    :math:`L(\theta+\epsilon d_1)`, as MeZO does."""

    def estimate(probe: Probe) -> Estimate:
        grads, losses = [], []
        for i in range(q):
            probe.move(+1.0, i)
            plus = probe.loss()
            probe.move(-2.0, i)
            minus = probe.loss()
            grads.append((plus - minus) / (2.0 * probe.eps))
            losses += [plus, minus]
            if i < q - 1:
                probe.move(+1.0, i)
        return Estimate(losses[0], tuple(grads), tuple(losses))

    return Estimator("central" if q == 1 else f"central×{q}", q, estimate, 2 * q, independent=True)


def central_with_base() -> Estimator:
    r"""The central estimate plus the loss at θ itself, for schedules that estimate curvature from
    :math:`L(\theta+\epsilon d) + L(\theta-\epsilon d) - 2L(\theta)` (HiZOO). Three forward passes;
    ``losses`` = (L(θ), L(θ+εd), L(θ−εd)); reports L(θ+εd) as MeZO does."""

    def estimate(probe: Probe) -> Estimate:
        base = probe.loss()
        plus, grads, losses = central().estimate(probe)
        return Estimate(plus, grads, (base, *losses))

    return Estimator("central+base", 1, estimate, 3, independent=True)


def one_sided(q: int = 1) -> Estimator:
    r"""One-sided differences from a shared base: :math:`\hat g_i = (L(\theta+\epsilon d_i) - L(\theta))/\epsilon`
    (q + 1 forward passes); ``losses`` = (L(θ), L(θ+εd₁), …). Reports :math:`L(\theta)`. The base pass, at
    the unperturbed θ before any probe is drawn, is where a sampler that reads the data reads it (AGZO)."""

    def estimate(probe: Probe) -> Estimate:
        with probe.reading():
            base = probe.loss()
        losses = []
        for i in range(q):
            probe.move(+1.0, i)
            losses.append(probe.loss())
            if i < q - 1:
                probe.move(-1.0, i)
        return Estimate(base, tuple((loss - base) / probe.eps for loss in losses), (base, *losses))

    return Estimator("one-sided" if q == 1 else f"one-sided×{q}", q, estimate, q + 1, independent=True)


def normalised(inner: Estimator, floor: float = 1e-8) -> Estimator:
    r"""FZOO's step normalisation (Dang et al., 2025): :math:`\hat g_i / \sigma_t`, with :math:`\sigma_t`
    the sample standard deviation (N − 1 in the denominator) of the step's perturbed losses
    (``losses[1:]``; ``floor`` keeps the step finite when they are all equal). On the one-sided
    estimate with q Rademacher probes this is FZOO's :math:`g_t/\sigma_t`,
    :math:`g_t = \frac{1}{\epsilon N}\sum_i (L(\theta+\epsilon u_i) - L(\theta))\,u_i`: large steps where the
    loss is flat and small where it is steep — normalised SGD without a parameter-sized buffer."""

    def estimate(probe: Probe) -> Estimate:
        loss, grads, losses = inner.estimate(probe)
        spread = statistics.stdev(losses[1:]) if len(losses) > 2 else 0.0
        return Estimate(loss, tuple(g / (spread + floor) for g in grads), losses)

    return Estimator(f"normalised({inner.name})", inner.probes, estimate, inner.calls, independent=inner.independent)


def signed(inner: Estimator) -> Estimator:
    r"""The sign of each scalar estimate, :math:`\mathrm{sign}(\hat g_i)`: the step length no longer
    depends on the size of the loss difference (ZO-SGD-Sign; the sign of the scalar, not elementwise)."""

    def estimate(probe: Probe) -> Estimate:
        loss, grads, losses = inner.estimate(probe)
        return Estimate(loss, tuple(float((g > 0) - (g < 0)) for g in grads), losses)

    return Estimator(f"sign({inner.name})", inner.probes, estimate, inner.calls, independent=inner.independent)


GROUP_READINGS = ("scaled", "centred")


def group_relative(groups: int, reading: str = "scaled", floor: float = 1e-8) -> Estimator:
    r"""GRZO's estimate (Tan et al., "GRZO: Group-Relative Zeroth-Order Optimization for Large Language
    Model Fine-Tuning", arXiv 2606.02857, 2026): the batch is cut into ``groups`` slices (one example each
    when ``groups`` is the batch size, the paper's case), slice i is evaluated at :math:`\theta \pm \epsilon d_i`
    with its own probe, and :math:`\delta_i = L_i(\theta+\epsilon d_i) - L_i(\theta-\epsilon d_i)`,
    normalised over the group as GRPO normalises rewards: :math:`\hat g_i = a_i / 2\epsilon`,
    :math:`a_i = \delta_i / (s + \varepsilon)` with s the population standard deviation of the
    :math:`\delta_i` (``reading="scaled"``, the default, as the restatement we read writes it), or
    :math:`a_i = (\delta_i - \bar\delta) / (s + \varepsilon)` (``"centred"``, GRPO's advantage). The
    update :math:`\frac1B\sum_i \hat g_i d_i` is then the paper's :math:`\frac{1}{2\epsilon B}\sum_i a_i z_i`.

    Every example is evaluated twice, as in MeZO: two forward passes' worth of examples, as
    ``2·groups`` closure calls on slices (``parts``). The paper evaluates all slices in one batched
    forward with Flipout layers; zobench moves θ to each slice's probe point instead, which gives the
    same losses up to rounding with any model, at 2·groups + 1 parameter moves per step instead of
    three. Where the problem has no batch, every slice is the whole loss (2·groups evaluations).
    :math:`\varepsilon` (``floor``) is 1e-8, zobench's choice: the value is not given. Reports the mean
    of the slices' :math:`L_i(\theta+\epsilon d_i)`, MeZO's convention for a batch."""
    if reading not in GROUP_READINGS:
        raise ValueError(f"reading must be one of {', '.join(GROUP_READINGS)}, not {reading!r}")

    def estimate(probe: Probe) -> Estimate:
        deltas, losses = [], []
        for i in range(groups):
            probe.move(+1.0, i)
            plus = probe.part_loss(i, groups)
            probe.move(-2.0, i)
            minus = probe.part_loss(i, groups)
            deltas.append(plus - minus)
            losses += [plus, minus]
            if i < groups - 1:
                probe.move(+1.0, i)
        centre = statistics.fmean(deltas) if reading == "centred" else 0.0
        spread = statistics.pstdev(deltas)
        grads = tuple((delta - centre) / (spread + floor) / (2.0 * probe.eps) for delta in deltas)
        return Estimate(statistics.fmean(losses[0::2]), grads, tuple(losses))

    return Estimator(f"group-relative×{groups}" + ("" if reading == "scaled" else f" ({reading})"), groups,
                     estimate, 2 * groups, independent=True, parts=groups)


def scalar_second_moment(inner: Estimator, beta: float = 0.999, zeta: float = 1e-8) -> Estimator:
    r"""MEAZO's global step size (Dbouk et al., "On Adaptivity in Zeroth-Order Optimization", 2026): every
    :math:`\hat g_i` divided by :math:`\sqrt{\hat v_t} + \zeta`, where :math:`v_t = \beta v_{t-1} + (1-\beta)\bar g_t^2`,
    :math:`\bar g_t` the mean of the step's :math:`\hat g_i` and :math:`\hat v_t = v_t / (1-\beta^t)`. Adam's
    adaptivity with one scalar of state instead of two parameter-sized buffers: the paper's point is that ZO
    estimates carry no per-coordinate information worth a buffer. The scalar lives in the probe's
    ``memory``, so it is saved with the optimizer and rebuilt by replay.

    The restatement we read writes the correction :math:`1-\beta^{t-1}`, which is zero at the first step
    whether t counts from 0 or 1; zobench takes Adam's :math:`1-\beta^t`, the one that makes
    :math:`\hat v_t` unbiased for a constant :math:`\bar g^2`."""

    def estimate(probe: Probe) -> Estimate:
        loss, grads, losses = inner.estimate(probe)
        mean = sum(grads) / len(grads)
        second = beta * probe.memory.get("second_moment", 0.0) + (1.0 - beta) * mean * mean
        probe.memory["second_moment"] = second
        scale = 1.0 / (math.sqrt(second / (1.0 - beta ** probe.steps)) + zeta)
        return Estimate(loss, tuple(g * scale for g in grads), losses)

    return Estimator(f"second-moment({inner.name})", inner.probes, estimate, inner.calls,
                     independent=inner.independent)


def conservative(inner: Estimator | None = None) -> Estimator:
    r"""ZO-SGD-Cons (Zhang et al. 2024, ZO-Bench): after the estimate, evaluate both trial points
    :math:`\theta \mp \eta \hat g d` and keep the lowest of :math:`\{L(\theta), L(\theta-\eta\hat g d),
    L(\theta+\eta\hat g d)\}` by scaling :math:`\hat g` by 1, −1 or 0. Ties are broken as ZO-Bench's
    code does (it compares L(θ−ηĝd) with L(θ) first; an equal loss moves to the later trial point).
    Five forward passes with the central estimate; reports :math:`L(\theta)` (ZO-Bench reports the
    first trial's loss). Only the plain SGD update matches the trial points,
    so this estimator belongs with the ``sgd`` schedule and no weight decay."""
    inner = inner or central()

    def estimate(probe: Probe) -> Estimate:
        current = probe.loss()
        _, (g,), losses = inner.estimate(probe)
        probe.restore()
        probe.move(-g, unit="lr")
        descent = probe.loss()
        probe.move(+2.0 * g, unit="lr")
        ascent = probe.loss()
        if descent > current:  # ZO-Bench's order of comparisons, so ties go as theirs do
            branch = 0.0 if current < ascent else -1.0
        else:
            branch = 1.0 if descent < ascent else -1.0
        return Estimate(current, (branch * g,), (current, *losses, descent, ascent))

    if inner.probes != 1:
        raise ValueError("the conservative estimator takes an estimator with one probe")
    return Estimator(f"conservative({inner.name})", 1, estimate, inner.calls + 3)


def variance_reduced(period: int = 10, snapshot_scale: float = 10.0) -> Estimator:
    r"""MeZO-SVRG's estimate (Gautam et al., "Variance-reduced Zeroth-Order Methods for Fine-Tuning
    Language Models", ICML 2024): every ``period`` steps (the first included) a full-batch estimate
    :math:`g = \hat g_F z_s` at θ, kept as the snapshot θ̄ = θ and as two scalars (its step and ĝ_F), and a
    step :math:`\theta \leftarrow \theta - \eta_1 g`; on the steps between, the control variate

    .. math::
        \theta \leftarrow \theta - \eta_2\,[(\hat g_I(\theta) - \hat g_I(\bar\theta))\,z + \hat g_F z_s],

    both minibatch estimates on the step's batch along the same z, the second with θ swapped for θ̄.
    :math:`\eta_2` is the learning rate and :math:`\eta_1 = ` ``snapshot_scale`` × η₂. The snapshot
    direction z_s is regenerated from its step's seed, never stored; θ̄ is one parameter-sized buffer.
    Two probe directions (z and z_s), so the update's average over probes halves each scalar: they are
    returned doubled. Forward passes: 4 per step between snapshots; a snapshot costs two passes over
    the whole training set (counted as the batches they take). ``losses`` = (L₊, L₋) at a snapshot,
    (L₊, L₋, L̄₊, L̄₋) between."""

    def estimate(probe: Probe) -> Estimate:
        if (probe.steps - 1) % period == 0:
            probe.keep_snapshot()
            probe.move(+1.0)
            plus = probe.whole_loss()
            probe.move(-2.0)
            minus = probe.whole_loss()
            full = (plus - minus) / (2.0 * probe.eps)
            probe.memory["snapshot"] = [probe.steps, full]
            return Estimate(plus, (2.0 * snapshot_scale * full, 0.0), (plus, minus))
        step, full = probe.memory["snapshot"]
        probe.use_direction(1, step)
        grads, losses = [], ()
        for place in (False, True):
            with probe.at_snapshot() if place else nullcontext():
                _, (grad,), pair = central().estimate(probe)
                probe.move(+1.0)  # back to θ (or θ̄) before the swap
            grads, losses = grads + [grad], losses + pair
        now, then = grads
        return Estimate(losses[0], (2.0 * (now - then), 2.0 * full), losses)

    return Estimator(f"variance-reduced(every {period})", 2, estimate, 4, buffers=("snapshot",), whole_train=True)


def forward_gradient() -> Estimator:
    r"""The forward gradient (Baydin et al. 2022; ZO-Bench's Forward-Grad): the exact directional
    derivative :math:`\hat g = \nabla L(\theta)\cdot d` from one forward pass with tangents
    (forward-mode AD), so :math:`\hat g d` is an unbiased gradient estimate without the :math:`O(\epsilon)`
    bias or the cancellation of finite differences. Reports :math:`L(\theta)`."""

    def estimate(probe: Probe) -> Estimate:
        loss, derivative = probe.derivative(0)
        return Estimate(loss, (derivative,), (loss,))

    return Estimator("forward-jvp", 1, estimate, 1, forward_mode=True)

r"""The zeroth-order optimizer: a composition of the four ablation axes.

* **direction sampler** (:mod:`.noise`): draws the probe noise, regenerated from a per-step seed;
* **gradient estimator** (:mod:`.estimators`): turns loss evaluations into one scalar
  :math:`\hat g_i` per probe :math:`d_i` — by default the two-point (central) SPSA estimate
  :math:`\hat g = (\mathcal L(\theta + \epsilon d) - \mathcal L(\theta - \epsilon d)) / 2\epsilon`,
  the directional derivative along :math:`d`; with q probes the input below is
  :math:`\frac1q\sum_i \hat g_i z_i`;
* **momentum schedule and placement** (:mod:`.transforms`): a chain of transforms after the
  estimate, in optax's manner. Its preconditioner (momentum, Adam, AdaMU, …) turns one input per step
  into a direction :math:`n_t`; where ĝ enters the chain is the placement: ``g`` puts the
  preconditioner on the gradient estimate (probe :math:`d = z`, input :math:`\hat g z`,
  :math:`\theta \leftarrow \theta - \eta n_t`; ZO-AdaMM), ``delta`` on the perturbation (input :math:`z`,
  probe = its first moment, :math:`\theta \leftarrow \theta - \eta \hat g n_t`; ZO-AdaMU). The chain
  ends in the learning rate, the group's η times a :mod:`.lr_schedules` factor of the step.

Memory: the parameters are perturbed in place and the noise is regenerated in each pass, one tensor
at a time, so the step needs the inference memory, the schedule's buffers, the noise of the largest single
parameter tensor, and a few temporaries of a slice of it (elementwise chains run on slices of
:data:`PIECE` entries) or of the whole tensor (other chains).

A step makes three passes over the parameters (MeZO makes four): :math:`+\epsilon d`, then
:math:`-2\epsilon d`, then one pass that restores (:math:`+\epsilon d`) and applies the update with
the same regenerated noise. ``fused=False`` gives MeZO's separate restore and update passes.
``cache_noise=True`` draws the noise once per step and keeps it for the later passes: one more copy
of the trainable parameters (two for a two-part sampler, and one more for the probe in placement δ,
formed once too) in exchange for two fewer regenerations, with bitwise the same result as the default.

The in-place restore is exact up to floating-point rounding, not bitwise: :math:`\mathrm{fl}(\theta +
\epsilon z)` cannot be inverted where :math:`|\epsilon z| \gg |\theta|` (many :math:`\theta` round to the
same value), so no in-place scheme without a stored copy restores every fp32 value bit for bit.
``tests/test_zeroth_order.py`` bounds the drift at a few units in the last place.

Weight decay (``weight_decay`` per parameter group; groups from :func:`decay_groups` skip biases
and norms as MeZO does) is coupled L2 where the chain adds it before the preconditioner
(:math:`x = \hat g z + \lambda\theta`) and decoupled (:math:`\theta \leftarrow (1 - \eta\lambda)\theta`)
where it comes after; in placement ``delta`` the moments never see a gradient, so decay is decoupled.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from contextlib import contextmanager, nullcontext

import torch

from .estimators import Estimate, Estimator, central
from .layers import LayerChoice, layer_of
from .noise import KeptDraws, NoiseStream, Sample, Sampler, step_seed
from .lr_schedules import LearningRateSchedule
from .registry import BACKWARD_IN_FORWARDS
from .transforms import compile_chain

PLACEMENTS = ("g", "delta")
# Entries per slice when an elementwise chain moves a large tensor slice by slice (``_pieces``): its
# temporaries then take a slice's memory, not the tensor's, and on a CPU they stay in cache. Accelerators
# take larger slices, since each slice costs every operation one more kernel launch.
PIECE = {"cpu": 1 << 20}
PIECE_ON_ACCELERATORS = 1 << 26


def is_real(value) -> bool:
    """A finite int or float (``True`` is no number here, though Python says it is one)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_count(name: str, value, low: int = 0) -> None:
    """Refuses, in one line, anything but an integer ``>= low`` (``True`` is no count either)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, not {value!r}")


def check_number(name: str, value, low: float = 0.0, *, strict: bool = False) -> None:
    """Refuses, in one line, anything but a finite number ``>= low`` (``> low`` when ``strict``)."""
    if not is_real(value) or not (value > low if strict else value >= low):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {low:g}, not {value!r}")


class NonFiniteLossError(FloatingPointError):
    """A NaN or infinite loss; the parameters were restored before this was raised."""


class ZerothOrder(torch.optim.Optimizer):
    """Forward-only optimizer built from a sampler, an estimator and a chain of transforms.

    ``step(closure)`` calls ``closure()`` under ``torch.no_grad()`` as often as the estimator asks
    (twice for the default central estimate); the closure returns the loss on the current batch.
    After a step, ``last_record`` is the step's record: its seed and every value the closure gave.
    With the initial weights, the records of a run rebuild its parameters and state bitwise through
    :meth:`replay`, without a forward pass; the record is all a resumed run needs, whatever the
    estimator did with the values (a conservative step's branch is a function of them).
    """

    def __init__(self, params, *, chain, sampler: Sampler, lr: float, estimator: Estimator | None = None,
                 lr_schedule: LearningRateSchedule | None = None, eps: float = 1e-3, weight_decay: float = 0.0,
                 seed: int = 0, cache_noise: bool = False, fused: bool = True, layers: LayerChoice | None = None,
                 after=None):
        self.chain = compile_chain(chain)
        estimator = estimator or central()
        if self.chain.placement == "delta" and estimator.probes != 1:
            raise ValueError("placement delta takes one probe per step: its probe is the schedule's moment")
        if self.chain.preconditioner is not None and self.chain.preconditioner.horizon and estimator.probes != 1:
            raise ValueError("a schedule rebuilt from earlier steps takes one probe per step")
        check_number("lr", lr)
        check_number("eps", eps, strict=True)
        check_number("weight_decay", weight_decay)
        check_count("seed", seed)
        for name, value in (("fused", fused), ("cache_noise", cache_noise)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, not {value!r}")
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay})
        self.preconditioner, self.placement = self.chain.preconditioner, self.chain.placement
        self.sampler, self.estimator, self.lr_schedule = sampler, estimator, lr_schedule
        self.eps, self.seed, self.fused = eps, seed, fused
        self.cache_noise, self._noise_cache = cache_noise, {}
        self.steps = 0
        # scalars kept between steps: an estimator's (MEAZO's second moment), the recent steps' ĝ (AdaMeZO)
        self.memory: dict = {}
        kept = KeptDraws()  # a block's lazy draws, computed by its first pass and read by the rest
        self.streams = [NoiseStream(kept) for _ in range(estimator.probes)]  # one per probe direction
        self.last_record: dict | None = None
        self.last_estimate: Estimate | None = None
        self._seeds: list[int] = []
        self._displacement: dict[tuple[int, str], float] = {}  # (probe, unit) -> how far θ is moved
        self._closure, self._evaluations, self._replaying = None, [], None
        self.layers, self._layer_of = layers, self._layer_indices()
        self.after = after  # a change of θ after the update, with losses of its own (DiZO's drift projection)
        self._chosen: set | None = None  # the parameters of the layers this step perturbs (None: all)
        self.exchange = None  # how ranks split a step (zobench.distributed); None in one process
        self._still = False  # a probe-split step's second estimate: the moves are already made

    def _layer_indices(self) -> dict:
        """Each trainable parameter's layer, numbered in order of first appearance (:mod:`.layers`)."""
        names, index = {}, {}
        for group in self.param_groups:
            labels = group.get("layers") or [None] * len(group["params"])
            for param, label in zip(group["params"], labels):
                index[param] = names.setdefault(label if label is not None else id(param), len(names))
        return index

    @property
    def _independent(self) -> bool:
        """No move of a step depends on its losses, so ranks may split its evaluations (split probes)."""
        return self.estimator.independent and self.after is None

    @property
    def _reads(self) -> bool:
        """The probes depend on the step's forward pass (AGZO), not only on seeds: no replay, no ranks."""
        return self.sampler.reads is not None

    def describe(self) -> dict:
        """The ablation axes and costs of this optimizer, read from its parts (the registry, ``zobench
        list`` and the reports show these; nothing about them is declared twice)."""
        cost = 1 + BACKWARD_IN_FORWARDS if self.estimator.forward_mode else 1
        passes, parts = self.estimator.calls * cost, self.estimator.parts
        return {"family": "fg" if self.estimator.forward_mode else "zo",
                "forward_passes": passes // parts if passes % parts == 0 else passes / parts,
                "closure_cost": cost, "batch_parts": parts,
                "state_buffers": (len(self.preconditioner.buffers) if self.preconditioner else 0)
                + (len(self.after.buffers) if self.after else 0) + len(self.estimator.buffers),
                "sampler": self.sampler.name + (f" on {self.layers.name}" if self.layers else ""), "estimator": self.estimator.name,
                "schedule": self.chain.schedule + (f" + {self.after.name}" if self.after else ""),
                "placement": "δ" if self.placement == "delta" else "g", "replayable": not self._reads,
                "splits": [] if self._reads else ["data", "probes"] if self._independent else ["data"],
                "whole_train": self.estimator.whole_train,
                "lr_schedule": self.lr_schedule.name if self.lr_schedule else "constant"}

    @property
    def noise(self) -> NoiseStream:
        """The first probe's noise stream (the only one for a one-probe estimator)."""
        return self.streams[0]

    def _parameters(self):
        """(group, parameter, its state) for every trainable parameter, in a fixed order."""
        for group in self.param_groups:
            for param in group["params"]:
                if param.requires_grad and (self._chosen is None or param in self._chosen):
                    state = self.state[param]
                    buffers = self.preconditioner.buffers if self.preconditioner else ()
                    if len(state) < len(buffers):
                        for name in buffers:
                            state[name] = torch.full_like(param, self.preconditioner.initial,
                                                          memory_format=torch.preserve_format)
                    yield group, param, state

    def _sample(self, param, index: int = 0) -> Sample:
        """Probe ``index``'s noise for ``param``: regenerated in each pass, or drawn once and kept."""
        if not self.cache_noise:
            return self.sampler(self.streams[index], param, self.steps)
        if (param, index) not in self._noise_cache:
            self._noise_cache[param, index] = self.sampler(self.streams[index], param, self.steps)
        return self._noise_cache[param, index]

    def _probe(self, param, state, index: int = 0, sample: Sample | None = None) -> torch.Tensor:
        """Probe ``index``'s direction for ``param``: its noise (placement g) or the preconditioner's
        preview of it (δ); with ``cache_noise`` a preview is formed once per step, as the noise is drawn
        once (the state does not change before the update, so every pass sees the same tensor). A pass
        that has drawn the noise already passes its ``sample``: drawing again would move the stream."""
        sample = self._sample(param, index) if sample is None else sample
        if self.placement == "g":
            return sample.fresh
        if not self.cache_noise:
            return self.preconditioner.preview(state, sample, self.steps)
        if (param, index, "probe") not in self._noise_cache:
            self._noise_cache[param, index, "probe"] = self.preconditioner.preview(state, sample, self.steps)
        return self._noise_cache[param, index, "probe"]

    def _add_probe(self, target, state, index: int, sample: Sample, alpha: float) -> None:
        """``target += alpha ·`` probe ``index``: in placement g the noise itself, added by its factors
        where it has some (no m × n product formed); in δ the preconditioner's preview of it."""
        if self.placement == "g":
            sample.add_to(target, alpha)
        else:
            target.add_(self._probe(target, state, index, sample), alpha=alpha)

    # -- what an estimator sees of the step (the estimators.Probe protocol) --------------------------

    def _rate(self, group: dict) -> float:
        """The group's learning rate at this step: η, times the schedule's factor of the steps before it."""
        return group["lr"] if self.lr_schedule is None else group["lr"] * self.lr_schedule.factor(self.steps - 1)

    def _unit(self, unit: str, group: dict) -> float:
        """The length a move's scale counts in: ε, or the group's learning rate η at this step."""
        return self.eps if unit == "eps" else self._rate(group)

    def distribute(self, exchange) -> None:
        """Splits each step over ranks (:mod:`zobench.distributed`): ``exchange`` decides which evaluations
        this rank computes and how the ranks' losses meet; the records stay the serial run's."""
        if exchange is not None and self._reads:
            raise ValueError(f"{self.sampler.name} probes read each step's activations, which differ between ranks; "
                             "run this method in one process")
        if exchange is not None and exchange.defers and not self._independent:
            raise ValueError(f"split probes needs evaluations independent of each other's losses; {self.estimator.name} "
                             f"{'or ' + self.after.name + ' ' if self.after else ''}moves θ by its losses: use split data")
        self.exchange = exchange

    def move(self, scale: float, index: int = 0, unit: str = "eps") -> None:
        """θ ← θ + scale·ε·d (``unit="lr"``: scale·η·d), regenerating probe ``index``'s direction d."""
        if self._still:
            return
        self.streams[index].restart(self._seeds[index], self.seed)
        for group, param, state in self._parameters():
            alpha = scale * self._unit(unit, group)
            for piece, piece_state, (sample,) in self._pieces(param, state, [self._sample(param, index)]):
                self._add_probe(piece, piece_state, index, sample, alpha)
        key = (index, unit)
        self._displacement[key] = self._displacement.get(key, 0.0) + scale

    def restore(self) -> None:
        for (index, unit), scale in list(self._displacement.items()):
            if scale:
                self.move(-scale, index, unit)

    def loss(self) -> float:
        return self._evaluate(lambda: float(self._closure()))

    def reading(self):
        if not self._reads or self._replaying is not None:
            return nullcontext()
        return self.sampler.reads.reading([param for _, param, _ in self._parameters()], self._seeds[0])

    def part_loss(self, part: int, parts: int) -> float:
        if hasattr(self._closure, "part"):
            return self._evaluate(lambda: float(self._closure.part(part, parts)))
        return self.loss()  # no batch to slice: every slice is the whole loss

    def whole_loss(self) -> float:
        def compute():
            if not hasattr(self._closure, "whole"):
                raise ValueError("this method needs the loss over the whole training set: give the closure a "
                                 "whole() that returns it (zobench's harness does)")
            return float(self._closure.whole())
        return self._evaluate(compute)

    def keep_snapshot(self) -> None:
        for _, param, state in self._parameters():
            if "snapshot" in state:
                state["snapshot"].copy_(param)
            else:
                state["snapshot"] = param.detach().clone()

    @contextmanager
    def at_snapshot(self):
        """θ and θ̄ swapped (their storage, not their values: nothing is copied), and back on leaving."""
        def swap():
            for _, param, state in self._parameters():
                param.data, state["snapshot"] = state["snapshot"], param.data
        swap()
        try:
            yield
        finally:
            swap()

    def use_direction(self, index: int, step: int) -> None:
        self._seeds[index] = step_seed(self.seed, step)

    def derivative(self, index: int = 0) -> tuple[float, float]:
        return self._evaluate(lambda: self._dual_evaluation(index))

    def _evaluate(self, compute):
        """A value the estimator asked for: computed and logged, or read back from a step record."""
        deferred = False
        if self._replaying is not None:
            value = self._replaying.pop(0)
        elif self.exchange is not None:
            value, deferred = self.exchange.evaluate(len(self._evaluations), compute), self.exchange.defers
        else:
            value = compute()
        self._evaluations.append(value)
        # a probe split checks once every rank has every loss: a rank must not leave the step alone
        if not deferred and not all(math.isfinite(v) for v in (value if isinstance(value, list) else [value])):
            self._still = False
            self.restore()
            raise NonFiniteLossError(f"non-finite loss at step {self.steps} (evaluation "
                                     f"{len(self._evaluations)} of the step gave {value})")
        return value

    def _dual_evaluation(self, index: int) -> list[float]:
        """[L(θ), ∇L(θ)·d] from one forward pass over dual parameters (θ with tangent d).

        The parameters are swapped in place for dual tensors (``torch.utils.swap_tensors``), so the
        closure runs unchanged; attention runs on PyTorch's composite kernel, which has forward-mode
        derivatives where the fused ones do not.
        """
        import torch.autograd.forward_ad as forward_ad
        from torch.nn.attention import SDPBackend, sdpa_kernel

        self.streams[index].restart(self._seeds[index], self.seed)
        params = [(param, self._probe(param, state, index)) for _, param, state in self._parameters()]
        with forward_ad.dual_level(), sdpa_kernel(SDPBackend.MATH):
            duals = [forward_ad.make_dual(param.detach(), tangent) for param, tangent in params]
            for (param, _), dual in zip(params, duals):
                torch.utils.swap_tensors(param, dual)
            try:
                loss = self._closure()
            finally:
                for (param, _), dual in zip(params, duals):
                    torch.utils.swap_tensors(param, dual)
            primal, tangent = forward_ad.unpack_dual(loss)
        return [float(primal), float(tangent) if tangent is not None else 0.0]

    # -- the step --------------------------------------------------------------------------------------

    def _update(self, group, param, state, samples: list[Sample], grads: tuple[float, ...], past=None) -> None:
        lr, decay = self._rate(group), group["weight_decay"]
        coupled = self.chain.coupled_decay
        if self.placement == "g":
            factors = None if decay and coupled else self._scaled_factors(samples, grads)  # λθ is not low-rank
            if factors is not None:  # the estimate as factors: formed only by a transform that reads it whole
                estimate = Sample(factors=factors, shape=param.shape)
            else:
                dense = samples[0].fresh * (grads[0] / len(grads))  # a new tensor: a draw may be a shared view
                for sample, grad in zip(samples[1:], grads[1:]):
                    dense.add_(sample.fresh, alpha=grad / len(grads))
                if decay and coupled:
                    dense.add_(param, alpha=decay)
                estimate = Sample(dense)
            direction, step_size = self._absorb(state, estimate, past), lr
        else:
            direction, step_size = self._absorb(state, samples[0]), lr * grads[0]
        if decay and not coupled:
            param.mul_(1.0 - lr * decay)
        (direction if isinstance(direction, Sample) else Sample(direction)).add_to(param, -step_size)

    def _linear_update(self, group, param, samples: Iterable[Sample], grads: tuple[float, ...]) -> None:
        r"""Restore and update of a linear schedule in placement g, one add per probe: with the probe's
        displacement :math:`a_i` still on θ, :math:`\theta \leftarrow (1-\eta\lambda)\theta +
        \sum_i ((1-\eta\lambda)(-a_i) - \eta\hat g_i/q)\,z_i` — coupled L2 and decoupled decay coincide
        when :math:`n_t = x_t`. No estimate-sized temporary and one pass fewer than restore-then-update."""
        lr = self._rate(group)
        shrink = 1.0 - lr * group["weight_decay"]
        if shrink != 1.0:
            param.mul_(shrink)
        for index, (sample, grad) in enumerate(zip(samples, grads)):
            back = -sum(scale * self._unit(unit, group) for (i, unit), scale in self._displacement.items() if i == index)
            sample.add_to(param, shrink * back - lr * grad / len(grads))

    def _scaled_factors(self, samples: list[Sample], grads: tuple[float, ...]):
        """The estimate as one low-rank product, for a factored transform; else None. Probes sharing the
        factor their sampler keeps over a block give that factor and Σᵢ ĝᵢ/q times their fresh one: ĝUVᵀ
        gives (ĝU, V) (LOZO-M keeps momentum on the fresh left factor), PΨᵢ gives (P, Σᵢ ĝᵢ/q · Ψᵢᵀ)
        (ZO-Muon's and ZO-MOPI's kept subspace)."""
        first = samples[0]
        if first.factors is None:
            return None
        kept = first.kept
        if any(s.factors is None or not torch.equal(s.factors[kept], first.factors[kept]) for s in samples[1:]):
            return None
        combined = first.factors[1 - kept] * (grads[0] / len(grads))
        for sample, grad in zip(samples[1:], grads[1:]):
            combined.add_(sample.factors[1 - kept], alpha=grad / len(grads))
        return (combined, first.factors[1]) if kept == 1 else (first.factors[0], combined)

    def _absorb(self, state, x: Sample, past: list | None = None) -> torch.Tensor:
        if self.preconditioner.takes_estimate:
            return self.preconditioner.update(state, x, self.steps, self.last_estimate)
        if self.preconditioner.horizon:
            return self.preconditioner.update(state, x, self.steps, past)
        return self.preconditioner.update(state, x, self.steps)

    def _history(self) -> list[tuple[float, int, NoiseStream]]:
        """(ĝ, step, a stream restarted at that step's seed) of each step a horizon schedule rebuilds, newest first."""
        found = []
        for step, grad in self.memory.get("history", []):
            stream = NoiseStream()
            stream.restart(step_seed(self.seed, step), self.seed)
            found.append((grad, step, stream))
        return found

    def _restore_and_update(self, grads: tuple[float, ...]) -> None:
        """The update pass; the restore of the estimator's last displacement is fused into it."""
        if not self.fused:
            self.restore()
        for index, stream in enumerate(self.streams):
            stream.restart(self._seeds[index], self.seed)
        linear, history, probes = self.chain.linear, self._history(), len(self.streams)
        for group, param, state in self._parameters():
            if linear:  # each probe drawn as it is added (one stream each): one draw alive, not q
                draws = (self._sample(param, index) for index in range(probes))
                self._linear_update(group, param, draws, grads)
                continue
            samples = [self._sample(param, index) for index in range(probes)]
            samples += [self.sampler(stream, param, step) for _, step, stream in history]  # earlier steps' probes
            for piece, piece_state, piece_samples in self._pieces(param, state, samples):
                for (index, unit), scale in self._displacement.items():
                    if scale:
                        back = -scale * self._unit(unit, group)
                        self._add_probe(piece, piece_state, index, piece_samples[index], back)
                past = [(grad, sample) for (grad, _, _), sample in zip(history, piece_samples[probes:])]
                self._update(group, piece, piece_state, piece_samples[:probes], grads, past)

    def _pieces(self, param, state, samples: list[Sample]):
        """(θ, its state, its samples), whole or, where the chain is elementwise and θ holds more than
        :data:`PIECE` entries, as matching flat slices: the same values bit for bit (an elementwise
        kernel's result does not depend on where a slice starts; tested for every such optimizer) in a
        slice's memory. Whole with ``cache_noise`` (its kept probe is a whole tensor by design) and for
        factored samples (their transforms are not elementwise)."""
        size = PIECE.get(param.device.type, PIECE_ON_ACCELERATORS)
        sliceable = (not self.cache_noise and self.preconditioner is not None and self.preconditioner.elementwise
                     and param.numel() > size and all(s.factors is None for s in samples))
        if sliceable:  # the per-tensor checks only where slicing is possible: this runs in every pass
            tensors = [param, *state.values(), *(d for s in samples for d in (s.fresh, s.jitter) if d is not None)]
            sliceable = all(isinstance(t, torch.Tensor) and t.numel() == param.numel() and t.is_contiguous()
                            for t in tensors)
        if not sliceable:
            yield param, state, samples
            return
        for start in range(0, param.numel(), size):
            cut = slice(start, start + size)
            yield (param.view(-1)[cut], {key: buffer.view(-1)[cut] for key, buffer in state.items()},
                   [Sample(s.fresh.view(-1)[cut], None if s.jitter is None else s.jitter.view(-1)[cut]) for s in samples])

    def _run(self, closure, record: dict | None) -> Estimate:
        seed = step_seed(self.seed, self.steps + 1)
        if record is not None and record["seed"] != seed:
            raise ValueError(f"step record does not match: step {self.steps + 1} of seed {self.seed} "
                             f"has seed {seed}, the record says {record['seed']}")
        self.steps += 1  # the passes of step t see t (the anneal, the bias corrections)
        self._seeds = [seed] + [step_seed(seed, index) for index in range(1, len(self.streams))]
        if self.layers is not None:
            chosen = set(self.layers.choose(seed, len(set(self._layer_of.values()))))
            self._chosen = {param for param, layer in self._layer_of.items() if layer in chosen}
        self._displacement, self._evaluations = {}, []
        self._closure, self._replaying = closure, None if record is None else list(record["evaluations"])
        memory = dict(self.memory)  # as the step found it: a failed or repeated estimate starts from it again
        if self.after is not None:
            self.after.prepare(self)
        try:
            self.last_estimate = self.estimator.estimate(self)
            if self.exchange is not None and record is None and self.exchange.defers:
                # every rank made every move; now the estimate from all the losses, θ left where it is
                values, self._evaluations, self._still = self.exchange.complete(self._evaluations), [], True
                self._replaying, self.memory = values, dict(memory)
                self.last_estimate = self.estimator.estimate(self)
                self._still, self._replaying = False, None
            self._restore_and_update(self.last_estimate.grads)
            self._displacement = {}  # the update pass restored θ
            if self.after is not None:
                self.after.apply(self, self.steps, seed)
            horizon = self.preconditioner.horizon if self.preconditioner is not None else 0
            if horizon:  # this step joins the ones the next steps rebuild
                self.memory["history"] = [[self.steps, self.last_estimate.grads[0]], *self.memory.get("history", [])][:horizon]
        except NonFiniteLossError:
            self.steps, self.memory = self.steps - 1, memory
            raise
        finally:
            self._noise_cache.clear()
            self._closure = self._replaying = self._chosen = None
            self._still = False
        self.last_record = {"seed": seed, "evaluations": self._evaluations}
        return self.last_estimate

    @torch.no_grad()
    def step(self, closure) -> float:
        """One step; returns the loss the estimator reports (central: L(θ + εd), MeZO's convention)."""
        return self._run(closure, None).loss

    @torch.no_grad()
    def replay(self, record: dict) -> None:
        """Re-applies a step from its record (``last_record`` of that step) without any forward pass.

        The estimator runs again and reads each value from the record instead of the closure, so the
        passes and their arithmetic are those of :meth:`step`: replaying a run's records from its
        initial weights reproduces its parameters and state bit for bit.
        """
        self._run(None, record)

    @torch.no_grad()
    def restore_drift(self) -> float:
        r"""How far one perturb–restore cycle (:math:`+\epsilon d`, :math:`-2\epsilon d`, :math:`+\epsilon d`,
        the moves of a step) leaves θ from where it started: :math:`\lVert\theta' - \theta\rVert_2 /
        \lVert\theta\rVert_2` in fp64, in units of the parameters' unit roundoff u (``finfo.eps / 2``), the
        worst tensor. Measured on the next step's probe, tensor by tensor against a copy of the tensor
        (one tensor's memory), and each tensor put back from its copy, so the run's numbers do not change.
        A checksum of sums would not do: rounding errors are unbiased and cancel in a sum (measured on a
        million fp16 entries: 0.003 u in the sum where the norm shows 1 u)."""
        stream = NoiseStream()
        stream.restart(step_seed(self.seed, self.steps + 1), self.seed)
        worst = 0.0
        for _, param, state in self._parameters():
            norm = float(param.double().norm())
            if not norm:
                continue
            start = param.detach().clone()
            probe = self.sampler(stream, param, self.steps + 1)
            if self.placement == "delta":
                probe = Sample(self.preconditioner.preview(state, probe, self.steps + 1))
            for scale in (1.0, -2.0, 1.0):
                probe.add_to(param, scale * self.eps)
            drift = float((param.double() - start.double()).norm()) / norm
            worst = max(worst, drift / (torch.finfo(param.dtype).eps / 2))
            param.copy_(start)
        return worst

    def state_dict(self):
        state = super().state_dict()
        state["zo"] = {"steps": self.steps, "seed": self.seed, "eps": self.eps, "memory": dict(self.memory)}
        return state

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        zo = state_dict.pop("zo")
        super().load_state_dict(state_dict)
        self.steps, self.seed, self.eps = zo["steps"], zo["seed"], zo["eps"]
        self.memory = dict(zo.get("memory", {}))


def _exempt_from_decay(module: torch.nn.Module, name: str) -> bool:
    """Biases and every parameter of a normalisation layer (LayerNorm, RMSNorm, BatchNorm, ...)."""
    return name == "bias" or "norm" in type(module).__name__.lower()


def decay_groups(model: torch.nn.Module, weight_decay: float | None = None) -> list[dict]:
    """Two parameter groups: decayed weights, and biases/norm parameters without decay (as MeZO); each
    group names its parameters' layers under ``"layers"`` (:func:`~zobench.optimizers.layers.layer_of`).

    Without ``weight_decay`` the decayed group takes the optimizer's own ``weight_decay``.
    """
    decayed, exempt, seen = ([], []), ([], []), set()
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            if param.requires_grad and param not in seen:
                seen.add(param)
                params, layers = exempt if _exempt_from_decay(module, name) else decayed
                params.append(param)
                layers.append(layer_of(f"{module_name}.{name}" if module_name else name))
    groups = [{"params": decayed[0], "layers": decayed[1]},
              {"params": exempt[0], "layers": exempt[1], "weight_decay": 0.0}]
    if weight_decay is not None:
        groups[0]["weight_decay"] = weight_decay
    return [group for group in groups if group["params"]]

"""The contract every registered optimizer keeps, checked on a small problem (like torch's ``optim_db``).

``violations(info)`` returns one line per broken property, naming the optimizer and the property; an
empty list means it keeps the contract. The test battery runs it over every registered name, plugins
included, so a new optimizer gets every check without a test edit; ``zobench verify NAME`` runs it for
a plugin's author. The properties:

* ``builds`` — it builds from ``lr`` and the harness's context alone;
* ``validates`` — bad values of the hyperparameters it declares are refused when it is built
  (``ValueError``): a negative or NaN ``lr``, ``betas=(1.5, 0.999)``, ``sigma=-1``, ``seed="x"``, …;
* ``deterministic`` — two builds with the same seed take bitwise the same steps;
* ``restores`` — with ``lr=0`` a step leaves the parameters where they were, in float32 and float64,
  within a few units in the last place (the in-place perturbations round);
* ``state_dict`` — a reloaded ``state_dict`` continues bitwise as the uninterrupted optimizer;
* ``describes`` — the built optimizer's ``describe()`` names its axes and costs (the registry reads them);
* ``forward_passes`` — the closure calls per step, times the described cost of one call, equal the
  described forward passes (a first-order step calls it once and counts 3: the backward counts as two),
  times the slices a pass is cut into (``batch_parts``: GRZO evaluates the batch slice by slice; on a
  closure with no batch, as here, each slice is a whole call);
* ``buffers`` — the parameter-sized tensors kept per parameter match the described count;
* ``options`` — each common option it accepts works: every ``direction`` steps and replays bitwise,
  ``cache_noise=True`` takes bitwise the steps of the default, ``fused=False`` the same steps up to
  rounding, and an ``lr_schedule`` with warm-up leaves θ in place at its first step (rate 0) and
  replays bitwise;
* ``non_finite`` — a NaN loss raises ``NonFiniteLossError``, leaving the parameters where they were
  (within the perturbation's rounding), or returns the non-finite loss (the harness then marks the
  run diverged);
* ``replay`` — for optimizers that describe themselves ``replayable``: a fresh build that replays the first steps'
  ``last_record`` and then steps on ends bitwise where the uninterrupted optimizer does, parameters
  and state — a crash and resume is invisible, which is what the harness's resume relies on.
"""

from __future__ import annotations

import copy

import torch

from .registry import OptimizerInfo
from .zeroth_order import NonFiniteLossError

DESCRIBED = ("family", "forward_passes", "closure_cost", "state_buffers", "sampler", "estimator", "schedule",
             "placement", "replayable")

CONTEXT = {"total_steps": 5000, "seed": 3}  # a horizon long enough for any anneal's defaults
STEPS = 4


class _Quadratic(torch.nn.Module):
    """Two float64 tensors, a matrix and a vector, with a loss that mixes them (a curved valley)."""

    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(11)
        self.weight = torch.nn.Parameter(torch.randn(4, 3, generator=generator, dtype=torch.float64))
        self.bias = torch.nn.Parameter(torch.randn(5, generator=generator, dtype=torch.float64))

    def forward(self):
        return (self.weight - 0.5).pow(2).sum() + torch.tanh(self.bias).pow(2).sum() * self.weight.mean().pow(2)

    def whole(self):
        """The whole training set's loss (MeZO-SVRG's snapshot): without a batch, the loss itself."""
        return self()


# values every optimizer declaring the hyperparameter must refuse when built
BAD_VALUES = {"lr": [-1.0, float("nan")], "eps": [0.0, float("inf")], "betas": [(1.5, 0.999), (0.9,)],
              "sigma": [-1.0], "seed": ["x", -1], "weight_decay": [-0.1], "momentum": [1.5],
              "sparsity": [1.0, -0.5], "rank": [0], "period": [0], "probes": [0], "direction": ["uniform"],
              "lr_schedule": [{"name": "cosin"}, "cosine"], "rule": ["newton"], "first_momentum": ["one"],
              "scale": ["both"], "fused": ["yes"], "cache_noise": [1], "beta": [1.0], "zeta": [0.0],
              "spectral_rank": [0], "horizon": [0], "interval": [0], "projection_eps": [0.0], "projection_lr": [-1.0],
              "clip": [1.0], "reading": ["both"], "snapshot_scale": [0.0], "groups": [1, 2.5],
              "power_steps": [0]}


def _build(info: OptimizerInfo, lr: float = 1e-3, dtype=torch.float64, **hyperparameters):
    model = _Quadratic().to(dtype)
    return model, info.create(model.parameters(), context=CONTEXT, lr=lr, **hyperparameters)


def _run(optimizer, model, steps: int) -> list[float]:
    return [optimizer.step(model) for _ in range(steps)]


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def _state_tensors(optimizer) -> list[torch.Tensor]:
    return [value for state in optimizer.state.values() for value in state.values()
            if isinstance(value, torch.Tensor) and value.dim() > 0]


def violations(info: OptimizerInfo) -> list[str]:
    """One line per property of the module docstring that ``info``'s optimizer breaks."""
    found: list[str] = []

    def fail(prop: str, message: str) -> None:
        found.append(f"{info.name}: {prop}: {message}")

    try:
        model, optimizer = _build(info)
        _run(optimizer, model, STEPS)
    except Exception as error:  # a plugin may fail in any way; the contract says how in one line
        fail("builds", f"{type(error).__name__}: {error}")
        return found

    try:
        described = info.describe()
        missing = [key for key in DESCRIBED if key not in described]
        if missing:
            fail("describes", f"describe() lacks {', '.join(missing)}")
            return found
    except Exception as error:
        fail("describes", f"{type(error).__name__}: {error}")
        return found

    declared = {"lr", *info.hyperparameters()}
    for name, values in BAD_VALUES.items():
        for bad in values if name in declared else ():
            try:
                _build(info, **{"lr": 1e-3, name: bad})
                fail("validates", f"{name}={bad!r} is accepted; refuse it with ValueError when the optimizer is built")
            except ValueError:
                pass

    moved = []
    for dtype in (torch.float32, torch.float64):
        still, resting = _build(info, lr=0.0, dtype=dtype)
        before = [p.detach().clone() for p in still.parameters()]
        _run(resting, still, 2)
        ulp = torch.finfo(dtype).eps
        if not all(((p.detach() - b).abs() <= 16 * ulp * (b.abs() + 1)).all() for p, b in zip(still.parameters(), before)):
            moved.append(str(dtype).removeprefix("torch."))
    if moved:
        fail("restores", f"with lr=0 two steps move the {' and '.join(moved)} parameters by more than rounding; "
                         "restore them after each probe")

    twin_model, twin = _build(info)
    _run(twin, twin_model, STEPS)
    if not _same(model, twin_model):
        fail("deterministic", f"two builds with seed {CONTEXT['seed']} differ after {STEPS} steps")

    saved_model, saved = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())
    _run(optimizer, model, STEPS)
    resumed_model, resumed = _build(info)
    resumed_model.load_state_dict(saved_model)
    resumed.load_state_dict(saved)
    _run(resumed, resumed_model, STEPS)
    if not _same(model, resumed_model):
        fail("state_dict", "a reloaded state_dict does not continue bitwise as the uninterrupted optimizer")

    calls, parts = [], described.get("batch_parts", 1)
    optimizer.step(lambda: calls.append(1) or model())  # no batch to slice: each call is a whole pass
    if len(calls) * described["closure_cost"] != described["forward_passes"] * parts:
        fail("forward_passes", f"the closure ran {len(calls)} times in a step, {described['closure_cost']} forward "
                               f"pass(es) each; describe() says {described['forward_passes']}"
                               + (f" of {parts} batch slices each" if parts > 1 else ""))

    sizes = {p.shape for p in model.parameters()}
    kept = sum(t.shape in sizes for t in _state_tensors(optimizer)) / len(sizes)
    if kept != described["state_buffers"]:
        fail("buffers", f"keeps {kept:g} parameter-sized tensors per parameter; describe() says "
                        f"{described['state_buffers']}")

    before = [p.detach().clone() for p in model.parameters()]
    try:
        loss = optimizer.step(lambda: model() * float("nan"))
        if loss == loss:  # not NaN: the harness would not see the divergence
            fail("non_finite", f"a NaN loss returned {loss}; raise NonFiniteLossError or return it")
    except NonFiniteLossError:  # the step is declared not taken: the parameters must be where they were
        moved = max(float((p.detach() - b).abs().max()) for p, b in zip(model.parameters(), before))
        if not moved <= 1e-9:
            fail("non_finite", f"raised NonFiniteLossError but moved the parameters by {moved:.3g}; restore them")

    if described["replayable"]:
        if not hasattr(optimizer, "replay"):
            fail("replay", "describes itself replayable but has no replay(record); add one or describe "
                           "replayable=False")
            return found
        if not _replays(info):
            fail("replay", "replaying the first steps' records and stepping on does not end bitwise where the "
                           "uninterrupted run does; put what a step decides into its record, or describe "
                           "replayable=False")
    found += [f"{info.name}: options: {problem}" for problem in _option_problems(info, declared, described)]
    return found


def _replays(info: OptimizerInfo, **hyperparameters) -> bool:
    """Replaying the first half of the steps' records, then stepping on, ends bitwise where the
    uninterrupted run does, parameters and state."""
    model, optimizer = _build(info, **hyperparameters)
    records = []
    for _ in range(STEPS):
        optimizer.step(model)
        records.append(copy.deepcopy(optimizer.last_record))
    resumed_model, resumed = _build(info, **hyperparameters)
    for record in records[:STEPS // 2]:
        resumed.replay(record)
    _run(resumed, resumed_model, STEPS - STEPS // 2)
    states = zip(_state_tensors(optimizer), _state_tensors(resumed))
    return _same(model, resumed_model) and all(torch.equal(a, b) for a, b in states)


def _stepped(info: OptimizerInfo, steps: int = STEPS, **hyperparameters) -> torch.nn.Module:
    model, optimizer = _build(info, **hyperparameters)
    _run(optimizer, model, steps)
    return model


def _option_problems(info: OptimizerInfo, declared: set, described: dict) -> list[str]:
    """What breaks among the common options the optimizer accepts (see the module docstring)."""
    from .method import SAMPLERS

    problems, default = [], _stepped(info)
    for direction in SAMPLERS if "direction" in declared else ():
        try:
            if described["replayable"] and not _replays(info, direction=direction):
                problems.append(f"direction={direction} does not replay bitwise")
        except Exception as error:
            problems.append(f"direction={direction} fails: {type(error).__name__}: {error}")
    if "cache_noise" in declared and not _same(default, _stepped(info, cache_noise=True)):
        problems.append("cache_noise=True does not take bitwise the default's steps")
    if "fused" in declared:
        unfused = _stepped(info, fused=False)
        if not all(torch.allclose(a, b, rtol=1e-9, atol=1e-12) for a, b in zip(default.parameters(), unfused.parameters())):
            problems.append("fused=False does not take the default's steps up to rounding")
    if "lr_schedule" in declared:
        schedule = {"name": "cosine", "warmup": 2, "total": 10}
        first, start = _stepped(info, steps=1, lr=0.1, lr_schedule=schedule), _Quadratic()
        if not all(torch.allclose(a, b, rtol=0, atol=1e-12) for a, b in zip(first.parameters(), start.parameters())):
            problems.append("lr_schedule with warm-up moves θ at its first step, whose rate is 0")
        if described["replayable"] and not _replays(info, lr_schedule=schedule):
            problems.append("lr_schedule does not replay bitwise")
    return problems

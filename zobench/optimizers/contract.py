"""The contract every registered optimizer keeps, checked on a small problem (like torch's ``optim_db``).

``violations(info)`` returns one line per broken property, naming the optimizer and the property; an
empty list means it keeps the contract. The test battery runs it over every registered name, plugins
included, so a new optimizer gets every check without a test edit; ``zobench verify NAME`` runs it for
a plugin's author. The properties:

* ``builds`` — it builds from ``lr`` and the harness's context alone;
* ``validates`` — a negative or NaN ``lr`` is refused when it is built (``ValueError``);
* ``deterministic`` — two builds with the same seed take bitwise the same steps;
* ``state_dict`` — a reloaded ``state_dict`` continues bitwise as the uninterrupted optimizer;
* ``forward_passes`` — the closure calls per step match the declared count (a first-order step calls
  it once and declares 3: the backward counts as two forward passes);
* ``buffers`` — the parameter-sized tensors kept per parameter match the declared count;
* ``non_finite`` — a NaN loss raises ``NonFiniteLossError``, leaving the parameters where they were
  (within the perturbation's rounding), or returns the non-finite loss (the harness then marks the
  run diverged);
* ``replay`` — for optimizers with ``replay(seed, projected_grad)`` (zeroth-order): replaying the
  logged (seed, ĝ) of each step on a fresh build gives bitwise the same parameters and state, which
  is what the harness's resume relies on.
"""

from __future__ import annotations

import copy

import torch

from .registry import OptimizerInfo
from .zeroth_order import NonFiniteLossError

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


def _build(info: OptimizerInfo, lr: float = 1e-3):
    model = _Quadratic()
    return model, info.create(model.parameters(), context=CONTEXT, lr=lr)


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

    for bad in (-1.0, float("nan")):
        try:
            _build(info, lr=bad)
            fail("validates", f"lr={bad} is accepted; refuse it with ValueError when the optimizer is built")
        except ValueError:
            pass

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

    calls = []
    optimizer.step(lambda: calls.append(1) or model())
    expected = 1 if info.family == "fo" else info.forward_passes
    if len(calls) != expected:
        fail("forward_passes", f"the closure ran {len(calls)} times in a step; declared {info.forward_passes}"
                               + (" (first-order: one call, declared as 3)" if info.family == "fo" else ""))

    sizes = {p.shape for p in model.parameters()}
    kept = sum(t.shape in sizes for t in _state_tensors(optimizer)) / len(sizes)
    if kept != info.state_buffers:
        fail("buffers", f"keeps {kept:g} parameter-sized tensors per parameter; declared {info.state_buffers}")

    before = [p.detach().clone() for p in model.parameters()]
    try:
        loss = optimizer.step(lambda: model() * float("nan"))
        if loss == loss:  # not NaN: the harness would not see the divergence
            fail("non_finite", f"a NaN loss returned {loss}; raise NonFiniteLossError or return it")
    except NonFiniteLossError:  # the step is declared not taken: the parameters must be where they were
        moved = max(float((p.detach() - b).abs().max()) for p, b in zip(model.parameters(), before))
        if not moved <= 1e-9:
            fail("non_finite", f"raised NonFiniteLossError but moved the parameters by {moved:.3g}; restore them")

    if hasattr(optimizer, "replay"):
        model, optimizer = _build(info)
        log = []
        for _ in range(STEPS):
            optimizer.step(model)
            log.append((optimizer.last_seed, optimizer.last_projected_grad))
        replayed_model, replayed = _build(info)
        for seed, projected in log:
            replayed.replay(seed, projected)
        states = zip(_state_tensors(optimizer), _state_tensors(replayed))
        if not _same(model, replayed_model) or not all(torch.equal(a, b) for a, b in states):
            fail("replay", "replaying the logged (seed, ĝ) pairs does not rebuild parameters and state bitwise; "
                           "declare what a step record must hold, or make the run non-replayable")
    return found

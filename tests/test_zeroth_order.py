"""Behaviour of the ZO optimizers: restore, passes, determinism, memory, state, bad losses."""

import copy
import weakref

import pytest
import torch
from conftest import ZO_NAMES, TinyRegression, registered
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from zobench import optimizers
from zobench.optimizers.noise import Sample

ANNEAL = dict(T1=2, T3=10)


def build(name, model, **hyperparameters):
    """``name`` over ``model`` with lr 1e-2, a short anneal, and those ``hyperparameters`` it declares."""
    declared = optimizers.get(name).hyperparameters()
    chosen = {key: value for key, value in {**ANNEAL, **hyperparameters}.items() if key in declared}
    return optimizers.create(name, model.parameters(), **{"lr": 1e-2, **chosen})


@pytest.mark.parametrize("name", registered(family="zo", estimator="central"))
@pytest.mark.parametrize("fused", [True, False])
def test_zero_lr_step_perturbs_then_restores_to_rounding(name, fused, tiny_model):
    before = [p.detach().clone() for p in tiny_model.parameters()]
    seen = []

    def closure():
        seen.append([p.detach().clone() for p in tiny_model.parameters()])
        return tiny_model()

    optimizer = build(name, tiny_model, lr=0.0, eps=1e-3, fused=fused)
    optimizer.step(closure)
    plus, minus = seen
    moved = 0
    for b, p_plus, p_minus, after in zip(before, plus, minus, tiny_model.parameters()):
        if optimizer.layers is not None and torch.equal(p_plus, b):  # a layer the step did not choose (LeZO)
            assert torch.equal(p_minus, b) and torch.equal(after, b), "an unchosen layer is never touched"
            continue
        moved += 1
        assert not torch.equal(p_plus, b) and not torch.equal(p_minus, b), "both probes must move θ"
        torch.testing.assert_close(p_plus - b, b - p_minus, rtol=0, atol=1e-6)  # symmetric probes
        # three roundings of θ ± εd: a few units in the last place of |θ| + 2ε|d|
        bound = 4 * torch.finfo(torch.float32).eps * (b.abs() + 2 * (p_plus - b).abs() + 1e-30)
        assert ((after.detach() - b).abs() <= bound).all()
    assert moved >= 1


def test_fused_path_regenerates_noise_three_times_mezo_path_four(tiny_model):
    fused, mezo = build("zo-sgd", tiny_model), build("zo-sgd", TinyRegression(), fused=False)
    for _ in range(5):
        fused.step(tiny_model)
        mezo.step(tiny_model)
    assert (fused.noise.restarts, mezo.noise.restarts) == (15, 20)


@pytest.mark.parametrize("name", [n for n in registered(family="zo", estimator="central")
                                  if "cache_noise" in optimizers.get(n).hyperparameters()])
def test_noise_cache_draws_once_per_step_and_changes_no_bit(name):
    runs, draws = [], []
    for cache in (False, True):
        torch.manual_seed(0)
        model = TinyRegression()
        optimizer = build(name, model, cache_noise=cache)
        sampler, calls = optimizer.sampler, []
        optimizer.sampler = lambda *args: calls.append(1) or sampler(*args)
        for _ in range(6):
            optimizer.step(model)
        runs.append([p.detach().clone() for p in model.parameters()] + [
            b.clone() for state in optimizer.state.values() for b in state.values() if torch.is_tensor(b)])
        draws.append(len(calls))
        assert not optimizer._noise_cache  # nothing is held between steps
    assert all(torch.equal(x, y) for x, y in zip(*runs))
    tensors = len(list(TinyRegression().parameters()))
    # a schedule rebuilt from earlier steps (AdaMeZO) also draws their probes, once per step, cached or not
    horizon = optimizer.preconditioner.horizon if optimizer.preconditioner else 0
    rebuilt = sum(min(step - 1, horizon) for step in range(1, 7)) * tensors
    draws = [count - rebuilt for count in draws]
    assert draws[0] == 3 * draws[1]  # three passes draw, or one
    # every tensor once per step, or (LeZO) only the chosen layers' tensors
    assert draws[1] == 6 * tensors if optimizer.layers is None else 6 <= draws[1] < 6 * tensors


@pytest.mark.parametrize("name", ZO_NAMES)
def test_same_seed_gives_bitwise_identical_parameters(name):
    runs = []
    for seed in (3, 3, 4):
        torch.manual_seed(0)
        model = TinyRegression()
        optimizer = build(name, model, seed=seed)
        for _ in range(10):
            optimizer.step(model)
        runs.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


@pytest.mark.parametrize("name", ZO_NAMES)
def test_slice_by_slice_updates_are_bitwise_the_whole_ones(name, monkeypatch):
    """An elementwise chain moves large tensors in slices (zeroth_order.PIECE); with slices of 3 entries,
    which cut every tensor of the model at odd places, parameters and state end bitwise where whole-tensor
    updates put them, in fp32 (its vectorised kernels and their scalar tails)."""
    from zobench.optimizers import zeroth_order

    runs = []
    for piece in (1 << 30, 3):
        monkeypatch.setitem(zeroth_order.PIECE, "cpu", piece)
        torch.manual_seed(0)
        model = TinyRegression()
        optimizer = build(name, model, seed=2)
        for _ in range(5):
            optimizer.step(model)
        runs.append([p.detach().clone() for p in model.parameters()]
                    + [b.clone() for state in optimizer.state.values() for b in state.values() if torch.is_tensor(b)])
        preconditioner = getattr(optimizer, "preconditioner", None)
        if preconditioner is not None and preconditioner.elementwise:  # the slicing ran
            weight = model.hidden.weight
            pieces = list(optimizer._pieces(weight, optimizer.state[weight], [Sample(torch.zeros_like(weight))]))
            assert len(pieces) == (1 if piece > weight.numel() else -(-weight.numel() // piece))
    assert all(torch.equal(x, y) for x, y in zip(*runs))


@pytest.mark.parametrize("name", optimizers.names())
def test_state_holds_exactly_the_declared_buffers(name, tiny_model):
    info = optimizers.get(name)
    optimizer = build(name, tiny_model)
    for _ in range(3):
        optimizer.step(tiny_model)
    for parameter in tiny_model.parameters():
        state = optimizer.state[parameter]
        buffers = [v for v in state.values() if torch.is_tensor(v) and v.shape == parameter.shape]
        assert len(buffers) == info.state_buffers, name


@pytest.mark.parametrize("name", ZO_NAMES)
def test_state_dict_resume_continues_bitwise(name):
    def fresh():
        torch.manual_seed(0)
        model = TinyRegression()
        return model, build(name, model, seed=5)

    model, optimizer = fresh()
    for _ in range(4):
        optimizer.step(model)
    saved_model = {k: v.clone() for k, v in model.state_dict().items()}
    saved_optimizer = copy.deepcopy(optimizer.state_dict())  # torch returns live tensors
    for _ in range(4):
        optimizer.step(model)

    resumed_model, resumed = fresh()
    resumed_model.load_state_dict(saved_model)
    resumed.load_state_dict(saved_optimizer)
    for _ in range(4):
        resumed.step(resumed_model)
    for a, b in zip(model.parameters(), resumed_model.parameters()):
        assert torch.equal(a, b)


def test_non_finite_loss_raises_restores_and_does_not_count_the_step(tiny_model):
    optimizer = build("zo-adamu", tiny_model)
    before = [p.detach().clone() for p in tiny_model.parameters()]
    with pytest.raises(optimizers.NonFiniteLossError, match="non-finite loss at step 1"):
        optimizer.step(lambda: torch.tensor(float("nan")))
    assert optimizer.steps == 0
    for b, p in zip(before, tiny_model.parameters()):
        torch.testing.assert_close(p.detach(), b, rtol=0, atol=1e-6)


def test_frozen_parameters_are_never_touched(tiny_model):
    tiny_model.hidden.requires_grad_(False)
    frozen = [p.detach().clone() for p in tiny_model.hidden.parameters()]
    optimizer = build("zo-adamu", tiny_model)
    for _ in range(3):
        optimizer.step(tiny_model)
    assert all(torch.equal(a, b) for a, b in zip(frozen, tiny_model.hidden.parameters()))
    assert all(len(optimizer.state[p]) == 0 for p in tiny_model.hidden.parameters())


def test_decay_groups_exempt_biases_and_norms():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.LayerNorm(3))
    decayed, exempt = optimizers.decay_groups(model, 0.1)
    assert [p.shape for p in decayed["params"]] == [torch.Size([3, 3])]
    assert decayed["weight_decay"] == 0.1 and exempt["weight_decay"] == 0.0
    assert len(exempt["params"]) == 3  # linear bias, norm weight, norm bias


class LiveAllocations(TorchDispatchMode):
    """Tracks bytes of tensors allocated by torch ops (not views, not in-place results) while active."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self.paused = False

    def _release(self, nbytes):
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not self.paused:
            inputs = {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0] if torch.is_tensor(t)}
            for tensor in tree_flatten(out)[0]:
                if torch.is_tensor(tensor) and tensor.untyped_storage().data_ptr() not in inputs:
                    nbytes = tensor.untyped_storage().nbytes()
                    self.live += nbytes
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(tensor, self._release, nbytes)
        return out


@pytest.mark.parametrize("name, allowed", [("zo-sgd", 1), ("zo-adamu@delta", 6), ("zo-adam@delta", 4)])
def test_step_allocates_temporaries_of_one_tensor_at_a_time(name, allowed):
    """Temporaries are a few copies of the largest single tensor, never of the model (12 tensors)."""
    model = torch.nn.Sequential(*[torch.nn.Linear(256, 256) for _ in range(12)])
    largest = 256 * 256 * 4
    total = sum(p.numel() * 4 for p in model.parameters())
    x = torch.randn(2, 256)
    optimizer = build(name, model, lr=1e-4)
    optimizer.step(lambda: model(x).square().mean())  # state buffers are created on the first step
    tracker = LiveAllocations()

    def closure():  # the forward pass is inference memory, not the optimizer's
        tracker.paused = True
        loss = model(x).square().mean()
        tracker.paused = False
        return loss

    with tracker:
        optimizer.step(closure)
    assert tracker.peak <= allowed * largest + 4096
    assert tracker.peak < total / 1.5

"""Every built-in ZO optimizer against an independent dense re-statement of its maths: the paper's
family (tests/paper_maths.py) and ZO-Bench's methods (tests/zo_bench_maths.py). The list comes from
the registry: a built-in optimizer without a reference fails here until it gets one.

In fp64 the two must agree to rounding (1e-12); in fp32 to 1e-6 after 20 steps. The fp32 setting
uses a moderate ε and learning rate: the SPSA estimate divides loss differences by 2ε, so rounding
differences between two correct implementations grow by about 1/ε per step.
"""

import pytest
import torch
from conftest import TinyRegression
from zobench.problems.base import batch_slice
from frontier_maths import frontier_reference
from paper_maths import PAPER_SCHEDULES, dense_reference
from recent_maths import recent_reference
from zo_bench_maths import zo_bench_reference

from zobench import optimizers

STEPS, DECAY, SEED = 20, 0.1, 7
ANNEAL = dict(T1=5, T2=16, T3=20)  # all three phases of Eq. 7 inside 20 steps
SETTINGS = {torch.float32: dict(lr=3e-3, eps=5e-2, atol=1e-6),
            torch.float64: dict(lr=1e-2, eps=1e-2, atol=1e-12)}


ZO_BENCH = {"zo-sgd-sign", "zo-sgd-mmt", "zo-sgd-cons", "zo-adam", "forward-grad"}
RECENT = {"hizoo", "lozo", "lozo-m", "subzero", "sparse-mezo", "fzoo", "zo-muon"}
FRONTIER = {"meazo", "zo-mopi", "lezo", "adamezo", "dizo", "mezo-svrg", "grzo", "grzo-lozo", "grzo-sparse", "agzo"}
# hyperparameters set for the comparison where a method declares them: a short anneal and subspace
# period (so both change within 20 steps), a curvature smoothing that moves HiZOO's Σ, and DiZO's
# projection every 7 steps
SETTINGS_OF_METHODS = {**ANNEAL, "period": 7, "hessian_smooth": 0.1, "interval": 7}
BUILT_IN = [name for name in optimizers.names()
            if optimizers.get(name).family in ("zo", "fg") and optimizers.get(name).distribution is None]
CASES = [(name, fused) for name in BUILT_IN
         for fused in ((True, False) if "fused" in optimizers.get(name).hyperparameters() else (True,))]


def reference_of(name):
    """The dense restatement of ``name``, chosen by its declared axes (names are not parsed)."""
    info = optimizers.get(name)
    if name in ZO_BENCH:
        return lambda *args, **kwargs: zo_bench_reference(name, *args, **kwargs)
    if name in RECENT:
        return lambda *args, **kwargs: recent_reference(name, *args, **kwargs)
    if name in FRONTIER:
        return lambda *args, **kwargs: frontier_reference(name, *args, **kwargs)
    if info.estimator == "central" and info.schedule in PAPER_SCHEDULES:
        return lambda *args, **kwargs: dense_reference(info.schedule, info.placement, *args, **kwargs)
    return None


def test_every_built_in_optimizer_has_a_dense_reference():
    assert [name for name in BUILT_IN if reference_of(name) is None] == []
    assert ZO_BENCH | RECENT | FRONTIER <= set(BUILT_IN)


def _stepped(name, dtype, lr, weight_decay, **hyperparameters):
    """``name`` stepped STEPS times on the tiny regression, with what a restatement needs to follow it:
    (parameters in the optimizer's order, their names, initial values, decay per tensor, the loss)."""
    torch.manual_seed(0)
    model = TinyRegression().to(dtype)
    model.inputs, model.targets = model.inputs.to(dtype), model.targets.to(dtype)
    optimizer = optimizers.create(name, optimizers.decay_groups(model, weight_decay), lr=lr, seed=SEED,
                                  **hyperparameters)
    # noise is drawn in the optimizer's parameter order: group by group, as torch.optim iterates
    name_of = {p: n for n, p in model.named_parameters()}
    ordered = [p for group in optimizer.param_groups for p in group["params"]]
    names = [name_of[p] for p in ordered]
    initial = [p.detach().clone() for p in ordered]
    decay = [0.0 if "bias" in n else weight_decay for n in names]
    for _ in range(STEPS):
        optimizer.step(model)

    def loss_of(values, rows=slice(None)):
        return torch.func.functional_call(model, dict(zip(names, values)), kwargs={"rows": rows})

    return ordered, names, initial, decay, loss_of


def restated_options(name, names, extra, loss_of):
    """What a 2025–26 restatement takes besides the common arguments: the tensors' names, the declared
    interval or period, and the loss on a slice of the batch (GRZO's)."""
    inputs = TinyRegression().inputs

    def activations_of(values):  # what TinyRegression's two linear layers are called with
        x = inputs.to(values["hidden.weight"].dtype)
        return {"hidden.weight": x, "out.weight": torch.tanh(x @ values["hidden.weight"].T + values["hidden.bias"])}

    return {"names": names, **{k: v for k, v in extra.items() if k in ("interval", "period")},
            "part_loss_of": lambda values, part, parts: loss_of(values, batch_slice(len(inputs), part, parts)),
            "activations_of": activations_of}


@pytest.mark.parametrize("dtype", SETTINGS, ids=["fp32", "fp64"])
@pytest.mark.parametrize("name,fused", CASES, ids=[f"{n}-{'fused' if f else 'mezo-passes'}" for n, f in CASES])
def test_matches_dense_reference_after_20_steps(name, fused, dtype):
    lr, eps, atol = SETTINGS[dtype]["lr"], SETTINGS[dtype]["eps"], SETTINGS[dtype]["atol"]
    if optimizers.get(name).estimator.startswith("normalised"):
        lr *= eps  # a normalised step is ĝ/σ, about 1/ε larger than the others': steps of comparable size
    declared = optimizers.get(name).hyperparameters()
    extra = {key: value for key, value in {**SETTINGS_OF_METHODS, "eps": eps, "fused": fused}.items()
             if key in declared}
    weight_decay = DECAY if "weight_decay" in declared else 0.0
    ordered, names, initial, decay, loss_of = _stepped(name, dtype, lr, weight_decay, **extra)
    extra_reference = ({"anneal": (ANNEAL["T1"], ANNEAL["T2"], ANNEAL["T3"])} if name not in ZO_BENCH | RECENT | FRONTIER
                       else restated_options(name, names, extra, loss_of) if name in FRONTIER else {})
    expected = reference_of(name)(loss_of, initial, decay, STEPS, lr, eps, SEED, **extra_reference)
    for parameter_name, got, want, start in zip(names, ordered, expected, initial):
        assert (want - start).abs().max() > 100 * atol, "the reference must move the parameters"
        torch.testing.assert_close(got.detach(), want, rtol=0, atol=atol,
                                   msg=lambda text: f"{name}, {parameter_name}: {text}")


# each source's other reading (docs/optimizers.md), against the same restatement given that reading
READINGS = [("hizoo", {"rule": "paper"}), ("lozo-m", {"first_momentum": "estimate"}), ("subzero", {"scale": "released"}),
            ("dizo", {"reading": "gamma", "projection_eps": 0.01}), ("grzo", {"reading": "centred"})]


@pytest.mark.parametrize("name,reading", READINGS, ids=[name for name, _ in READINGS])
def test_each_sources_reading_matches_its_restatement(name, reading):
    lr, eps, atol = SETTINGS[torch.float64]["lr"], SETTINGS[torch.float64]["eps"], SETTINGS[torch.float64]["atol"]
    declared = optimizers.get(name).hyperparameters()
    extra = {key: value for key, value in SETTINGS_OF_METHODS.items() if key in declared}
    ordered, names, initial, decay, loss_of = _stepped(name, torch.float64, lr, DECAY, eps=eps, **extra, **reading)
    restated = restated_options(name, names, extra, loss_of) if name in FRONTIER else {}
    expected = reference_of(name)(loss_of, initial, decay, STEPS, lr, eps, SEED, **reading, **restated)
    default = reference_of(name)(loss_of, initial, decay, STEPS, lr, eps, SEED, **restated)
    assert max(float((a - b).abs().max()) for a, b in zip(expected, default)) > 100 * atol, "the readings differ"
    for got, want in zip(ordered, expected):
        torch.testing.assert_close(got.detach(), want, rtol=0, atol=atol)


@pytest.mark.parametrize("shape", [(7, 3), (3, 7), (5, 5)], ids=["tall", "wide", "square"])
def test_newton_schulz_is_the_quintic_on_the_singular_values(shape):
    from recent_maths import _msign

    from zobench.optimizers.transforms import newton_schulz

    matrix = torch.randn(shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    got = newton_schulz(matrix)
    torch.testing.assert_close(got, _msign(matrix), rtol=0, atol=1e-12)
    singular_values = torch.linalg.svdvals(got)
    assert singular_values.min() > 0.6 and singular_values.max() < 1.25  # near-orthogonal, as Muon's


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16], ids=["fp64", "bf16"])
def test_orthogonalisation_in_the_subspace_is_the_full_one(dtype):
    """NS(L Rᵀ) computed from the factors (thin QR of L, the iteration on r × n) is the full-space value."""
    from zobench.optimizers.noise import Sample
    from zobench.optimizers.transforms import orthogonalised

    generator = torch.Generator().manual_seed(3)
    left, right = (torch.randn(shape, generator=generator, dtype=torch.float64) for shape in [(40, 2), (30, 2)])
    full = orthogonalised().update({}, Sample(left @ right.T), 1)
    factored = orthogonalised().update({}, Sample(factors=(left.to(dtype), right.to(dtype)), shape=(40, 30)), 1)
    assert factored.factors is not None  # the direction stays factored: θ is moved by addmm_
    atol = 1e-12 if dtype == torch.float64 else 0.05  # bf16 keeps 8 bits: |entries| ≤ 1, a few roundings
    torch.testing.assert_close(factored.fresh.double(), full, rtol=0, atol=atol)


def test_zo_muon_orthogonalises_in_its_subspace(monkeypatch):
    """ZO-Muon's probes share their kept basis, so the step iterates on the r × n coordinates, never m × n."""
    from zobench.optimizers import transforms

    seen = []
    original = transforms.newton_schulz
    monkeypatch.setattr(transforms, "newton_schulz", lambda matrix, steps=5: seen.append(tuple(matrix.shape)) or original(matrix, steps))
    weight = torch.nn.Parameter(torch.randn(64, 48, dtype=torch.float64))
    optimizer = optimizers.create("zo-muon", [weight], lr=1e-3, probes=3, rank=2, seed=0)
    optimizer.step(lambda: (weight ** 2).sum())
    assert seen == [(2, 48)]


def test_sparse_mezo_moves_only_the_smallest_magnitudes(tiny_model):
    weight = tiny_model.hidden.weight
    before = weight.detach().clone()
    optimizer = optimizers.create("sparse-mezo", [weight], lr=1e-2, sparsity=0.75, seed=1)
    optimizer.step(tiny_model)
    moved = (weight.detach() != before)
    assert moved.sum() == 5  # a quarter of 20 entries, and only those
    assert before.abs()[moved].max() < before.abs()[~moved].min()

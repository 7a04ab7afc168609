"""Every ZO optimizer against an independent dense re-statement of its maths (tests/paper_maths.py).

In fp64 the two must agree to rounding (1e-12); in fp32 to 1e-6 after 20 steps. The fp32 setting
uses a moderate ε and learning rate: the SPSA estimate divides loss differences by 2ε, so rounding
differences between two correct implementations grow by about 1/ε per step.
"""

import pytest
import torch
from conftest import ZO_NAMES, TinyRegression
from paper_maths import dense_reference

from zobench import optimizers

STEPS, DECAY, SEED = 20, 0.1, 7
ANNEAL = dict(T1=5, T2=16, T3=20)  # all three phases of Eq. 7 inside 20 steps
SETTINGS = {torch.float32: dict(lr=3e-3, eps=5e-2, atol=1e-6),
            torch.float64: dict(lr=1e-2, eps=1e-2, atol=1e-12)}


@pytest.mark.parametrize("dtype", SETTINGS, ids=["fp32", "fp64"])
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "mezo-passes"])
@pytest.mark.parametrize("name", ZO_NAMES)
def test_matches_dense_reference_after_20_steps(name, fused, dtype):
    torch.manual_seed(0)
    model = TinyRegression().to(dtype)
    model.inputs, model.targets = model.inputs.to(dtype), model.targets.to(dtype)
    lr, eps, atol = SETTINGS[dtype]["lr"], SETTINGS[dtype]["eps"], SETTINGS[dtype]["atol"]
    extra = ANNEAL if "adamu" in name else {}
    optimizer = optimizers.create(name, optimizers.decay_groups(model, DECAY), lr=lr, eps=eps,
                                  seed=SEED, fused=fused, **extra)
    # noise is drawn in the optimizer's parameter order: group by group, as torch.optim iterates
    name_of = {p: n for n, p in model.named_parameters()}
    ordered = [p for group in optimizer.param_groups for p in group["params"]]
    names = [name_of[p] for p in ordered]
    initial = [p.detach().clone() for p in ordered]
    decay = [0.0 if "bias" in n else DECAY for n in names]

    for _ in range(STEPS):
        optimizer.step(model)

    def loss_of(values):
        return torch.func.functional_call(model, dict(zip(names, values)))

    expected = dense_reference(name, loss_of, initial, decay, STEPS, lr, eps, SEED,
                               anneal=(ANNEAL["T1"], ANNEAL["T2"], ANNEAL["T3"]))
    for parameter_name, got, want, start in zip(names, ordered, expected, initial):
        assert (want - start).abs().max() > 100 * atol, "the reference must move the parameters"
        torch.testing.assert_close(got.detach(), want, rtol=0, atol=atol,
                                   msg=lambda text: f"{name}, {parameter_name}: {text}")

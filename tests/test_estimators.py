"""The estimator stage: each estimator's ĝ against a hand computation, the forward gradient against
backpropagation on real transformer blocks, and the estimate reaching schedules that ask for it."""

import pytest
import torch
from tiny_lm import tiny_bert, tiny_llama

from zobench import optimizers
from zobench.optimizers import NonFiniteLossError, ZerothOrder
from zobench.optimizers import estimators, transforms
from zobench.optimizers.noise import gaussian, step_seed

SEED, LR, EPS = 4, 0.05, 1e-2


def quadratic(point):
    scales = torch.tensor([1.0, 3.0, 0.5], dtype=torch.float64)
    return (scales * (point - 0.3) ** 2).sum() + point.prod()


def probe_noise(step, index):
    """Probe ``index`` of step ``step``: the step's seed for the first, a hash of it for the others."""
    seed = step_seed(SEED, step)
    generator = torch.Generator().manual_seed(seed if index == 0 else step_seed(seed, index))
    return torch.randn(3, generator=generator, dtype=torch.float64)


@pytest.mark.parametrize("estimator, q", [(estimators.central(3), 3), (estimators.one_sided(2), 2),
                                          (estimators.one_sided(), 1)])
def test_multi_probe_estimates_average_their_directions(estimator, q):
    start = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)
    point = torch.nn.Parameter(start.clone())
    optimizer = ZerothOrder([point], chain=(transforms.scale_by_estimate(),), sampler=gaussian,
                            estimator=estimator, lr=LR, eps=EPS, seed=SEED)
    optimizer.step(lambda: quadratic(point))
    theta, grads, base = start, [], float(quadratic(start))
    for i in range(q):
        z = probe_noise(1, i)
        if estimator.name.startswith("central"):
            grads.append((float(quadratic(theta + EPS * z)) - float(quadratic(theta - EPS * z))) / (2 * EPS))
        else:
            grads.append((float(quadratic(theta + EPS * z)) - base) / EPS)
    expected = theta - LR * sum(g * probe_noise(1, i) for i, g in enumerate(grads)) / q
    torch.testing.assert_close(point.detach(), expected, rtol=0, atol=1e-12)
    assert optimizer.last_estimate.grads == pytest.approx(grads, abs=1e-9)
    assert len(optimizer.last_record["evaluations"]) == (2 * q if estimator.name.startswith("central") else q + 1)


def test_placement_delta_takes_one_probe():
    with pytest.raises(ValueError, match="placement delta takes one probe"):
        ZerothOrder([torch.nn.Parameter(torch.zeros(2))], chain=(transforms.adam(), transforms.scale_by_estimate()),
                    sampler=gaussian, estimator=estimators.central(2), lr=0.1)


def test_a_schedule_that_asks_receives_the_steps_estimate():
    seen = []

    def update(state, x, t, estimate):
        seen.append(estimate)
        return x.fresh

    noted = transforms.Transform("noted", (), lambda state, x, t: x.fresh, update, takes_estimate=True)
    point = torch.nn.Parameter(torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64))
    optimizer = ZerothOrder([point], chain=(transforms.scale_by_estimate(), noted), sampler=gaussian, lr=LR, eps=EPS,
                            seed=SEED)
    loss = optimizer.step(lambda: quadratic(point))
    plus, minus = optimizer.last_record["evaluations"]
    assert seen == [optimizer.last_estimate] and seen[0].loss == loss == plus
    assert seen[0].grads == ((plus - minus) / (2 * EPS),)


def test_a_non_finite_trial_restores_the_parameters():
    start = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)
    point = torch.nn.Parameter(start.clone())
    optimizer = optimizers.create("zo-sgd-cons", [point], lr=LR, eps=EPS, seed=SEED)
    calls = []

    def closure():  # the descent trial (4th evaluation) overflows
        calls.append(1)
        return quadratic(point) * (float("inf") if len(calls) == 4 else 1.0)

    with pytest.raises(NonFiniteLossError, match="evaluation 4 of the step"):
        optimizer.step(closure)
    torch.testing.assert_close(point.detach(), start, rtol=0, atol=1e-12)
    assert optimizer.steps == 0


# In fp64 the two sides differ by rounding alone. BERT runs wholly in fp64 (~1e-16 per operation, so
# 1e-9 holds on any CPU); Llama's RMSNorm computes in fp32 whatever the model's dtype (transformers
# does so on purpose), so its rounding, 6e-8 per operation, bounds the agreement: 1e-5 leaves 100x.
# (In fp32 both agreed to ~1e-4 only, and how closely depended on the CPU's kernels.)
@pytest.mark.parametrize("model_of, rel", [(tiny_llama, 1e-5), (lambda: tiny_bert("encoder"), 1e-9)],
                         ids=["llama", "bert"])
def test_forward_gradient_is_the_backpropagated_gradient_along_the_probe(model_of, rel):
    """ĝ from one pass with tangents equals ∇L·z with ∇L from backpropagation (attention included)."""
    model = model_of().double()
    tokens = torch.randint(5, 24, (3, 9), generator=torch.Generator().manual_seed(0))

    def loss():
        out = model(input_ids=tokens)
        hidden = out.logits if hasattr(out, "logits") else out.last_hidden_state
        return hidden.square().mean()

    trainable = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in trainable]
    model.zero_grad()
    loss().backward()
    gradient = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in trainable]  # the pooler is unused
    optimizer = optimizers.create("forward-grad", trainable, lr=0.0, seed=SEED)
    optimizer.step(loss)
    generator = torch.Generator().manual_seed(step_seed(SEED, 1))
    z = [torch.randn(p.shape, generator=generator, dtype=p.dtype) for p in trainable]
    expected = sum(float((g * d).sum()) for g, d in zip(gradient, z))
    assert optimizer.last_estimate.grads[0] == pytest.approx(expected, rel=rel, abs=1e-12)
    assert all(torch.equal(p.detach(), b) for p, b in zip(trainable, before))  # lr 0: the weights are untouched
    assert all(type(p) is torch.nn.Parameter for p in trainable)  # the dual swap is undone

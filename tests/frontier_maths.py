"""Independent re-statements of the 2025–26 methods, from their rules (the sources are named in each
method's docstring and in docs/optimizers.md).

Explicit tensors and generators: step t's probe i is drawn tensor after tensor from a generator seeded
with the step's seed (probe 0) or a hash of it and i (the others), as zobench's streams draw. Probe
points are formed as ``torch.add(θ, d, alpha=…)`` in the order an in-place implementation applies them,
so both sides round alike.
"""

import math

import torch

from zobench.optimizers.noise import step_seed


def _gaussian(theta, seed):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(p.shape, generator=generator, dtype=p.dtype) for p in theta]


def _central(loss_of, theta, directions, eps):
    """Central differences along each direction in turn, θ moved +ε, −2ε, +ε; returns (θ, ĝ per probe)."""
    grads = []
    for z in directions:
        plus = [torch.add(p, d, alpha=eps) for p, d in zip(theta, z)]
        minus = [torch.add(p, d, alpha=-2 * eps) for p, d in zip(plus, z)]
        theta = [torch.add(p, d, alpha=eps) for p, d in zip(minus, z)]
        grads.append((float(loss_of(plus)) - float(loss_of(minus))) / (2 * eps))
    return theta, grads


def frontier_reference(method, loss_of, theta, decay, steps, lr, eps, seed, beta=0.999, zeta=1e-8, probes=1):
    """Runs ``method`` from ``theta`` (a list of tensors); returns the final tensors."""
    theta = [p.clone() for p in theta]
    second = 0.0
    for t in range(1, steps + 1):
        seed_t = step_seed(seed, t)
        directions = [_gaussian(theta, seed_t if i == 0 else step_seed(seed_t, i)) for i in range(probes)]
        theta, grads = _central(loss_of, theta, directions, eps)
        if method == "meazo":  # v_t = βv + (1−β) mean(ĝ)², scale 1/(√(v_t/(1−β^t)) + ζ), decoupled decay
            mean = sum(grads) / probes
            second = beta * second + (1 - beta) * mean * mean
            scale = 1 / (math.sqrt(second / (1 - beta ** t)) + zeta)
            step = [sum(g * z[k] for g, z in zip(grads, directions)) * (scale / probes) for k in range(len(theta))]
            theta = [(1 - lr * wd) * p - lr * s for p, s, wd in zip(theta, step, decay)]
        else:
            raise ValueError(f"no restatement of {method}")
    return theta

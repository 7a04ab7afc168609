"""Independent re-statements of ZO-Bench's methods (Zhang et al., ICML 2024), written from their rules.

Explicit vectors, one step at a time; the probe points are formed as ``torch.add(θ, d, alpha=…)`` in
the order an in-place implementation applies them, so both sides round alike. ZO-Adam is checked
against ``torch.optim.Adam`` fed ĝz, which is how ZO-Bench's code runs it.
"""

import torch
from paper_maths import draws

from zobench.optimizers.noise import step_seed


def _central(loss_of, theta, z, eps):
    plus = [torch.add(p, d, alpha=eps) for p, d in zip(theta, z)]
    minus = [torch.add(p, d, alpha=-2 * eps) for p, d in zip(plus, z)]
    restored = [torch.add(p, d, alpha=eps) for p, d in zip(minus, z)]
    return (float(loss_of(plus)) - float(loss_of(minus))) / (2 * eps), restored


def zo_bench_reference(method, loss_of, theta, decay, steps, lr, eps, seed, momentum=0.9):
    """Runs ZO-Bench's ``method`` from ``theta`` (a list of tensors); returns the final tensors."""
    theta = [p.clone() for p in theta]
    buffers = [torch.zeros_like(p) for p in theta]
    adam = None
    if method == "zo-adam":
        leaves = [torch.nn.Parameter(p.clone()) for p in theta]
        adam = torch.optim.Adam(leaves, lr=lr)
    for t in range(1, steps + 1):
        z = [draw[0] for draw in draws(theta, step_seed(seed, t), 1)]
        if method == "forward-grad":
            _, derivative = torch.func.jvp(lambda *values: loss_of(list(values)), tuple(theta), tuple(z))
            g = float(derivative)
        else:
            g, theta = _central(loss_of, theta if adam is None else [p.detach() for p in leaves], z, eps)
        if method == "zo-sgd-sign":
            g = 1.0 if g > 0 else -1.0 if g < 0 else 0.0
        if method == "zo-sgd-cons":
            before = float(loss_of(theta))
            descent = [torch.add(p, d, alpha=-g * lr) for p, d in zip(theta, z)]
            ascent = [torch.add(p, d, alpha=2 * g * lr) for p, d in zip(descent, z)]
            l_descent, l_ascent = float(loss_of(descent)), float(loss_of(ascent))
            # ZO-Bench: if the descent trial is worse than θ, keep θ unless the ascent trial is no worse;
            # otherwise keep the descent trial unless the ascent trial is no worse
            if l_descent > before:
                scale = 0.0 if before < l_ascent else -1.0
            else:
                scale = 1.0 if l_descent < l_ascent else -1.0
            back = [torch.add(p, d, alpha=-g * lr) for p, d in zip(ascent, z)]
            theta = [torch.add(p, d * (scale * g), alpha=-lr) for p, d in zip(back, z)]
            continue
        grads = [g * d + wd * p for d, p, wd in zip(z, theta, decay)]
        if adam is not None:
            for leaf, grad in zip(leaves, grads):
                leaf.grad = grad
            adam.step()
            continue
        if method == "zo-sgd-mmt":
            buffers = [momentum * b + grad for b, grad in zip(buffers, grads)]
            grads = buffers
        theta = [p - lr * grad for p, grad in zip(theta, grads)]
    return theta if adam is None else [leaf.detach() for leaf in leaves]

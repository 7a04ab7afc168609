"""Independent re-statements of the paper's maths, written from the equations, for the tests.

Nothing here imports zobench's optimizer internals except the public step-seed function (the seed
sequence is zobench's own definition, not the paper's).
"""

import math

import torch

from zobench.optimizers.noise import step_seed


def anneal_value(t, phi, T1, T2, T3, last):
    """Eq. 7 with the numerator t - T1 and a denominator shrinking once per step."""
    if t < T1:
        return 1.0
    if t >= T2:
        return last
    denominator = T3 - (t - T1) * phi * (T3 - T2) / (T2 - T1)
    return 0.5 * (1.0 + math.cos(math.pi * (t - T1) / denominator))


def draws(like, seed, per_tensor):
    """Standard normals in parameter order, ``per_tensor`` draws for each tensor, from one generator."""
    generator = torch.Generator().manual_seed(seed)
    return [[torch.randn(p.shape, generator=generator, dtype=p.dtype) for _ in range(per_tensor)] for p in like]


PAPER_SCHEDULES = ("sgd", "adam", "adamw", "adamax", "adamm", "adamu")


def dense_reference(schedule, placement, loss_of, theta, decay, steps, lr, eps, seed, betas=(0.9, 0.999),
                    sigma=1e-8, anneal=None):
    """Runs the paper's ``schedule`` in ``placement`` ("g" or "δ") on explicit tensors, with the central
    estimate; ``loss_of(list_of_tensors)`` gives the loss.

    ``theta``: initial parameter values; ``decay``: weight decay per tensor. Returns final values.
    """
    placement = "delta" if placement == "δ" else placement
    b1, b2 = betas
    theta = [p.clone() for p in theta]
    m = [torch.zeros_like(p) for p in theta]
    v = [torch.zeros_like(p) for p in theta]
    v_max = [torch.zeros_like(p) for p in theta]
    for t in range(1, steps + 1):
        per_tensor = 2 if (schedule, placement) == ("adamu", "delta") else 1
        noise = draws(theta, step_seed(seed, t), per_tensor)
        if schedule == "adamu":
            alpha, beta1, beta2 = (anneal_value(t, phi, *anneal, last=0.9) for phi in (1.0, 0.1, 1.5))
        # the probe of each tensor
        probes, fresh, centre = [], [], []
        for i in range(len(theta)):
            z = noise[i][0]
            if placement == "g":
                probes.append(z)
            elif schedule == "adamu":
                fresh.append(math.sqrt(alpha) * z)
                centre.append(m[i] + math.sqrt(1 - alpha) * noise[i][1])
                probes.append(beta1 * fresh[i] + (1 - beta1) * centre[i])
            elif schedule == "adamm":
                probes.append(b1 * m[i] + (1 - b1) * z)
            else:  # adam, adamw, adamax
                probes.append((b1 * m[i] + (1 - b1) * z) / (1 - b1 ** t))
        # θ ± εd as torch.add(θ, d, alpha=...), the rounding zobench's in-place passes have
        plus = [torch.add(p, d, alpha=eps) for p, d in zip(theta, probes)]
        minus = [torch.add(p, d, alpha=-2 * eps) for p, d in zip(plus, probes)]
        theta = [torch.add(p, d, alpha=eps) for p, d in zip(minus, probes)]
        g = (float(loss_of(plus)) - float(loss_of(minus))) / (2 * eps)
        for i, p in enumerate(theta):
            z, wd = noise[i][0], decay[i]
            if placement == "g":
                x = g * z
                if schedule in ("sgd", "adam", "adamax", "adamm"):
                    x = x + wd * p  # coupled L2
                    shrink = 1.0
                else:
                    shrink = 1 - lr * wd  # decoupled
                step_scale = lr
            else:
                x = z
                shrink, step_scale = 1 - lr * wd, lr * g
            if schedule == "sgd":
                direction = x
            elif schedule in ("adam", "adamw"):
                m[i] = b1 * m[i] + (1 - b1) * x
                v[i] = b2 * v[i] + (1 - b2) * x * x
                direction = (m[i] / (1 - b1 ** t)) / (torch.sqrt(v[i] / (1 - b2 ** t)) + sigma)
            elif schedule == "adamax":
                m[i] = b1 * m[i] + (1 - b1) * x
                v[i] = torch.maximum(b2 * v[i], x.abs() + sigma)
                direction = m[i] / ((1 - b1 ** t) * v[i])
            elif schedule == "adamm":
                m[i] = b1 * m[i] + (1 - b1) * x
                v[i] = b2 * v[i] + (1 - b2) * x * x
                v_max[i] = torch.maximum(v_max[i], v[i])
                direction = m[i] / (torch.sqrt(v_max[i]) + sigma)
            elif schedule == "adamu":
                if placement == "g":
                    f, c = x, m[i]
                else:
                    f, c = fresh[i], centre[i]
                m[i] = beta1 * f + (1 - beta1) * c
                second = beta2 * f * f + (1 - beta2) * c * c
                direction = m[i] / torch.sqrt(second + sigma)
            theta[i] = shrink * p - step_scale * direction
    return theta

"""Independent re-statements of the 2024–2026 methods (HiZOO, LOZO, SubZero, FZOO), from their rules.

Explicit tensors and explicit generators: the step's generator (seeded with the step's seed, drawing
tensor after tensor), the lazy generator of LOZO's and SubZero's kept factors (seeded by the run's
seed and the block of steps), and the extra probes of FZOO (seeded by a hash of the step's seed and
the probe's index). Probe points are formed as ``torch.add(θ, d, alpha=…)`` in the order an in-place
implementation applies them, so both sides round alike.
"""

import statistics

import torch

from zobench.optimizers.noise import step_seed


def _probe(theta, seed, method, t, run_seed, rank, period):
    """The probe directions of one probe: one tensor per parameter."""
    step, lazy = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(step_seed(run_seed, -1 - (t - 1) // period))
    directions = []
    for p in theta:
        if method in ("lozo", "subzero") and p.dim() >= 2:
            m, n = p.shape[0], p.numel() // p.shape[0]
            if method == "lozo":
                v = torch.randn((n, rank), generator=lazy, dtype=p.dtype)
                u = torch.randn((m, rank), generator=step, dtype=p.dtype)
                directions.append((u @ v.T).reshape(p.shape))
            else:
                r = min(rank, m, n)
                u = torch.linalg.qr(torch.randn((m, r), generator=lazy, dtype=p.dtype))[0]
                v = torch.linalg.qr(torch.randn((n, r), generator=lazy, dtype=p.dtype))[0]
                core = torch.randn((r, r), generator=step, dtype=p.dtype)
                directions.append((u @ core @ v.T).reshape(p.shape))
        else:
            z = torch.randn(p.shape, generator=step, dtype=p.dtype)
            directions.append(torch.sign(z) if method == "fzoo" else z)
    return directions


def recent_reference(method, loss_of, theta, decay, steps, lr, eps, seed, hessian_smooth=0.1, rank=None,
                     period=7, probes=8):
    """Runs ``method`` from ``theta`` (a list of tensors); returns the final tensors."""
    rank = rank or {"lozo": 1, "subzero": 24}.get(method)
    theta = [p.clone() for p in theta]
    sigma = [torch.ones_like(p) for p in theta]
    for t in range(1, steps + 1):
        seed_t = step_seed(seed, t)
        if method == "fzoo":
            base = float(loss_of(theta))
            directions, losses = [], []
            for i in range(probes):
                u = _probe(theta, seed_t if i == 0 else step_seed(seed_t, i), method, t, seed, rank, period)
                plus = [torch.add(p, d, alpha=eps) for p, d in zip(theta, u)]
                losses.append(float(loss_of(plus)))
                theta = [torch.add(p, d, alpha=-eps) for p, d in zip(plus, u)]
                directions.append(u)
            spread = statistics.stdev(losses) + 1e-8
            # θ ← θ − η g/σ, g = (1/εN) Σ (l_i − l_0) u_i, with coupled L2 decay
            g = [sum(((loss - base) / eps / spread / probes) * u[k] for loss, u in zip(losses, directions))
                 for k in range(len(theta))]
            theta = [p - lr * (gk + wd * p) for p, gk, wd in zip(theta, g, decay)]
            continue
        z = _probe(theta, seed_t, method, t, seed, rank, period)
        if method == "hizoo":
            base = float(loss_of(theta))
            d = [s.sqrt() * zi for s, zi in zip(sigma, z)]
        else:
            d = z
        plus = [torch.add(p, di, alpha=eps) for p, di in zip(theta, d)]
        minus = [torch.add(p, di, alpha=-2 * eps) for p, di in zip(plus, d)]
        theta = [torch.add(p, di, alpha=eps) for p, di in zip(minus, d)]
        l_plus, l_minus = float(loss_of(plus)), float(loss_of(minus))
        g = (l_plus - l_minus) / (2 * eps)
        if method == "hizoo":
            curvature = abs(l_plus + l_minus - 2 * base) / (2 * eps * eps)
            sigma = [(1 - hessian_smooth) * s + hessian_smooth * curvature * zi * zi / s for s, zi in zip(sigma, z)]
            theta = [(1 - lr * wd) * p - lr * g * s.sqrt() * zi for p, s, zi, wd in zip(theta, sigma, z, decay)]
        else:  # LOZO, SubZero: MeZO's update with their probes, coupled L2 decay
            theta = [p - lr * (g * zi + wd * p) for p, zi, wd in zip(theta, z, decay)]
    return theta

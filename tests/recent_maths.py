"""Independent re-statements of the 2024–2026 methods (HiZOO, LOZO, LOZO-M, SubZero, Sparse-MeZO, FZOO,
ZO-Muon), from their rules.

Explicit tensors and explicit generators: the step's generator (seeded with the step's seed, drawing
tensor after tensor), the lazy generator of LOZO's, SubZero's and ZO-Muon's kept factors (seeded by the run's
seed and the block of steps), and the extra probes of FZOO and ZO-Muon (seeded by a hash of the step's seed and
the probe's index). Probe points are formed as ``torch.add(θ, d, alpha=…)`` in the order an in-place
implementation applies them, so both sides round alike.
"""

import math
import statistics

import torch

from zobench.optimizers.noise import step_seed


MUON = (3.4445, -4.7750, 2.0315)  # the quintic's published coefficients


def _msign(g):
    """Muon's five Newton–Schulz steps, applied to the singular values of an SVD."""
    u, s, vh = torch.linalg.svd(g, full_matrices=False)
    x = s / (torch.linalg.norm(g) + 1e-7)
    for _ in range(5):
        x = MUON[0] * x + MUON[1] * x ** 3 + MUON[2] * x ** 5
    return u @ torch.diag(x) @ vh


def _packed_signs(p, generator):
    """±1 from the bits of 64-bit draws, bit k of each word in turn (Python's two's-complement shifts)."""
    words = torch.randint(-2 ** 63, 2 ** 63 - 1, ((p.numel() + 63) // 64,), generator=generator, dtype=torch.int64)
    bits = [(word >> k) & 1 for word in words.tolist() for k in range(64)][:p.numel()]
    return (2 * torch.tensor(bits, dtype=p.dtype) - 1).reshape(p.shape)


def _probe(theta, seed, method, t, run_seed, rank, period, sparsity=0.75, scale="paper"):
    """The probe directions of one probe: one (tensor, (U, V) or None) per parameter."""
    step, lazy = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(step_seed(run_seed, -1 - (t - 1) // period))
    directions = []
    for p in theta:
        m, n = p.shape[0], p.numel() // p.shape[0]
        if method in ("lozo", "lozo-m") and p.dim() >= 2:
            v = torch.randn((n, rank), generator=lazy, dtype=p.dtype)
            u = torch.randn((m, rank), generator=step, dtype=p.dtype)
            directions.append(((u @ v.T).reshape(p.shape), (u, v)))
        elif method == "subzero" and p.dim() >= 2:
            r = min(rank, m, n)
            u = torch.linalg.qr(torch.randn((m, r), generator=lazy, dtype=p.dtype))[0]
            v = torch.linalg.qr(torch.randn((n, r), generator=lazy, dtype=p.dtype))[0]
            core = torch.randn((r, r), generator=step, dtype=p.dtype)
            stretch = math.sqrt(m * n) / r if scale == "released" else 1.0  # SubZero's released code
            directions.append(((u @ core @ v.T * stretch).reshape(p.shape), None))
        elif method == "zo-muon" and p.dim() >= 2:
            r = min(rank, m)
            basis = torch.linalg.qr(torch.randn((m, r), generator=lazy, dtype=p.dtype))[0]
            directions.append(((basis @ torch.randn((r, n), generator=step, dtype=p.dtype)).reshape(p.shape), None))
        elif method == "fzoo":
            directions.append((_packed_signs(p, step), None))
        else:
            z = torch.randn(p.shape, generator=step, dtype=p.dtype)
            if method == "sparse-mezo":  # the smallest-|θ| quarter of each tensor, at least one entry
                ordered = p.abs().flatten().sort().values
                z = z * (p.abs() <= ordered[math.ceil((1 - sparsity) * p.numel()) - 1])
            directions.append((z, None))
    return directions


def recent_reference(method, loss_of, theta, decay, steps, lr, eps, seed, hessian_smooth=0.1, rank=None,
                     period=7, probes=None, momentum=0.9, rule="released", first_momentum="zero", scale="paper"):
    """Runs ``method`` from ``theta`` (a list of tensors); returns the final tensors. ``rule`` (HiZOO),
    ``first_momentum`` (LOZO-M) and ``scale`` (SubZero) pick a source's reading (docs/optimizers.md)."""
    rank = rank or {"lozo": 1, "lozo-m": 1, "subzero": 24, "zo-muon": 2}.get(method)
    probes = probes or {"fzoo": 8, "zo-muon": 4}.get(method)
    theta = [p.clone() for p in theta]
    sigma = [torch.ones_like(p) for p in theta]
    factor, basis = [None] * len(theta), [None] * len(theta)  # LOZO-M's N and the V it is written in
    for t in range(1, steps + 1):
        seed_t = step_seed(seed, t)
        if method in ("fzoo", "zo-muon"):
            base = float(loss_of(theta))
            directions, losses = [], []
            for i in range(probes):
                u = [d for d, _ in _probe(theta, seed_t if i == 0 else step_seed(seed_t, i), method, t, seed, rank,
                                          period)]
                plus = [torch.add(p, d, alpha=eps) for p, d in zip(theta, u)]
                losses.append(float(loss_of(plus)))
                theta = [torch.add(p, d, alpha=-eps) for p, d in zip(plus, u)]
                directions.append(u)
            # g = (1/εN) Σ (l_i − l_0) u_i; FZOO divides by the spread of the l_i
            spread = statistics.stdev(losses) + 1e-8 if method == "fzoo" else 1.0
            g = [sum(((loss - base) / eps / spread / probes) * u[k] for loss, u in zip(losses, directions))
                 for k in range(len(theta))]
            if method == "fzoo":  # coupled L2 decay
                theta = [p - lr * (gk + wd * p) for p, gk, wd in zip(theta, g, decay)]
            else:  # ZO-Muon: msign of each matrix's estimate, decoupled decay
                theta = [(1 - lr * wd) * p - lr * (_msign(gk.reshape(p.shape[0], -1)).reshape(p.shape) if p.dim() >= 2
                                                   else gk) for p, gk, wd in zip(theta, g, decay)]
            continue
        probe = _probe(theta, seed_t, method, t, seed, rank, period, scale=scale)
        z = [d for d, _ in probe]
        if method == "hizoo":
            base = float(loss_of(theta))
            d = [zi / s.sqrt() if rule == "paper" else s.sqrt() * zi for s, zi in zip(sigma, z)]
        else:
            d = z
        plus = [torch.add(p, di, alpha=eps) for p, di in zip(theta, d)]
        minus = [torch.add(p, di, alpha=-2 * eps) for p, di in zip(plus, d)]
        theta = [torch.add(p, di, alpha=eps) for p, di in zip(minus, d)]
        l_plus, l_minus = float(loss_of(plus)), float(loss_of(minus))
        g = (l_plus - l_minus) / (2 * eps)
        if method == "hizoo":
            curvature = abs(l_plus + l_minus - 2 * base) / (2 * eps * eps)
            if rule == "paper":  # H is the smoothed Σ⁻¹: the diagonal of c Σ^{-1/2} z zᵀ Σ^{-1/2} = c z² H
                sigma = [(1 - hessian_smooth) * s + hessian_smooth * curvature * zi * zi * s for s, zi in zip(sigma, z)]
                theta = [(1 - lr * wd) * p - lr * g * zi / s.sqrt() for p, s, zi, wd in zip(theta, sigma, z, decay)]
            else:
                sigma = [(1 - hessian_smooth) * s + hessian_smooth * curvature * zi * zi / s for s, zi in zip(sigma, z)]
                theta = [(1 - lr * wd) * p - lr * g * s.sqrt() * zi for p, s, zi, wd in zip(theta, sigma, z, decay)]
        elif method == "lozo-m":  # N ← βN + (1−β)ĝU, carried into a new V as N V_oldᵀV/n; decoupled decay
            for k, ((zi, factors), p, wd) in enumerate(zip(probe, theta, decay)):
                step = g * zi
                if factors is not None:
                    u, v = factors
                    if factor[k] is None and first_momentum == "estimate":  # the released code: N₁ = ĝU₁
                        factor[k], basis[k] = g * u, v
                    else:
                        if factor[k] is None:
                            factor[k], basis[k] = torch.zeros_like(u), v
                        elif not torch.equal(basis[k], v):
                            factor[k], basis[k] = factor[k] @ (basis[k].T @ v) / v.shape[0], v
                        factor[k] = momentum * factor[k] + (1 - momentum) * g * u
                    step = (factor[k] @ v.T).reshape(p.shape)
                theta[k] = (1 - lr * wd) * p - lr * step
        else:  # LOZO, SubZero, Sparse-MeZO: MeZO's update with their probes, coupled L2 decay
            theta = [p - lr * (g * zi + wd * p) for p, zi, wd in zip(theta, z, decay)]
    return theta

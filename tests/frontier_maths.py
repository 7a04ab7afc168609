"""Independent re-statements of the 2025–26 methods, from their rules (the sources are named in each
method's docstring and in docs/optimizers.md).

Explicit tensors and generators: step t's probe i is drawn tensor after tensor from a generator seeded
with the step's seed (probe 0) or a hash of it and i (the others), as zobench's streams draw. Probe
points are formed as ``torch.add(θ, d, alpha=…)`` in the order an in-place implementation applies them,
so both sides round alike.
"""

import hashlib
import math

import torch

from zobench.optimizers.noise import step_seed


def _gaussian(theta, seed):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(p.shape, generator=generator, dtype=p.dtype) for p in theta]


def _projected(theta, seed, lazy_seed, rank):
    """ZO-MOPI's probe: A Ψ per matrix (A the QR of a lazy Gaussian m×r, Ψ a fresh r×n), z for vectors;
    returns the directions and, per tensor, (A, Ψ) or None."""
    step, lazy = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(lazy_seed)
    directions, factors = [], []
    for p in theta:
        if p.dim() < 2:
            directions.append(torch.randn(p.shape, generator=step, dtype=p.dtype))
            factors.append(None)
            continue
        m, n = p.shape[0], p.numel() // p.shape[0]
        a = torch.linalg.qr(torch.randn((m, min(rank, m)), generator=lazy, dtype=p.dtype))[0]
        psi = torch.randn((min(rank, m), n), generator=step, dtype=p.dtype)
        directions.append((a @ psi).reshape(p.shape))
        factors.append((a, psi))
    return directions, factors


def _central(loss_of, theta, directions, eps):
    """Central differences along each direction in turn, θ moved +ε, −2ε, +ε; returns (θ, ĝ per probe)."""
    grads = []
    for z in directions:
        plus = [torch.add(p, d, alpha=eps) for p, d in zip(theta, z)]
        minus = [torch.add(p, d, alpha=-2 * eps) for p, d in zip(plus, z)]
        theta = [torch.add(p, d, alpha=eps) for p, d in zip(minus, z)]
        grads.append((float(loss_of(plus)) - float(loss_of(minus))) / (2 * eps))
    return theta, grads


def _signs(count, generator, dtype):
    """count independent ±1 from 64-bit words, each word's bytes in memory order, each byte's bits from
    the least significant: a set bit is +1."""
    words = torch.randint(-2 ** 63, 2 ** 63 - 1, ((count + 63) // 64,), generator=generator, dtype=torch.int64)
    bits = (words.view(torch.uint8).long().unsqueeze(1) >> torch.arange(8)) & 1
    return (2 * bits - 1).flatten()[:count].to(dtype)


def _flipout(theta, seeds, base_seed):
    """GRZO's probes of a step: U drawn tensor by tensor from ``base_seed`` (shared), then for each probe
    i and tensor: r (rows) and s (columns) from probe i's generator, z = U ⊙ r sᵀ; U ⊙ r for a vector."""
    shared = torch.Generator().manual_seed(base_seed)
    bases = [torch.randn(p.shape, generator=shared, dtype=p.dtype) for p in theta]
    directions = []
    for seed in seeds:
        generator, probe = torch.Generator().manual_seed(seed), []
        for p, u in zip(theta, bases):
            if p.dim() < 2:
                probe.append(u * _signs(p.numel(), generator, p.dtype).view(p.shape))
                continue
            m, n = p.shape[0], p.numel() // p.shape[0]
            r = _signs(m, generator, p.dtype)
            s = _signs(n, generator, p.dtype)
            probe.append((u.reshape(m, n) * r[:, None] * s[None, :]).reshape(p.shape))
        directions.append(probe)
    return directions


def _group_relative(part_loss_of, theta, directions, eps, reading):
    """Slice i of the batch evaluated at θ ± εz_i (moved +ε, −2ε, +ε in turn); δ_i normalised by their
    population spread (and centred on their mean in the ``centred`` reading); returns (θ, ĝ_i)."""
    deltas, parts = [], len(directions)
    for i, z in enumerate(directions):
        plus = [torch.add(p, d, alpha=eps) for p, d in zip(theta, z)]
        minus = [torch.add(p, d, alpha=-2 * eps) for p, d in zip(plus, z)]
        theta = [torch.add(p, d, alpha=eps) for p, d in zip(minus, z)]
        deltas.append(float(part_loss_of(plus, i, parts)) - float(part_loss_of(minus, i, parts)))
    mean = sum(deltas) / parts
    spread = math.sqrt(sum((d - mean) ** 2 for d in deltas) / parts)
    centre = mean if reading == "centred" else 0.0
    return theta, [(d - centre) / (spread + 1e-8) / (2 * eps) for d in deltas]


def _layers(names):
    """Each tensor's layer, numbered by first appearance: the name up to its first numbered part, or
    its module (the name without its last part)."""
    labels = []
    for name in names:
        parts = name.split(".")
        cut = next((i + 1 for i, part in enumerate(parts) if part.isdigit()), len(parts) - 1)
        labels.append(".".join(parts[:cut]))
    order = list(dict.fromkeys(labels))
    return [order.index(label) for label in labels], len(order)


def _chosen_layers(step_seed_, layers, keep):
    """LeZO's layers for a step: a permutation seeded by a hash of the step's seed, its first round(keep·L)."""
    digest = hashlib.blake2b(str(step_seed_).encode(), digest_size=8, person=b"zobench-layers").digest()
    generator = torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)
    return set(torch.randperm(layers, generator=generator)[:max(1, round(keep * layers))].tolist())


def _svrg(loss_of, theta, decay, steps, lr, eps, seed, period, scale):
    """MeZO-SVRG on a problem whose batch is its whole training set (the whole loss is the loss): at
    steps 1, 1 + q, …: θ̄ ← θ, ĝ_F along z, θ ← θ − η(s ĝ_F z + λθ); between: ĝ at θ and at θ̄ along z,
    θ ← θ − η((ĝ − ĝ̄) z + ĝ_F z_s + λθ), z_s the snapshot step's direction regenerated from its seed."""
    theta = [p.clone() for p in theta]
    snapshot, full, snapshot_step = None, None, None

    def central(point, z):
        plus = [torch.add(p, d, alpha=eps) for p, d in zip(point, z)]
        minus = [torch.add(p, d, alpha=-2 * eps) for p, d in zip(plus, z)]
        back = [torch.add(p, d, alpha=eps) for p, d in zip(minus, z)]
        return back, (float(loss_of(plus)) - float(loss_of(minus))) / (2 * eps)

    for t in range(1, steps + 1):
        z = _gaussian(theta, step_seed(seed, t))
        if (t - 1) % period == 0:
            snapshot = [p.clone() for p in theta]
            theta, full = central(theta, z)
            snapshot_step = t
            theta = [p - lr * (scale * full * zk + wd * p) for p, zk, wd in zip(theta, z, decay)]
            continue
        theta, now = central(theta, z)
        snapshot, then = central(snapshot, z)
        z_s = _gaussian(theta, step_seed(seed, snapshot_step))
        theta = [p - lr * ((now - then) * zk + full * zs + wd * p) for p, zk, zs, wd in zip(theta, z, z_s, decay)]
    return theta


def _projected_drift(loss_of, theta, anchor, seed_t, eps, lr, clip, reading):
    """DiZO's projection: θ = θ₀ + f·Δ moved to the probe factors 1 ± ε u and then to the clipped
    1 − lr ĝ u, each as θ₀ + (f'/f)(θ − θ₀) (the in-place order: subtract, scale, add)."""
    digest = hashlib.blake2b(str(seed_t).encode(), digest_size=8, person=b"zobench-layers").digest()
    generator = torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)
    u = torch.randn(len(theta), generator=generator, dtype=torch.float64).tolist()
    if reading == "gamma":  # perturb γ, re-initialised to ‖Δ‖: the factor moves by u/‖Δ‖
        norms = [float((p - a).double().norm()) for p, a in zip(theta, anchor)]
        u = [x / n if n else 0.0 for x, n in zip(u, norms)]

    def moved(theta, now, then):
        return [(p - a) * (b / f) + a if f != b else p for p, a, f, b in zip(theta, anchor, now, then)]

    factor, losses = [1.0] * len(theta), []
    for sign in (1.0, -1.0):
        wanted = [1.0 + sign * eps * x for x in u]
        theta, factor = moved(theta, factor, wanted), wanted
        losses.append(float(loss_of(theta)))
    g = (losses[0] - losses[1]) / (2 * eps)
    return moved(theta, factor, [min(1 + clip, max(1 - clip, 1 - lr * g * x)) for x in u])


def _grzo(method, part_loss_of, theta, decay, steps, lr, eps, seed, groups, reading, rank, period, sparsity):
    """GRZO and its cores: one probe per slice of the batch (Flipout's, LOZO's U_i Vᵀ, or a Gaussian
    masked to the smallest |θ|), the group-relative ĝ_i, MeZO's update θ ← θ − η(Σ ĝ_i z_i / B + λθ)."""
    theta = [p.clone() for p in theta]
    for t in range(1, steps + 1):
        seed_t = step_seed(seed, t)
        seeds = [seed_t if i == 0 else step_seed(seed_t, i) for i in range(groups)]
        if method == "grzo":
            directions = _flipout(theta, seeds, step_seed(seed, -t))
        elif method == "grzo-lozo":
            lazy = torch.Generator().manual_seed(step_seed(seed, -1 - (t - 1) // period))
            kept = [torch.randn((p.numel() // p.shape[0], rank), generator=lazy, dtype=p.dtype) if p.dim() >= 2 else None
                    for p in theta]
            directions = []
            for s in seeds:
                generator = torch.Generator().manual_seed(s)
                directions.append([torch.randn(p.shape, generator=generator, dtype=p.dtype) if v is None else
                                   (torch.randn((p.shape[0], rank), generator=generator, dtype=p.dtype) @ v.T).reshape(p.shape)
                                   for p, v in zip(theta, kept)])
        else:  # grzo-sparse: the mask from θ at the step's start, |θ| at or below its (1 − s) quantile
            masks = []
            for p in theta:
                keep = max(1, math.ceil((1 - sparsity) * p.numel()))
                masks.append(p.abs() <= p.abs().flatten().sort().values[keep - 1])
            directions = [[z * m for z, m in zip(_gaussian(theta, s), masks)] for s in seeds]
        theta, grads = _group_relative(part_loss_of, theta, directions, eps, reading)
        step = [sum(g * z[k] for g, z in zip(grads, directions)) / groups for k in range(len(theta))]
        theta = [p - lr * (s + wd * p) for p, s, wd in zip(theta, step, decay)]
    return theta


def _agzo(loss_of, activations_of, theta, decay, steps, lr, eps, seed, names, rank, power_steps):
    """AGZO: at each step the inputs H of each linear weight at θ (``activations_of``: name -> tokens × in);
    A from ``power_steps`` of Q ← QR(Hᵀ H Q), Q a Gaussian seeded by the step's seed and the tensor's
    position; probe R Aᵀ (R drawn in order with the other tensors' Gaussians), one-sided ĝ from L(θ),
    θ ← θ − η(ĝ z + λθ)."""
    from zobench.optimizers.activations import basis_seed

    theta = [p.clone() for p in theta]
    for t in range(1, steps + 1):
        seed_t = step_seed(seed, t)
        inputs = activations_of(dict(zip(names, theta)))
        generator, z = torch.Generator().manual_seed(seed_t), []
        for position, (name, p) in enumerate(zip(names, theta)):
            if name not in inputs:
                z.append(torch.randn(p.shape, generator=generator, dtype=p.dtype))
                continue
            h = inputs[name].to(torch.promote_types(p.dtype, torch.float32))
            start = torch.Generator().manual_seed(basis_seed(seed_t, position))
            a = torch.randn((h.shape[1], min(rank, h.shape[1])), generator=start, dtype=h.dtype)
            for _ in range(power_steps):
                a = torch.linalg.qr(h.T @ (h @ a))[0]
            r = torch.randn((p.shape[0], a.shape[1]), generator=generator, dtype=p.dtype)
            z.append(r @ a.to(p.dtype).T)
        base = float(loss_of(theta))
        plus = float(loss_of([torch.add(p, d, alpha=eps) for p, d in zip(theta, z)]))
        grad = (plus - base) / eps
        theta = [p - lr * (grad * d + wd * p) for p, d, wd in zip(theta, z, decay)]
    return theta


def frontier_reference(method, loss_of, theta, decay, steps, lr, eps, seed, beta=0.999, zeta=1e-8, probes=None,
                       rank=None, period=None, momentum=0.9, spectral_rank=1, names=None, sparsity=0.75,
                       betas=(0.9, 0.999), sigma=1e-8, horizon=10, interval=50, projection_eps=0.1,
                       projection_lr=2.0, clip=0.2, reading=None, snapshot_scale=10.0, groups=16, part_loss_of=None,
                       activations_of=None, power_steps=2):
    """Runs ``method`` from ``theta`` (a list of tensors, named ``names``); returns the final tensors.
    GRZO's methods need ``part_loss_of(values, i, parts)``, the loss on slice i of the batch; AGZO needs
    ``activations_of(values by name)``, each linear weight's inputs."""
    if method == "agzo":
        return _agzo(loss_of, activations_of, theta, decay, steps, lr, eps, seed, names, rank or 8, power_steps)
    if method.startswith("grzo"):
        return _grzo(method, part_loss_of, theta, decay, steps, lr, eps, seed, groups, reading or "scaled",
                     rank or 1, period or 100, sparsity)
    reading, rank = reading or "ratio", rank or 2
    probes = probes or {"meazo": 1, "zo-mopi": 2, "lezo": 1, "adamezo": 1, "dizo": 1, "mezo-svrg": 1}[method]
    if method == "mezo-svrg":
        return _svrg(loss_of, theta, decay, steps, lr, eps, seed, period or 10, snapshot_scale)
    anchor = [p.clone() for p in theta]  # DiZO's θ₀
    theta = [p.clone() for p in theta]
    second = 0.0
    kept = [None] * len(theta)  # ZO-MOPI: (M, V, A) per matrix
    recent = []  # AdaMeZO: the last steps' estimates ĝz, newest first, kept whole here
    for t in range(1, steps + 1):
        seed_t = step_seed(seed, t)
        seeds = [seed_t if i == 0 else step_seed(seed_t, i) for i in range(probes)]
        if method == "zo-mopi":
            drawn = [_projected(theta, s, step_seed(seed, -1 - (t - 1) // (period or 100)), rank) for s in seeds]
            directions = [d for d, _ in drawn]
        elif method == "lezo":  # only the chosen layers' tensors draw, in order; the others' probe is 0
            of_layer, count = _layers(names)
            chosen = _chosen_layers(seed_t, count, 1 - sparsity)
            live = [k for k in range(len(theta)) if of_layer[k] in chosen]
            drawn = _gaussian([theta[k] for k in live], seed_t)
            directions = [[drawn[live.index(k)] if k in live else torch.zeros_like(p) for k, p in enumerate(theta)]]
        else:
            directions = [_gaussian(theta, s) for s in seeds]
        theta, grads = _central(loss_of, theta, directions, eps)
        if method == "meazo":  # v_t = βv + (1−β) mean(ĝ)², scale 1/(√(v_t/(1−β^t)) + ζ), decoupled decay
            mean = sum(grads) / probes
            second = beta * second + (1 - beta) * mean * mean
            scale = 1 / (math.sqrt(second / (1 - beta ** t)) + zeta)
            step = [sum(g * z[k] for g, z in zip(grads, directions)) * (scale / probes) for k in range(len(theta))]
            theta = [(1 - lr * wd) * p - lr * s for p, s, wd in zip(theta, step, decay)]
        elif method == "adamezo":  # Adam's sums over the last h steps, decoupled decay
            recent = [[grads[0] * z for z in directions[0]]] + recent[:horizon - 1]
            b1, b2 = betas
            for k, (p, wd) in enumerate(zip(theta, decay)):
                m = sum((1 - b1) * b1 ** j * g[k] for j, g in enumerate(recent))
                v = sum((1 - b2) * b2 ** j * g[k] * g[k] for j, g in enumerate(recent))
                theta[k] = (1 - lr * wd) * p - lr * m / torch.sqrt(v + sigma)
        elif method == "dizo":  # MeZO's update with coupled L2; every κ steps the drift projection
            (z,) = directions
            theta = [p - lr * (grads[0] * zk + wd * p) for p, zk, wd in zip(theta, z, decay)]
            if t % interval == 0:
                theta = _projected_drift(loss_of, theta, anchor, seed_t, projection_eps, projection_lr, clip, reading)
        elif method == "lezo":  # MeZO's update with coupled L2, on the chosen layers only
            (z,) = directions
            theta = [p - lr * (grads[0] * zk + wd * p) if k in live else p
                     for k, (p, zk, wd) in enumerate(zip(theta, z, decay))]
        elif method == "zo-mopi":  # M ← βM + (1−β)Ĝ in A's frame; one power sweep; θ ← (1−ηλ)θ − η A U Vᵀ
            for k, (p, wd) in enumerate(zip(theta, decay)):
                if drawn[0][1][k] is None:  # a vector: the plain estimate
                    step = sum(g * z[k] for g, z in zip(grads, directions)) / probes
                else:
                    a = drawn[0][1][k][0]
                    g_hat = sum(g * f[k][1] for g, (_, f) in zip(grads, drawn)) / probes
                    if kept[k] is None:
                        m_t = (1 - momentum) * g_hat
                        v = torch.linalg.qr(m_t.T)[0][:, :spectral_rank]
                    else:
                        m_old, v, a_old = kept[k]
                        m_t = momentum * (a.T @ a_old @ m_old) + (1 - momentum) * g_hat
                    v = torch.linalg.qr(m_t.T @ m_t @ v)[0]
                    u = m_t @ v
                    u = u / (u.norm(dim=0) + 1e-12)
                    kept[k] = (m_t, v, a)
                    step = (a @ u @ v.T).reshape(p.shape)
                theta[k] = (1 - lr * wd) * p - lr * step
        else:
            raise ValueError(f"no restatement of {method}")
    return theta

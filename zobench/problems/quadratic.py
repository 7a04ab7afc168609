"""Quadratics whose dimension d and Hessian rank r are set apart, for measuring how ZO methods scale.

``f(x) = ½ xᵀ H x`` with ``H = U diag(λ) Uᵀ + μI``. MeZO's analysis bounds the rate by the Hessian's
effective rank rather than by d; these problems let one sweep d (up to 10⁷ on a CPU) at fixed r and
measure it.

U (d × r, orthonormal columns) is never stored: it is the Kronecker product ``A ⊗ B`` of two small
orthonormal factors drawn from the seed (A: d₁ × r₁, B: d₂ × r₂, d = d₁d₂, r = r₁r₂), so ``Uᵀx`` is
``Aᵀ X B`` with X the d₁ × d₂ view of x: r₁·d multiply-adds, and memory of order √d·√r. Its columns
are dense, not coordinate axes, so coordinate-wise methods (Adam) get no free alignment.

λ is log-spaced from 1 to 0.1 (condition 10 inside the subspace) and μ = 10⁻⁸, so that up to
d = 10⁷ the trace of H (the effective rank, as λ₁ = 1) stays that of its rank-r part: μd ≤ 0.1.
The start is ``x₀ = U c₀`` with c₀ a random direction scaled so that ``f(x₀) = 1``; the minimum is 0
at x = 0. The metric is the suboptimality ``f(x) / f(x₀)``. The noisy variant adds Gaussian noise of
standard deviation 10⁻⁴ to each training evaluation, drawn from (seed, step) so replay is exact; dev
and test evaluations are exact.

Names: ``quadratic-d<d>-r<r>`` and ``quadratic-d<d>-r<r>-noisy``, d and r as integers or ``1e6``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch

from .base import no_batch

NAME = re.compile(r"quadratic-d(?P<d>[0-9]+(?:e[0-9]+)?)-r(?P<r>[0-9]+(?:e[0-9]+)?)(?P<noisy>-noisy)?")
MU = 1e-8
NOISE = 1e-4
SEED = 0  # the problem (U, λ, x₀) is the same for every run; runs differ in their optimizer's seed


MAX_D = 10 ** 12  # past any machine's memory at 4 bytes a coordinate; factoring d costs √d steps
WORKING_VECTORS = 4  # d-vectors a step holds besides the optimizer's buffers (x, x₀, the probe, one temporary)
VECTORS_PER_BUFFER = 3  # an optimizer buffer, and the temporaries of its update (measured: zo-adam@g 8.2 in all)


def _integer(text: str) -> int:
    """``1e6`` or ``1000000`` as an exact integer; a huge exponent gives MAX_D + 1 (refused by check)."""
    mantissa, _, exponent = text.partition("e")
    if len(mantissa) + int(exponent or 0) > 13:
        return MAX_D + 1
    return int(mantissa) * 10 ** int(exponent or 0)


def parse(name: str) -> tuple[int, int, bool] | None:
    """(d, r, noisy) of a quadratic's name, or ``None`` if ``name`` names no quadratic."""
    match = NAME.fullmatch(name)
    if not match:
        return None
    return _integer(match["d"]), _integer(match["r"]), bool(match["noisy"])


def memory_bytes(d: int, element_bytes: int, buffers: int) -> int:
    """A lower bound of a run's memory: its d-vectors (working ones and the optimizer's) at that size."""
    return d * element_bytes * (WORKING_VECTORS + VECTORS_PER_BUFFER * buffers)


def _split(n: int, least: tuple[int, int]) -> tuple[int, int]:
    """n = a·b with a ≥ least[0], b ≥ least[1] and a nearest √n."""
    divisors = [a for a in range(1, math.isqrt(n) + 1) if n % a == 0]
    options = [(a, n // a) for a in divisors + [n // a for a in divisors] if a >= least[0] and n // a >= least[1]]
    if not options:
        raise ValueError(f"{n} has no factors {least[0]}+ × {least[1]}+")
    return min(options, key=lambda pair: abs(math.log(pair[0] / math.sqrt(n))))


def check(d: int, r: int) -> str | None:
    """Why (d, r) makes no quadratic, or ``None``."""
    if d > MAX_D:
        return "d above 1e12 is beyond any machine's memory (at 4 bytes a coordinate); use d <= 1e10"
    if r < 1 or d < r:
        return f"needs 1 <= r <= d, got d={d}, r={r}"
    try:
        _factors(d, r)
    except ValueError:
        return f"d={d} and r={r} do not split into a Kronecker product of orthonormal factors; use powers of 10 and 2"
    return None


def _factors(d: int, r: int) -> tuple[tuple[int, int], tuple[int, int]]:
    r1, r2 = _split(r, (1, 1))
    r1, r2 = max(r1, r2), min(r1, r2)
    return (r1, r2), _split(d, (r1, r2))


@dataclass
class LowRankQuadratic:
    d: int
    r: int
    noisy: bool = False
    dtype: torch.dtype = torch.float32
    device: str = "cpu"

    def __post_init__(self):
        (r1, r2), (d1, d2) = _factors(self.d, self.r)
        generator = torch.Generator().manual_seed(SEED)
        self.A = torch.linalg.qr(torch.randn(d1, r1, generator=generator, dtype=torch.float64))[0]
        self.B = torch.linalg.qr(torch.randn(d2, r2, generator=generator, dtype=torch.float64))[0]
        self.eigenvalues = torch.logspace(0, -1, self.r, dtype=torch.float64).view(r1, r2)
        direction = torch.randn(r1, r2, generator=generator, dtype=torch.float64)
        direction *= (2 / (self.eigenvalues * direction ** 2).sum()).sqrt()  # f(x0) = 1 (μ‖x0‖² aside)
        self.shape = (d1, d2)
        self.A, self.B, self.eigenvalues = (t.to(self.device, self.dtype) for t in (self.A, self.B, self.eigenvalues))
        self.start = self.expand(direction.to(self.device, self.dtype))
        self.initial = float(self.value(self.start))

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Uᵀx as an r₁ × r₂ matrix."""
        return self.A.T @ x.view(self.shape) @ self.B

    def expand(self, c: torch.Tensor) -> torch.Tensor:
        """U c, for c an r₁ × r₂ matrix, as a d-vector."""
        return (self.A @ c @ self.B.T).reshape(-1)

    def value(self, x: torch.Tensor) -> torch.Tensor:
        c = self.project(x)
        return 0.5 * (self.eigenvalues * c * c).sum() + 0.5 * MU * x.dot(x)

    def dense_hessian(self) -> torch.Tensor:
        """H itself, d × d: for checking at small d only."""
        U = torch.kron(self.A, self.B)
        return U @ torch.diag(self.eigenvalues.reshape(-1)) @ U.T + MU * torch.eye(self.d, dtype=U.dtype)


class QuadraticProblem:
    """A :class:`LowRankQuadratic` as a :class:`~zobench.problems.base.Problem`: x is the model."""

    metric = "suboptimality"
    higher_is_better = False

    def __init__(self, name: str, seed: int = 0, dtype: torch.dtype = torch.float32, device: str = "cpu"):
        d, r, noisy = parse(name)
        self.quadratic = LowRankQuadratic(d, r, noisy, dtype, device)
        self.seed = seed
        self.x = torch.nn.Parameter(self.quadratic.start.clone())

    def parameter_groups(self, weight_decay: float = 0.0) -> list[dict]:
        return [{"params": [self.x], "weight_decay": weight_decay}]

    def loss_closure(self, step: int, shard: tuple[int, int] | None = None):
        no_batch(shard, self)
        quadratic = self.quadratic
        if not quadratic.noisy:
            return lambda: quadratic.value(self.x)
        noise = torch.Generator().manual_seed(self.seed * 1_000_003 + step)  # a fresh draw per evaluation
        return lambda: quadratic.value(self.x) + NOISE * float(torch.randn((), generator=noise))

    def whole_train_closure(self):
        """The objective itself, without the noisy variant's per-evaluation noise (its expectation)."""
        return (lambda: self.quadratic.value(self.x)), 1

    def evaluate(self, split: str) -> dict[str, float]:
        with torch.no_grad():
            value = float(self.quadratic.value(self.x))
        return {"suboptimality": value / self.quadratic.initial, "loss": value}

    def snapshot(self) -> dict:
        return {}

    def describe(self) -> dict:
        (d1, d2), (r1, r2) = self.quadratic.shape, self.quadratic.eigenvalues.shape
        return {"dimension": self.quadratic.d, "rank": self.quadratic.r, "noisy": self.quadratic.noisy,
                "factors": [[d1, r1], [d2, r2]], "mu": MU, "noise": NOISE if self.quadratic.noisy else 0.0}

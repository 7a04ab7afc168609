"""The low-rank quadratics of the scaling suite against a dense restatement at small d: U's columns
are orthonormal, and the value and gradient equal ½xᵀHx and Hx with H = U diag(λ)Uᵀ + μI built dense."""

import pytest
import torch

from zobench.problems import problem_error
from zobench.problems.quadratic import MU, LowRankQuadratic, QuadraticProblem, parse


@pytest.mark.parametrize("d, r", [(60, 8), (1000, 64), (1000, 512)])
def test_value_and_gradient_match_the_dense_hessian(d, r):
    quadratic = LowRankQuadratic(d, r, dtype=torch.float64)
    U = torch.kron(quadratic.A, quadratic.B)
    assert U.shape == (d, r)
    torch.testing.assert_close(U.T @ U, torch.eye(r, dtype=torch.float64))
    H = quadratic.dense_hessian()
    assert torch.linalg.matrix_rank(H - MU * torch.eye(d, dtype=torch.float64)) == r
    x = torch.randn(d, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).requires_grad_()
    value = quadratic.value(x)
    value.backward()
    torch.testing.assert_close(value, 0.5 * x.detach() @ H @ x.detach())
    torch.testing.assert_close(x.grad, H @ x.detach())
    torch.testing.assert_close(quadratic.value(quadratic.start), torch.tensor(1.0, dtype=torch.float64),
                               atol=MU * quadratic.start.dot(quadratic.start), rtol=0)
    assert U.abs().max() < 0.9  # dense columns: no coordinate axis is an eigenvector


def test_problem_metric_and_noise_are_reproducible():
    problem = QuadraticProblem("quadratic-d1000-r8-noisy", seed=3)
    assert problem.evaluate("dev")["suboptimality"] == pytest.approx(1.0)
    with torch.no_grad():
        exact = float(problem.quadratic.value(problem.x))
    closure = problem.loss_closure(5)
    with torch.no_grad():
        noisy = [float(closure()) for _ in range(2)]
    assert noisy != [exact, exact] and noisy[0] != noisy[1]  # a fresh draw per evaluation
    closure = problem.loss_closure(5)
    assert [float(closure()) for _ in range(2)] == noisy  # the same draws for the same step
    assert abs(noisy[0] - exact) < 1e-3


def test_names():
    assert parse("quadratic-d1e7-r512") == (10_000_000, 512, False)
    assert parse("quadratic-d1000-r8-noisy") == (1000, 8, True) and parse("quadratic-d10") is None
    assert "needs 1 <= r <= d" in problem_error("quadratic-d100-r512")
    assert "unknown problem" in problem_error("quadratik-d100-r8")

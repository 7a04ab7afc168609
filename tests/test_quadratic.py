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


SCALING = """
name: scaling-tiny
problems: [quadratic-d64-r2, quadratic-d256-r2, quadratic-d256-r4, quadratic-d256-r4-noisy]
optimizers:
  - {name: zo-sgd, label: MeZO, lr: 0.5}
seeds: [0, 1, 2]
budget: {steps: 300, eval_every: 10}
targets: [0.5, 1.0e-9]
"""


def test_scaling_figure_draws_the_median_passes_to_target_per_shape(tmp_path, monkeypatch):
    """The report of a suite of quadratics plots, per target, the median over seeds of each run's
    recorded forward passes against (d, r); a target the median seed misses is infinite, not drawn."""
    import math
    import statistics

    from zobench import harness
    from zobench.report import figures, write_report
    from zobench.store import ResultStore
    from zobench.suite import load_suite

    drawn = {}
    draw = figures.scaling
    monkeypatch.setattr(figures, "scaling", lambda costs, colours, output: (drawn.update(costs),
                                                                             draw(costs, colours, output))[1])
    (tmp_path / "suite.yaml").write_text(SCALING)
    suite = load_suite(tmp_path / "suite.yaml")
    store = ResultStore(tmp_path / "out" / suite.name)
    assert harness.execute(suite, store, quiet=True) == []
    folder = write_report(suite, store).parent
    assert (folder / "scaling.png").stat().st_size > 10_000 and "scaling.png" in (folder / "index.md").read_text()

    expected = {}
    for record in store.records():
        d, r, noisy = parse(record["spec"]["problem"])
        label = "MeZO (noisy)" if noisy else "MeZO"
        for target in record["targets"]:
            name = f"suboptimality ≤ {target['target']:g}"
            passes = math.inf if target["forward_passes"] is None else target["forward_passes"]
            expected.setdefault(name, {}).setdefault(label, {}).setdefault((d, r), []).append(passes)
    expected = {t: {l: {s: statistics.median(v) for s, v in by.items()} for l, by in ls.items()}
                for t, ls in expected.items()}
    assert drawn == expected
    assert set(drawn) == {"suboptimality ≤ 0.5", "suboptimality ≤ 1e-09"}
    assert all(math.isfinite(v) for v in drawn["suboptimality ≤ 0.5"]["MeZO"].values())
    assert all(v == math.inf for by in drawn["suboptimality ≤ 1e-09"].values() for v in by.values())

"""The step-cost benchmark's MeZO reference loop and its measurement on an encoder (the GPU run's checks)."""

import pytest
import torch

from benchmarks.step_cost import ROWS, measure, mezo_loop_step
from zobench import optimizers


def test_mezo_loop_step_is_mezos_update_with_the_global_seed():
    torch.manual_seed(123)
    start = [torch.randn(5, 3, dtype=torch.float64), torch.randn(7, dtype=torch.float64)]
    params = [p.clone() for p in start]
    target = [torch.randn_like(p) for p in start]

    def loss():
        return sum(((p - t) ** 2).sum() for p, t in zip(params, target)) / 2

    eps, lr, seed = 1e-3, 0.05, 7
    mezo_loop_step(params, loss, eps=eps, lr=lr, seed=seed)

    torch.manual_seed(seed)  # independent restatement: z drawn in parameter order after the seed
    z = [torch.normal(mean=0, std=1, size=p.size(), dtype=p.dtype) for p in start]

    def value(shift):
        return sum(((p + shift * e - t) ** 2).sum() for p, e, t in zip(start, z, target)) / 2

    projected = (value(eps) - value(-eps)) / (2 * eps)
    for param, origin, direction in zip(params, start, z):
        torch.testing.assert_close(param, origin - lr * projected * direction, rtol=0, atol=1e-12)


def test_measure_runs_every_mode_and_sampler_on_the_random_minilm_encoder():
    result = measure("random:minilm-l6", "float32", "cpu", batch=1, length=8, steps=1)
    assert set(result["steps"]) == set(ROWS)
    assert result["forward"] > 0 and all(seconds > 0 for seconds in result["steps"].values())


def test_the_registry_benchmark_measures_every_method_with_every_sampler_it_accepts():
    from benchmarks.registry_step import OWN, rows, step_function

    measured = rows()
    factories = {id(optimizers.get(n).factory) for n in optimizers.names() if optimizers.get(n).family != "fo"}
    assert len({id(optimizers.get(name).factory) for name, _ in measured[1:]}) == len(factories)
    assert measured[0] == ("mezo-loop", "gaussian") and len(set(measured)) == len(measured)
    for name, direction in measured[1:]:
        accepted = "direction" in optimizers.get(name).hyperparameters()
        assert (direction == OWN) != accepted, (name, direction)
    assert ("zo-adamu@delta", "table") in measured and ("zo-adam@g", "gaussian") in measured
    point = [torch.nn.Parameter(torch.zeros(4, 3))]
    step, passes = step_function("fzoo", OWN, point, lambda: point[0].square().sum())
    calls = []
    step_function("zo-adamu@delta", "table", point, lambda: calls.append(1) or point[0].sum())[0]()
    assert passes == 9 and len(calls) == 2


def test_a_profile_names_the_operators_that_take_a_step():
    from benchmarks.registry_step import profile

    lines = profile("random:minilm-l6", "zo-sgd", "table", steps=1, top=5, batch=1, length=8).splitlines()
    assert lines[0].startswith("zo-sgd (table), 2 forward passes a step:")
    rows = [line.split(" | ") for line in lines[3:]]
    assert len(rows) == 5 and all(row[0].startswith("| `") for row in rows)
    assert "`aten::add_`" in {row[0][2:] for row in rows}  # the three moves of θ
    assert sum(int(row[3].rstrip("% |")) for row in rows) <= 102  # five shares, each rounded by at most 0.5


EMBEDDINGS_MIB = 30522 * 384 * 4 / 2 ** 20  # MiniLM-L6's largest tensor, the word embeddings


def test_a_memory_profile_names_the_line_that_holds_the_step_peak():
    """MeZO's Gaussian z is drawn tensor by tensor, so its step peak holds one z of the largest tensor
    (the word embeddings, 30522 × 384 floats), drawn by the noise stream."""
    from benchmarks.registry_step import memory

    gaussian = memory("random:minilm-l6", "zo-sgd", "gaussian", batch=1, length=8).splitlines()
    assert gaussian[0].startswith("zo-sgd (gaussian): step peak") and f"{EMBEDDINGS_MIB:.1f} MiB)" in gaussian[0]
    line, tensors, mib = (cell.strip(" `") for cell in gaussian[3].strip("|").split("|"))
    assert line.startswith("zobench/optimizers/noise.py(") and line.endswith("normal"), line
    assert EMBEDDINGS_MIB <= float(mib) < 2 * EMBEDDINGS_MIB


@pytest.mark.parametrize("method, direction", [("zo-sgd", "table"), ("lozo-m", "own"), ("zo-muon", "own")])
def test_steps_that_form_no_whole_probe_peak_no_higher_than_a_forward(method, direction):
    """The table's z are views; LOZO-M's momentum and ZO-Muon's orthogonalised estimate stay factored to
    the move (``addmm_`` into θ): no step holds an embedding-sized tensor (LOZO-M and ZO-Muon held +118
    and +252 MiB at batch 16 × 64 before their factored moves)."""
    from benchmarks.registry_step import memory

    head = memory("random:minilm-l6", method, direction, batch=1, length=8).splitlines()[0]
    excess = float(head.split(": ")[-1].split(" MiB")[0])
    assert excess < EMBEDDINGS_MIB / 2, head


def test_the_readme_table_is_the_committed_asv_run_rendered():
    """README's whole-registry table is `registry_report.table` of the kept asv results file, and its
    cells are that file's numbers (read here from the raw JSON, not through asv)."""
    import json
    from itertools import product

    from benchmarks.registry_report import BEGIN, END, MEASURED, README, table

    assert MEASURED.exists(), f"{MEASURED} is missing; run python -m benchmarks.registry_report RESULTS --write"
    rendered = table(MEASURED)
    readme = README.read_text()
    assert readme[readme.index(BEGIN) + len(BEGIN):readme.index(END)].strip() == rendered.strip(), \
        "README's step-cost table is stale: run python -m benchmarks.registry_report --write"
    raw = json.loads(MEASURED.read_text())
    ratios, params = raw["results"]["registry_step.RegistryStep.track_step_over_forwards"][:2]
    cells = dict(zip(product(*params), ratios))
    value = cells["'zo-sgd|table'", "'minilm-l6'"]
    header = next(line for line in rendered.splitlines() if line.startswith("| method |")).split(" | ")
    row = next(line for line in rendered.splitlines() if line.startswith("| `zo-sgd` |"))
    assert row.split(" | ")[header.index("table")] == f"{value:.2f}"
    named = {line.split("`")[1] for line in rendered.splitlines() if line.startswith("| `")}
    from benchmarks.registry_step import rows
    assert named == {name for name, _ in rows() if name == "mezo-loop" or optimizers.get(name).distribution is None}

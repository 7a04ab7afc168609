"""Reports a reader can trust: seeds in the CSVs, diverged runs named and kept off the curves'
scale, zero-step rows drawn as references, and one colour per label across a report's figures."""

import csv

import matplotlib.pyplot as plt
import pytest

from zobench import harness
from zobench.report import figures, write_report
from zobench.store import ResultStore
from zobench.suite import load_suite

SUITE = """
name: reporting
problems: [rosenbrock]
optimizers:
  - {name: zo-sgd, label: steady, lr: 1.0e-4}
  - {name: zo-sgd, label: wild, lr: 0.1}
  - {name: zo-sgd, label: untrained, lr: 1.0e-4, budget: {steps: 0}}
seeds: [3, 7]
budget: {steps: 40, eval_every: 10}
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    (folder / "suite.yaml").write_text(SUITE)
    suite = load_suite(folder / "suite.yaml")
    store = ResultStore(folder / "out" / suite.name)
    assert harness.execute(suite, store, quiet=True) == []
    return write_report(suite, store).parent, store


def test_csv_rows_carry_the_run_seeds(report):
    folder, _ = report
    rows = list(csv.DictReader(open(folder / "final_metric.csv")))
    assert {row["seed"] for row in rows} == {"3", "7"}


def test_diverged_runs_are_named_in_the_index_and_kept_off_the_curves(report):
    folder, store = report
    diverged = [r for r in store.records() if r["status"] == "diverged"]
    assert {r["spec"]["label"] for r in diverged} == {"wild"}
    index = (folder / "index.md").read_text()
    for record in diverged:
        assert f"wild on rosenbrock, seed {record['spec']['seed']}, at step {record['steps_done']}" in index
    for name in ("curves_step.png", "curves_test_step.png", "curves_forward_passes.png", "trajectories.png"):
        assert (folder / name).stat().st_size > 10_000


def test_zero_step_rows_are_reference_lines(monkeypatch, tmp_path):
    drawn = []
    monkeypatch.setattr(plt.Axes, "axhline", lambda self, y, **kw: drawn.append((y, kw.get("label"))))
    curves = {"c": {"untrained": [[(0, 0.5)]], "steady": [[(0, 0.5), (10, 0.2)]]}}
    figures.metric_curves(curves, "distance", "steps", False, figures.palette(["steady", "untrained"]),
                          tmp_path / "curves.png")
    assert drawn == [(0.5, "untrained (no training)")]


def test_colours_follow_the_suite_order_and_survive_an_added_entry():
    before = figures.palette(["MeZO", "ZO-AdaMU", "Adam g"])
    after = figures.palette(["MeZO", "ZO-AdaMU", "Adam g", "Adam δ"])
    assert all(after[label] == colour for label, colour in before.items())
    assert len(set(after.values())) == 4


def test_a_target_table_holds_only_the_runs_that_have_that_target():
    """A suite mixing distances and accuracies names its gap targets by metric: each target's table
    has the problems whose runs have it, instead of failing on the others."""
    import pandas as pd

    from zobench.report import _tables
    from zobench.suite import TableLayout

    frame = pd.DataFrame({"key": ["a", "sst2"], "problem": ["a", "sst2"], "label": ["zo-sgd"] * 2, "seed": [0, 0],
                          "metric": ["distance", "accuracy"], "higher_is_better": [False, True],
                          "forward_passes": [2000, 2000]})  # the runs' own totals: not the passes to a target
    targets = pd.DataFrame({"key": ["a", "sst2"], "name": ["50% of the gap to the best distance",
                                                           "50% of the gap to the best accuracy"],
                            "step": [40, None], "forward_passes": [80, None]}, dtype=object)
    layout = TableLayout("passes", "forward_passes_to_target", ("problem",), ("label",))
    distance, accuracy = _tables(layout, frame, targets)
    assert (distance.rows, accuracy.rows) == (["a"], ["sst2"])
    assert distance.cells == {("a", "zo-sgd"): [80]} and accuracy.cells == {("sst2", "zo-sgd"): [None]}


def test_tables_print_intervals_and_the_probability_of_improvement(tmp_path):
    """Cells are "IQM [low, high]" over seeds; an improvement table compares every column with the
    one named, per row and over all rows, against the same computation made from the records."""
    from zobench.report.statistics import iqm_interval, probability_of_improvement

    (tmp_path / "suite.yaml").write_text("""
name: compared
problems: [a, c]
optimizers:
  - {name: zo-sgd, label: MeZO, lr: 0.01}
  - {name: zo-adam@g, label: Adam g, lr: 0.01}
seeds: [0, 1, 2]
budget: {steps: 30, eval_every: 10}
report:
  tables:
    - {name: final, quantity: final, rows: problem, columns: label, improvement: {over: MeZO}}
""")
    suite = load_suite(tmp_path / "suite.yaml")
    store = ResultStore(tmp_path / "out" / suite.name)
    assert harness.execute(suite, store, quiet=True) == []
    folder = write_report(suite, store).parent
    final = {(r["spec"]["problem"], r["spec"]["label"], r["spec"]["seed"]): r["final"]["dev"]["distance"]
             for r in store.records()}
    values = {(p, label): [final[(p, label, s)] for s in (0, 1, 2)] for p in ("a", "c") for label in ("MeZO", "Adam g")}
    table = (folder / "final.md").read_text()
    assert f"| a | {iqm_interval([values[('a', 'MeZO')]]).text()} |" in table and " [" in table
    improvement = (folder / "final_improvement.md").read_text()
    overall = probability_of_improvement([(values[(p, "Adam g")], values[(p, "MeZO")]) for p in ("a", "c")],
                                         higher_is_better=False)
    row = next(line for line in improvement.splitlines() if line.startswith("| all rows"))
    assert row == f"| all rows (each a stratum) | {overall.text(number='.2f')} |"
    assert "P(Adam g better than MeZO)" in improvement
    rows = list(csv.DictReader(open(folder / "final_improvement.csv")))
    assert {r["seed"] for r in rows} == {"estimate", "low", "high"}


def _texts_outside_the_canvas(figure) -> list[str]:
    """How far what is drawn (titles, labels, ticks, legends: the figure's tight box) leaves the canvas,
    per side, in inches beyond a pixel; empty when everything is on it."""
    figure.canvas.draw()
    drawn, (width, height) = figure.get_tightbbox(figure.canvas.get_renderer()), figure.get_size_inches()
    pixel = 1 / figure.dpi
    sides = {"left": -drawn.x0, "bottom": -drawn.y0, "right": drawn.x1 - width, "top": drawn.y1 - height}
    return [f"{side} by {beyond:.2f} in" for side, beyond in sides.items() if beyond > pixel]


def test_no_text_leaves_the_canvas_of_any_figure_kind(tmp_path, monkeypatch):
    """Every figure kind at the size a report writes it, with the longest titles and the most labels
    the shipped suites give (the zoo's 22 methods, a one-panel curve figure like the quickstart's)."""
    from zobench.optimizers.anneal import AnnealSchedule
    from zobench.problems.test_functions import TEST_FUNCTIONS

    found, close = {}, plt.close
    monkeypatch.setattr(figures.plt, "close", lambda figure: found.setdefault(len(found), _texts_outside_the_canvas(
        figure)) is None or close(figure))
    labels = [f"zo-method-{i}@delta" for i in range(22)]
    colours = figures.palette(labels)
    curve = [[(step, 0.7 + step / 1e5) for step in range(0, 10_001, 500)]] * 3
    figures.metric_curves({"sst2": {label: curve for label in labels[:4]}}, "accuracy", "forward passes", False,
                          colours, tmp_path / "one.png", split="test")
    figures.metric_curves({name: {label: curve for label in labels} for name in TEST_FUNCTIONS}, "distance", "steps",
                          True, colours, tmp_path / "six.png")
    figures.trajectories({name: {labels[0]: [[f.start, f.minimum]]} for name, f in TEST_FUNCTIONS.items()}, colours,
                         tmp_path / "trajectories.png")
    figures.anneal_schedule({"paper defaults (T1=1024, T2=16000, T3=20000)": AnnealSchedule(T1=1024, T2=16000, T3=20000),
                             "ZO-AdaMU in this suite (T1=500, T2=8000, T3=10000)": AnnealSchedule(T1=500, T2=8000, T3=10000)},
                            tmp_path / "anneal.png")
    figures.ecdf({label: [10, 100, None] for label in labels}, colours, tmp_path / "ecdf.png")
    sweep = [f"{label} (lr={lr})" for label in labels for lr in (0.1, 0.03, 0.01, 0.003, 0.001)]  # a sweep's 110
    figures.ecdf({label: [10, 100, None] for label in sweep}, figures.palette(sweep), tmp_path / "sweep.png")
    figures.performance_profile({label: [1.0, 3.0, float("inf")] for label in labels}, colours, tmp_path / "p.png")
    figures.scaling({"suboptimality ≤ 0.01": {label: {(10 ** d, r): 100.0 * d for d in (3, 4) for r in (8, 64)}
                                              for label in labels[:4]}}, colours, tmp_path / "scaling.png")
    for resolution in (0.0, 4.0):
        figures.bars({label: [1.0, 3.0] for label in labels}, "MiB", "Peak memory of the training steps above the "
                     "loaded model and data (process RSS)", colours, tmp_path / "bars.png", resolution=resolution)
    figures.memory_scaling({(label, precision): [(10 ** 8, 1.0), (10 ** 11, 300.0)] for label in labels[:6]
                            for precision in ("float16", "float32")}, {labels[0]: [(10 ** 8, 1.2)]},
                           {"A100 80 GB": 80.0, "V100 32 GB": 32.0}, "Predicted peak memory at length 2048, batch "
                           "1: weights, gradients, optimizer state and activations by method (solid float16, dotted "
                           "float32)", tmp_path / "memory.png")
    assert len(found) == 11
    assert {index: outside for index, outside in found.items() if outside} == {}

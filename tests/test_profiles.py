"""Performance profiles against a hand computation, and in a suite's report."""

import math
import textwrap

from zobench import harness
from zobench.report import profiles
from zobench.store import ResultStore
from zobench.suite import load_suite

INF = math.inf


def test_ratios_and_shares_match_a_hand_computation():
    costs = {"p1": {"A": 10, "B": 20}, "p2": {"A": 40, "B": 20}, "p3": {"A": INF, "B": 30}, "p4": {"A": INF, "B": INF}}
    ratios = profiles.ratios(costs)
    assert ratios == {"A": [1.0, 2.0, INF, INF], "B": [2.0, 1.0, 1.0, INF]}
    assert [profiles.solved_within(ratios["A"], tau) for tau in (1, 1.99, 2, INF)] == [0.25, 0.25, 0.5, 0.5]
    assert [profiles.solved_within(ratios["B"], tau) for tau in (1, 2, INF)] == [0.5, 0.75, 0.75]
    assert profiles.table(costs).splitlines()[2] == "| A | 0.25 | 0.50 | 0.50 | 0.50 | 0.50 |"


def test_a_target_met_at_step_0_ties_as_best():
    assert profiles.ratios({"p": {"A": 0, "B": 0, "C": 40, "D": INF}}) == {"A": [1.0], "B": [1.0], "C": [40.0],
                                                                          "D": [INF]}


def test_median_cost_counts_an_unreached_seed_as_never():
    assert profiles.median_cost([100, None, 300]) == 300
    assert profiles.median_cost([100, None, None]) == INF


def test_a_suite_report_profiles_its_problems_and_targets(tmp_path):
    path = tmp_path / "profiled.yaml"
    path.write_text(textwrap.dedent("""
        name: profiled
        problems: [a, c]
        optimizers:
          - {name: zo-sgd, lr: 0.05}
          - {name: zo-adam@g, lr: 0.05}
        seeds: [0, 1, 2]
        budget: {steps: 300, eval_every: 10}
        targets: [1.0, 0.3]
    """))
    suite = load_suite(path)
    store = ResultStore(tmp_path / "out" / suite.name)
    assert harness.execute(suite, store, quiet=True) == []
    from zobench.report import write_report

    write_report(suite, store)
    assert (store.root / "performance_profile.png").stat().st_size > 0
    rows = {line.split(" | ")[0].strip("| "): line for line in (store.root / "performance_profile.md").read_text()
            .splitlines() if line.startswith("| zo-")}
    # recompute the profile from the records: median forward passes over seeds, per (problem, target)
    costs = {}
    for spec in suite.runs:
        for target in store.record(spec.key)["targets"]:
            costs.setdefault((spec.problem, target["target"]), {}).setdefault(spec.label, []).append(
                target["forward_passes"])
    medians = {key: {label: profiles.median_cost(v) for label, v in by.items()} for key, by in costs.items()}
    assert any(math.isfinite(c) for by in medians.values() for c in by.values()), "some target must be reached"
    expected = profiles.table(medians).splitlines()[2:]
    assert sorted(rows.values()) == sorted(expected)


def test_the_zoo_suite_runs_every_built_in_method_once():
    """suites/zoo.yaml compares every built-in ZO method (and the forward gradient); another name for
    the same rule (zo-adam = zo-adam@g, zo-adamu = zo-adamu@delta) runs once."""
    from pathlib import Path

    from zobench import optimizers

    suite = load_suite(Path(__file__).parents[1] / "suites" / "zoo.yaml")
    built_in = [optimizers.get(n) for n in optimizers.names()
                if optimizers.get(n).family in ("zo", "fg") and optimizers.get(n).distribution is None]
    rules = {info.factory for info in built_in}
    zoo = {optimizers.get(spec.optimizer).factory for spec in suite.runs}
    assert zoo == rules
    assert len({spec.optimizer for spec in suite.runs}) == len(rules)

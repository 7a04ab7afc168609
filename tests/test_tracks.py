"""AlgoPerf's tracks from a suite file (zobench.tracks): the external-tuning track tunes every method
over its family's space, the self-tuning track runs each once with 1.5× the budget, targets come from a
baseline suite through `zobench targets`, and reports say which track they show and score it."""

import math

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from test_tuning import suite_file

from zobench import harness, tuning
from zobench.cli import main
from zobench.report import profiles, track
from zobench.store import ResultStore
from zobench.suite import SuiteError, load_suite

EXTERNAL = """
name: external
problems: [a]
track: external
tune:
  trials: 2
  sampler: grid
  budget: {steps: 10}
  space: {lr: [0.01, 0.003]}
  families: {fo: {lr: [0.1, 0.03]}, fzoo: {lr: [1.0e-5, 3.0e-6]}}
optimizers:
  - {name: zo-sgd, label: MeZO}
  - {name: fo-sgd, label: SGD}
  - {name: fzoo, label: FZOO}
seeds: [0, 1]
budget: {steps: 30, eval_every: 10}
targets: [90%]
report:
  tables:
    - {name: final_metric, quantity: final, rows: problem, columns: label}
    - {name: seconds_to_target, quantity: seconds_to_target, rows: problem, columns: label}
"""


def test_the_external_track_tunes_every_method_over_its_familys_space(tmp_path):
    suite = load_suite(suite_file(tmp_path, EXTERNAL))
    assert suite.track == "external" and suite.runs == ()
    assert {s.label: s.space for s in suite.studies} == {"MeZO": {"lr": [0.01, 0.003]}, "SGD": {"lr": [0.1, 0.03]},
                                                         "FZOO": {"lr": [1.0e-5, 3.0e-6]}}
    store = ResultStore(tmp_path / "out" / "external")
    assert harness.execute(suite, store, quiet=True) == []
    from zobench.report import write_report

    index = write_report(tuning.resolved(suite, store.root), store).read_text()
    assert "Track: the external-tuning track" in index
    assert (store.root / "final_metric.md").read_text().startswith("External-tuning track: ")
    seconds = (store.root / "seconds_to_target_0.md").read_text()
    assert "Training seconds to reach" in seconds and "(2/2)" in seconds
    scores = (store.root / "track_scores.md").read_text()
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:] for line in scores.splitlines()
            if line.startswith(("| MeZO", "| SGD", "| FZOO"))}
    assert set(rows) == {"MeZO", "SGD", "FZOO"}
    assert all(0.0 <= float(cells[0]) <= 1.0 for cells in rows.values())
    assert max(float(cells[0]) for cells in rows.values()) > 0  # someone reached the 90% target cheapest


REFUSED = {
    "entry tune": ("track: external\ntune: {space: {lr: [0.1]}}\noptimizers:\n  - {name: zo-sgd, tune: {space: "
                   "{eps: [0.01]}}}", "optimizers[0].tune: the external-tuning track's space is the same"),
    "no space": ("track: external\noptimizers:\n  - {name: zo-sgd}", "tune: the external-tuning track tunes"),
    "untuned entry": ("track: external\ntune: {space: {lr: [0.1, 0.01]}}\noptimizers:\n  - {name: zo-sgd, lr: 0.1}",
                      "optimizers[0]: zo-sgd leaves nothing of the track's space unset"),
    "self-tuning with tune": ("track: self-tuning\ntune: {space: {lr: [0.1]}}\noptimizers:\n  - {name: zo-sgd}",
                              "tune: the self-tuning track runs each method once"),
    "self-tuning grid": ("track: self-tuning\noptimizers:\n  - {name: zo-sgd, lr: [0.1, 0.01]}",
                         "optimizers[0]: the self-tuning track runs one configuration per method"),
    "families without track": ("tune: {space: {lr: [0.1]}, families: {fo: {lr: [0.1]}}}\noptimizers:\n"
                               "  - {name: zo-sgd}", "tune.families: belongs to the external-tuning track"),
    "bad family": ("track: external\ntune: {families: {adam: {lr: [0.1]}}}\noptimizers:\n  - {name: zo-sgd}",
                   "tune.families.adam: neither a family (zo, fo, fg) nor"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_a_suite_breaking_its_tracks_rules_is_refused_in_one_line(case, tmp_path):
    body, expected = REFUSED[case]
    text = f"name: refused\nproblems: [a]\nbudget: {{steps: 10}}\n{body}\n"
    with pytest.raises(SuiteError) as error:
        load_suite(suite_file(tmp_path, text))
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_the_self_tuning_track_gives_one_and_a_half_times_the_budget(tmp_path):
    text = """
    name: self
    problems: [a]
    track: self-tuning
    optimizers:
      - {name: zo-sgd, lr: 0.01}
      - {name: fo-sgd, lr: 0.1, budget: {steps: 7, forward_passes: 15}}
    budget: {steps: 20, eval_every: 5, seconds: 2}
    """
    suite = load_suite(suite_file(tmp_path, text))
    by_label = {run.label: run for run in suite.runs}
    assert (by_label["zo-sgd"].steps, by_label["zo-sgd"].seconds_budget, by_label["zo-sgd"].eval_every) == (30, 3.0, 5)
    assert (by_label["fo-sgd"].steps, by_label["fo-sgd"].forward_pass_budget) == (11, 23)  # ceil(1.5 × 7), ceil(22.5)


BASELINE = """
name: baseline
problems: [a, b]
optimizers:
  - {name: fo-adam, label: Adam, lr: 0.05}
seeds: [0, 1, 2]
budget: {steps: 40, eval_every: 10}
"""


def test_targets_from_a_baseline_suite_are_what_every_run_chases(tmp_path, capsys):
    """`zobench targets` writes, per problem, the median over seeds of the baseline's best dev value;
    a suite naming the file gives every run that target, and a missing problem or file is one line."""
    baseline = suite_file(tmp_path, BASELINE, "baseline.yaml")
    assert main(["run", str(baseline), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    written = tmp_path / "targets.yaml"
    assert main(["targets", str(baseline), "--out", str(written), "--results", str(tmp_path / "out")]) == 0
    document = yaml.safe_load(written.read_text())
    store = ResultStore(tmp_path / "out" / "baseline")
    for problem in ("a", "b"):
        best = sorted(r["best_dev"]["value"] for r in store.records() if r["spec"]["problem"] == problem)
        (entry,) = [t for t in document["targets"] if t["problem"] == problem]
        assert entry == {"problem": problem, "model": "", "peft": "none", "value": best[1]}
    assert document["baseline"]["labels"] == ["Adam"] and document["baseline"]["seeds"] == [0, 1, 2]

    chaser = suite_file(tmp_path, """
    name: chaser
    problems: [a, b]
    baseline_targets: targets.yaml
    optimizers: [{name: zo-sgd, lr: 0.01}]
    budget: {steps: 20, eval_every: 10}
    targets: [0.5]
    """, "chaser.yaml")
    suite = load_suite(chaser)
    for run in suite.runs:
        (entry,) = [t for t in document["targets"] if t["problem"] == run.problem]
        assert run.targets == (0.5, entry["value"])
    store = ResultStore(tmp_path / "out" / "chaser")
    assert harness.execute(suite, store, quiet=True) == []
    for record in store.records():  # a target's training seconds are the log's, summed to the step
        log = store.read_log(record["key"])
        for target in record["targets"]:
            expected = None if target["step"] is None else sum(e.get("seconds", 0.0) for e in log
                                                               if e["step"] <= target["step"])
            assert target["seconds"] == expected

    chaser.write_text(chaser.read_text().replace("[a, b]", "[a, c]"))
    with pytest.raises(SuiteError, match=r"baseline_targets: has no target for c; run the baseline suite"):
        load_suite(chaser)
    chaser.write_text(chaser.read_text().replace("targets.yaml", "nowhere.yaml"))
    with pytest.raises(SuiteError, match=r"nowhere.yaml does not exist; write it with zobench targets"):
        load_suite(chaser)
    capsys.readouterr()
    assert main(["targets", str(chaser), "--out", str(written), "--results", str(tmp_path / "none")]) == 2
    assert "no run is labelled" not in capsys.readouterr().err
    assert main(["targets", str(baseline), "--out", str(written), "--label", "Nope", "--results",
                 str(tmp_path / "out")]) == 2
    assert "no run is labelled 'Nope'; labels: Adam" in capsys.readouterr().err


def test_algoperf_score_is_the_profiles_area_up_to_four():
    """The exact area against a fine Riemann sum of ρ(τ) over [1, 4], ∞ (never solved) and ratios past
    4 included."""
    ratios = [1.0, 1.5, 3.0, 4.0, 6.0, math.inf]
    taus = np.linspace(1.0, 4.0, 300_001)
    rho = np.array([sum(r <= tau for r in ratios) / len(ratios) for tau in taus[::1000]])
    riemann = np.trapezoid(rho, taus[::1000]) / 3.0
    assert profiles.area(ratios) == pytest.approx(riemann, abs=2e-3)
    assert profiles.area(ratios) == pytest.approx((3 + 2.5 + 1 + 0) / 3 / 6, rel=1e-12)
    assert profiles.area([1.0, 1.0]) == 1.0 and profiles.area([math.inf]) == 0.0


def test_track_scores_use_medians_and_count_a_miss_as_infinite():
    """Two methods on two (problem, target) pairs, three seeds each: B misses pair 2 on two seeds (so its
    median is ∞) and is 2× A's cost on pair 1."""
    rows = []
    for seed, (a1, b1, a2, b2) in enumerate([(10, 20, 100, None), (12, 24, 90, 80), (14, 28, 110, None)]):
        for label, pair, cost in (("A", "t1", a1), ("B", "t1", b1), ("A", "t2", a2), ("B", "t2", b2)):
            rows.append({"problem": "p", "name": pair, "label": label, "seed": seed, "forward_passes": cost,
                         "seconds": None if cost is None else cost / 10})
    reached = pd.DataFrame(rows, dtype=object)
    found = track.scores(reached, ["A", "B"])
    assert found["A"]["score forward_passes"] == 1.0  # cheapest median on both pairs
    assert found["B"]["score forward_passes"] == pytest.approx(((4 - 2) / 3 + 0) / 2)  # 24/12 = 2 on t1, ∞ on t2
    assert found["B"]["score seconds"] == pytest.approx(found["B"]["score forward_passes"])
    b = found["B"]["iqm forward_passes"]  # ratios to A's medians: 20/12, 2, 28/12 on t1; ∞, 80/100, ∞ on t2
    assert math.isinf(b.value) and math.isinf(b.high)
    a = found["A"]["iqm forward_passes"]
    values = sorted([10 / 12, 1.0, 14 / 12, 0.9, 1.0, 1.1])
    assert a.value == pytest.approx(stats.trim_mean(values, 0.25))
    assert a.low <= a.value <= a.high
    assert "| B | 0.333 |" in track.table("external-tuning track", reached, ["A", "B"])


@pytest.mark.parametrize("name", ["zoo-lm", "zoo-lm-head"])
def test_the_shipped_lm_zoo_tunes_every_registered_method_in_the_external_track(name, shared_data, tmp_path):
    """suites/zoo-lm*.yaml, given a targets file: every zeroth-order and forward-gradient method zobench
    registers is tuned on each of the four tasks over the same grid (FZOO's scaled by ε), and every
    final run chases the baseline's target for its task after the suite's gap target."""
    from pathlib import Path

    from zobench import optimizers

    suites = Path(__file__).parents[1] / "suites"
    text = (suites / f"{name}.yaml").read_text().replace("../../shared/data", str(shared_data))
    peft = "top" if name == "zoo-lm" else "head"
    targets = {"targets": [{"problem": task, "model": "minilm-l6", "peft": peft, "value": 0.5 + i / 10}
                           for i, task in enumerate(("sst2", "rte", "cb", "boolq"))]}
    (tmp_path / f"{name}.targets.yaml").write_text(yaml.safe_dump(targets))
    suite = load_suite(suite_file(tmp_path, text, f"{name}.yaml"))
    assert suite.track == "external" and suite.runs == ()
    methods = {id(optimizers.get(n).factory) for n in optimizers.names()
               if optimizers.get(n).family in ("zo", "fg") and optimizers.get(n).distribution is None}
    tuned = {id(optimizers.get(study.final.optimizer).factory) for study in suite.studies}
    assert tuned == methods
    assert {study.trial.problem for study in suite.studies} == {"sst2", "rte", "cb", "boolq"}
    for study in suite.studies:
        normalised = optimizers.get(study.final.optimizer).estimator.startswith(("normalised", "group-relative"))
        expected = [1e-5, 1e-6, 1e-7] if normalised else [1e-2, 1e-3, 1e-4]  # steps about 1/ε larger
        assert study.space == {"lr": expected} and study.trials == 3 and study.final.peft == peft
        assert study.final.targets == (0.5 + ("sst2", "rte", "cb", "boolq").index(study.trial.problem) / 10,)
    assert suite.gap_targets == (0.5,)

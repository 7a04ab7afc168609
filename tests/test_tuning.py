"""Tuning inside a suite: equal trials per optimizer and problem, the choice made on dev only, the
chosen values rerun over the suite's seeds, the plan and its cost, and a study that resumes after
kill -9 with the trials and the choice of an uninterrupted one."""

import textwrap

import pytest

from zobench import harness, tuning
from zobench.store import ResultStore
from zobench.suite import SuiteError, load_suite

TUNED = """
name: tuned
problems: [c, a]
tune:
  trials: 4
  budget: {steps: 40}
  space: {lr: {log: [1.0e-4, 1.0e-1]}}
optimizers:
  - {name: zo-sgd, label: MeZO}
  - {name: zo-adam@g, label: Adam g, tune: {space: {eps: [0.001, 0.01]}}}
  - {name: fo-adam, label: FO, lr: 0.01}
seeds: [0, 1]
budget: {steps: 60, eval_every: 10}
"""


def suite_file(tmp_path, text, name="tuned.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def trials_of(store, study):
    return [r for r in store.records() if r["spec"]["label"] == f"{study.label} (tuning)"
            and r["spec"]["problem"] == study.trial.problem]


def test_every_study_gets_its_trials_and_its_best_dev_trial_runs_over_the_seeds(tmp_path):
    suite = load_suite(suite_file(tmp_path, TUNED))
    assert [(s.label, s.trial.problem, s.trials) for s in suite.studies] == [
        ("MeZO", "c", 4), ("Adam g", "c", 4), ("MeZO", "a", 4), ("Adam g", "a", 4)]
    assert set(suite.studies[1].space) == {"lr", "eps"} and {r.label for r in suite.runs} == {"FO"}
    store = ResultStore(tmp_path / "out" / suite.name)
    assert harness.execute(suite, store, quiet=True) == []
    resolved = tuning.resolved(suite, store.root)
    for study in suite.studies:
        trials = trials_of(store, study)
        assert len(trials) == 4 and all(t["steps_done"] == 40 and t["spec"]["seed"] == 0 for t in trials)
        best = min(trials, key=lambda t: t["best_dev"]["value"])  # distances: lower is better; dev only
        finished, chosen, value = tuning.progress(store.root, study)
        assert finished == 4 and value == best["best_dev"]["value"]
        assert {k: best["spec"]["hyperparameters"][k] for k in study.space} == chosen
        finals = [r for r in resolved.runs if r.label == study.label and r.problem == study.trial.problem]
        assert sorted(r.seed for r in finals) == [0, 1]
        for run in finals:
            assert store.has(run.key) and run.steps == 60
            assert store.record(run.key)["spec"]["hyperparameters"] == {**study.trial.hyperparameters, **chosen}
    assert [(r.problem, r.label) for r in resolved.runs] == [  # tuned entries in their place in the file
        (p, label) for p in ("c", "a") for label in ("MeZO", "Adam g", "FO") for _ in (0, 1)]
    from zobench.report import write_report
    index = write_report(resolved, store).read_text()
    assert "| MeZO | c | 4/4 | tpe | 40 steps | lr=" in index
    assert "| problem | MeZO | Adam g | FO |" in (store.root / "final_metric.md").read_text()


def test_dry_run_shows_the_tuning_plan_and_its_cost(tmp_path, capsys):
    from zobench.cli import main

    assert main(["run", str(suite_file(tmp_path, TUNED)), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "tune MeZO on c: 0/4 trials (tpe), 320 forward passes to go" in out  # 4 trials × 40 steps × 2
    assert "tuning: 4 studies, 1,280 training forward passes to go" in out
    assert not (tmp_path / "out" / "tuned" / "tuning").exists()  # a plan creates no study


def grid_study(tmp_path, space: str, points: int, entry: str):
    """Tunes one entry on problem c over a grid; returns the store, the study, its trials and the best."""
    suite = load_suite(suite_file(tmp_path, f"""
        name: grid
        problems: [c]
        tune: {{sampler: grid, trials: {points}, budget: {{steps: 20}}, space: {space}}}
        optimizers: [{entry}]
        seeds: [0]
        budget: {{steps: 20, eval_every: 10}}
        """))
    store = ResultStore(tmp_path / "out" / suite.name)
    assert harness.execute(suite, store, quiet=True) == []
    [study] = suite.studies
    trials = trials_of(store, study)
    return suite, store, study, trials, min(trials, key=lambda t: t["best_dev"]["value"])


def test_a_grid_study_runs_every_point_once_and_chooses_the_best(tmp_path):
    """Optuna's grid sampler stops a study once its grid is spent, which ask-and-tell refuses: the
    last point must be told like any other."""
    _, store, study, trials, best = grid_study(tmp_path, "{lr: [0.1, 0.01, 0.001]}", 3, "{name: zo-sgd, label: MeZO}")
    assert sorted(t["spec"]["hyperparameters"]["lr"] for t in trials) == [0.001, 0.01, 0.1]
    assert tuning.progress(store.root, study)[:2] == (3, {"lr": best["spec"]["hyperparameters"]["lr"]})


def test_betas_pairs_are_searched_and_recorded_as_pairs(tmp_path):
    suite, store, study, trials, best = grid_study(tmp_path, "{betas: [[0.9, 0.999], [0.5, 0.9]]}", 2,
                                                   "{name: zo-adam@g, label: Adam g, lr: 0.01}")
    assert sorted(t["spec"]["hyperparameters"]["betas"] for t in trials) == [[0.5, 0.9], [0.9, 0.999]]
    assert tuning.progress(store.root, study)[1] == {"betas": tuple(best["spec"]["hyperparameters"]["betas"])}
    [final] = tuning.resolved(suite, store.root).runs
    assert store.record(final.key)["spec"]["hyperparameters"]["betas"] == best["spec"]["hyperparameters"]["betas"]


def test_a_bad_pair_to_search_is_refused_before_anything_runs(tmp_path):
    text = """
        name: bad
        problems: [c]
        optimizers: [{name: zo-adam@g, lr: 0.01, tune: {space: {betas: [[0.9, 0.999], [0.9, 1.5]]}}}]
        budget: {steps: 4}
        """
    with pytest.raises(SuiteError, match=r"optimizers\[0\]: zo-adam@g rejects .*'betas': \(0.9, 1.5\)"):
        load_suite(suite_file(tmp_path, text))


def test_only_narrows_the_tuning_to_the_studies_it_selects(tmp_path):
    suite = load_suite(suite_file(tmp_path, TUNED))
    store = ResultStore(tmp_path / "out" / suite.name)
    assert harness.execute(suite, store, only="label=Adam g,problem=a", quiet=True) == []
    tuned = {(r["spec"]["label"], r["spec"]["problem"]) for r in store.records()}
    assert tuned == {("Adam g (tuning)", "a"), ("Adam g", "a")}
    assert [tuning.progress(store.root, s)[0] for s in suite.studies] == [0, 0, 0, 4]
    assert harness.select_studies(suite, "FO").studies == ()  # untuned runs only: no study
    with pytest.raises(harness.FilterError, match="matches none of the suite's"):
        harness.select_studies(suite, "label=Adam h")


BAD = {
    "unknown hyperparameter": ("tune: {space: {bogus: [1, 2]}}", "tune.space.bogus: not a hyperparameter"),
    "fixed and searched": ("tune: {space: {eps: [0.1]}}\n        lr: 0.1\n        eps: 0.01",
                           "eps: is both fixed and searched"),
    "log from zero": ("tune: {space: {lr: {log: [0, 1]}}}", "needs low < high and low > 0"),
    "grid too small": ("tune: {sampler: grid, trials: 3, space: {lr: [0.1, 0.01]}}",
                       "3 trials on a grid of 2 points would repeat points; use trials: 2"),
    "grid of a range": ("tune: {sampler: grid, space: {lr: {log: [0.001, 0.1]}}}", "the grid sampler needs a list"),
    "sampler": ("tune: {sampler: bayes, space: {lr: [0.1]}}", "'bayes' is not one of grid, random, tpe"),
    "nothing searched": ("tune: {trials: 3}\n        lr: 0.1", "searches nothing"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_tune_block_is_refused_naming_its_path(case, tmp_path):
    block, fragment = BAD[case]
    text = f"""
    name: bad
    problems: [c]
    optimizers:
      - name: zo-sgd
        {block}
    budget: {{steps: 4}}
    """
    with pytest.raises(SuiteError, match=None) as error:
        load_suite(suite_file(tmp_path, text))
    assert fragment in str(error.value) and "optimizers[0]" in str(error.value)


def test_a_final_run_that_is_its_best_trial_is_reported_under_its_entrys_label(tmp_path):
    """Trials with the suite's own budget at one of its seeds are final runs already: the chosen trial's
    record serves as that seed's run (same key), and the report labels it as the entry, not the trial."""
    from zobench.report import write_report

    text = """
    name: same
    problems: [a]
    tune: {trials: 2, sampler: grid, space: {lr: [0.01, 0.001]}}
    optimizers: [{name: zo-sgd, label: MeZO}]
    seeds: [0, 1]
    budget: {steps: 20, eval_every: 10}
    """
    suite = load_suite(suite_file(tmp_path, text))
    store = ResultStore(tmp_path / "out" / "same")
    assert harness.execute(suite, store, quiet=True) == []
    assert len(store.records()) == 3  # two trials, and seed 1: seed 0's run is the chosen trial
    write_report(tuning.resolved(suite, store.root), store)
    final = (store.root / "final_metric.md").read_text()
    assert "| problem | MeZO |" in final and "(tuning)" not in final

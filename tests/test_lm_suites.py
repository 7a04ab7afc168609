"""The language-model suites: the CI suite learns for real; the quickstart and paper suites validate."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from zobench.optimizers.noise import step_seed
from zobench.suite import SuiteError, load_suite

SUITES = Path(__file__).parents[1] / "suites"


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory, shared_data):
    """The CI suite, run once through the regression gate against its committed baseline."""
    out = tmp_path_factory.mktemp("ci")
    gate = subprocess.run([sys.executable, "-m", "zobench", "check", str(SUITES / "ci.yaml"), "--baseline",
                           str(SUITES.parent / "benchmarks" / "baselines" / "ci.json"), "--out", str(out), "--quiet"],
                          capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return gate, [json.loads(p.read_text()) for p in (out / "ci" / "runs").glob("*.json")]


@pytest.fixture(scope="module")
def ci_records(ci_run):
    return ci_run[1]


@pytest.mark.slow
def test_ci_suite_passes_the_regression_gate(ci_run):
    gate, _ = ci_run
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert "no regression against" in gate.stdout


@pytest.mark.slow
def test_ci_suite_records_data_and_trainable_parameters(ci_records):
    assert len(ci_records) == 2
    for record in ci_records:
        assert record["status"] == "finished" and record["steps_done"] == 3000
        assert record["problem"]["split_sizes"] == {"train": 1000, "dev": 200, "test": 300}
        assert record["problem"]["trainable_parameters"] == 2 * 384 + 2  # the head only
        assert record["problem"]["data_source"].endswith("SST-2")
        assert 0.6 < record["initial"]["dev"]["accuracy"] < 0.8  # the zero-shot head is well above chance


@pytest.mark.slow
def test_ci_suite_records_the_class_balance_of_each_split(ci_records, shared_data):
    from zobench.tasks import load_splits, load_task

    splits = load_splits(load_task("sst2"), protocol="mezo", seed=0, num_train=1000, num_dev=200, num_test=300,
                         data_dir=shared_data)
    for record in ci_records:
        for split in ("train", "dev", "test"):
            labels = [example["label"] for example in getattr(splits, split)]
            expected = {value: labels.count(value) / len(labels) for value in ("0", "1")}
            assert record["problem"]["class_balance"][split] == pytest.approx(expected)


@pytest.mark.slow
def test_zo_adam_g_learns_beyond_zero_shot(ci_records):
    adam = next(r for r in ci_records if r["spec"]["optimizer"] == "zo-adam@g")
    assert adam["best_dev"]["value"] >= adam["initial"]["dev"]["accuracy"] + 0.02


@pytest.mark.parametrize("name, runs, model", [("quickstart", 12, "minilm-l6"), ("table1", 99, "facebook/opt-13b"),
                                               ("table2", 90, "roberta-large"), ("table3", 30, "facebook/opt-13b"),
                                               ("table4", 24, "roberta-large"), ("table4-squad", 2, "facebook/opt-13b")])
def test_shipped_suites_validate_and_plan(name, runs, model, tmp_path):
    suite = load_suite(SUITES / f"{name}.yaml")
    assert len(suite.runs) == runs
    assert {run.model for run in suite.runs} == {model}
    result = subprocess.run([sys.executable, "-m", "zobench", "run", str(SUITES / f"{name}.yaml"), "--dry-run",
                             "--out", str(tmp_path)], check=True, capture_output=True, text=True)
    assert f"{runs} runs, {runs} to run" in result.stdout


def test_table3_cpu_tunes_the_ten_cells_in_both_settings_with_equal_budgets(tmp_path):
    suite = load_suite(SUITES / "table3-cpu.yaml")
    cells = {(s.final.schedule, s.final.placement, s.final.peft) for s in suite.studies}
    assert cells == {(schedule, placement, peft) for schedule in ("adamu", "adam", "adamw", "adamax", "adamm")
                     for placement in ("δ", "g") for peft in ("head", "top")}
    for peft in ("head", "top"):  # the same grid, trials and trial budget for every cell of a setting
        studies = [s for s in suite.studies if s.final.peft == peft]
        assert len({(repr(s.space), s.trials, s.sampler, s.trial.steps, s.final.steps) for s in studies}) == 1
    result = subprocess.run([sys.executable, "-m", "zobench", "run", str(SUITES / "table3-cpu.yaml"), "--dry-run",
                             "--out", str(tmp_path)], check=True, capture_output=True, text=True)
    assert "tuning: 20 studies" in result.stdout


def test_accuracy_objective_is_the_negated_batch_accuracy(shared_data):
    from zobench import optimizers
    from zobench.problems.task_problem import TaskProblem

    problem = TaskProblem("sst2", "minilm-l6", peft="head", data_dir=str(shared_data), num_train=64, num_dev=16,
                          num_test=16, batch_size=16, objective="accuracy")
    closure = problem.loss_closure(1)
    value = closure()
    assert not value.requires_grad
    batch = torch.randperm(64, generator=torch.Generator().manual_seed(step_seed(0, 1)))[:16].tolist()
    examples = [problem.splits.train[i] for i in batch]
    with torch.no_grad():
        predictions = problem.scorer.scores(examples).argmax(-1)
    gold = torch.tensor([problem.task.label_index(e) for e in examples])
    assert value.item() == pytest.approx(-(predictions == gold).float().mean().item())
    optimizer = optimizers.create("zo-sgd", problem.parameter_groups(), lr=0.1, eps=0.05)
    for step in range(1, 6):
        optimizer.step(problem.loss_closure(step))


@pytest.mark.parametrize("body, message", [
    ("tasks: [sst2]\nmodels: [minilm-l6]\noptimizers: [{name: fo-adam, lr: 0.01}]",
     "optimizers[0].name: objective accuracy has no gradient; fo-adam needs one"),
    ("problems: [a]\noptimizers: [{name: zo-sgd, lr: 0.01}]", "objective: test functions are their own objective"),
])
def test_accuracy_objective_is_refused_where_it_cannot_work(tmp_path, body, message):
    path = tmp_path / "nd.yaml"
    path.write_text(f"name: nd\nobjective: accuracy\nbudget: {{steps: 5}}\n{body}\n")
    with pytest.raises(SuiteError) as error:
        load_suite(path)
    assert message in str(error.value)


def test_table1_rows_set_their_own_peft_budget_data_and_dtype():
    runs = {run.label: run for run in load_suite(SUITES / "table1.yaml").runs if run.problem == "copa"}
    assert runs["Zero-shot"].steps == 0 and runs["ICL"].data["demonstrations"] == 32
    assert runs["MeZO (LoRA)"].peft == "lora" and runs["ZO-AdaMU (prefix)"].peft == "prefix"
    finetune = runs["Adam (FT)"]
    assert (finetune.steps, finetune.eval_every, finetune.dtype, finetune.data["batch_size"]) == (625, 125, "bfloat16", 8)
    assert (runs["MeZO"].steps, runs["MeZO"].dtype, runs["MeZO"].data["batch_size"]) == (20000, "float16", 16)


@pytest.mark.parametrize("body, message", [
    ("tasks: [sst2]\nmodels: [m]\nobjective: f1\noptimizers: [{name: zo-sgd, lr: 0.1}]",
     "objective: 'f1' does not fit task sst2; use one of loss, accuracy"),
    ("tasks: [squad]\nmodels: [m]\noptimizers: [{name: zo-sgd, lr: 0.1, objective: accuracy}]",
     "optimizers[0]: objective: 'accuracy' does not fit task squad; use one of loss, f1, em"),
    ("tasks: [sst2]\nmodels: [m]\noptimizers: [{name: zo-sgd, lr: 0.1, peft: lorra}]",
     "optimizers[0].peft: 'lorra' is not one of none, lora, prefix, head, top"),
    ("tasks: [sst2]\nmodels: [m]\noptimizers: [{name: zo-sgd, label: A, lr: 0.1}]\nreport: {tables: [{name: t, "
     "quantity: final, rows: label, columns: problem, paper: {B: {sst2: 90.0}}}]}",
     "report.tables[0].paper.B: not a row of the table; rows: A"),
    ("tasks: [sst2]\nmodels: [m]\noptimizers: [{name: zo-sgd, label: A, lr: 0.1}]\nreport: {tables: [{name: t, "
     "quantity: final, rows: label, columns: problem, paper: {A: {sst5: 90.0}}}]}",
     "report.tables[0].paper.A.sst5: not a column of the table; columns: sst2"),
])
def test_entry_settings_objectives_and_paper_values_are_checked(tmp_path, body, message):
    path = tmp_path / "bad.yaml"
    path.write_text(f"name: bad\nbudget: {{steps: 5}}\n{body}\n")
    with pytest.raises(SuiteError) as error:
        load_suite(path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_mixed_metric_report_prints_percent_next_to_the_paper(tmp_path, shared_data):
    """Zero-shot SmolLM2 on COPA (accuracy) and SQuAD (F1) in one table, beside made-up paper values."""
    suite = tmp_path / "mixed.yaml"
    suite.write_text(f"""name: mixed
tasks: [copa, squad]
models: [smollm2-135m]
data: {{num_train: 8, num_dev: 4, num_test: 6, batch_size: 2, max_length: 320}}
data_dir: {shared_data}
optimizers: [{{name: zo-sgd, label: Zero-shot, lr: 0.0}}]
budget: {{steps: 0}}
report:
  tables:
    - {{name: t1, quantity: initial_test, rows: label, columns: problem, paper: {{Zero-shot: {{copa: 80.0}}}}}}
""")
    subprocess.run([sys.executable, "-m", "zobench", "run", str(suite), "--out", str(tmp_path / "out"), "--quiet"],
                   check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    records = {r["spec"]["problem"]: r for r in map(json.loads, map(Path.read_text,
                                                                      (tmp_path / "out/mixed/runs").glob("*.json")))}
    assert records["copa"]["metric"]["name"] == "accuracy" and records["squad"]["metric"]["name"] == "f1"
    copa, squad = (records[t]["initial"]["test"][records[t]["metric"]["name"]] for t in ("copa", "squad"))
    table = (tmp_path / "out/mixed/t1.md").read_text()
    assert "accuracy / f1" in table.splitlines()[0] and "after the slash, the paper's value" in table
    assert f"| Zero-shot | {100 * copa:.3g} / 80 | {100 * squad:.3g} |" in table

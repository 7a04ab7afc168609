"""Suite files: one-line errors naming the YAML path, grid expansion, deterministic run keys."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from zobench.suite import SuiteError, load_suite

GOOD = """
name: tiny
problems: [a, c]
optimizers:
  - name: zo-sgd
    lr: [0.1, 0.01]
  - name: zo-adam@delta
    lr: 0.01
    betas: [0.9, 0.99]
  - name: zo-adamu
    lr: 0.05
    T1: 5
    overrides: {c: {lr: 0.2}}
seeds: [0, 1]
budget: {steps: 20}
targets: [0.1]
"""


def write(tmp_path, text, name="suite.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_grid_expansion_labels_and_overrides(tmp_path):
    suite = load_suite(write(tmp_path, GOOD))
    assert len(suite.runs) == 2 * (2 + 1 + 1) * 2  # problems × configurations × seeds
    labels = {run.label for run in suite.runs}
    assert labels == {"zo-sgd (lr=0.1)", "zo-sgd (lr=0.01)", "zo-adam@delta", "zo-adamu"}
    adam = next(run for run in suite.runs if run.optimizer == "zo-adam@delta")
    assert adam.hyperparameters["betas"] == (0.9, 0.99)  # a sequence-valued hyperparameter, not a grid
    adamu_lrs = {run.problem: run.hyperparameters["lr"] for run in suite.runs if run.optimizer == "zo-adamu"}
    assert adamu_lrs == {"a": 0.05, "c": 0.2}


def test_keys_are_unique_and_stable(tmp_path):
    first, second = load_suite(write(tmp_path, GOOD)), load_suite(write(tmp_path, GOOD, "copy.yaml"))
    keys = [run.key for run in first.runs]
    assert len(set(keys)) == len(keys)
    assert keys == [run.key for run in second.runs]


@pytest.mark.parametrize("old, new, expected", [
    ("budget: {steps: 20}", "budget: {steps: 20}\noptimisers: []", "suite.yaml: optimisers: unknown key"),
    ("- name: zo-adam@delta", "- name: zo-adm@delta", "optimizers[1].name: unknown optimizer 'zo-adm@delta'; did you mean"),
    ("lr: [0.1, 0.01]", "lr: [0.1, fast]", "optimizers[0].lr[1]: expected a number, got 'fast'"),
    ("betas: [0.9, 0.99]", "betaz: [0.9, 0.99]", "optimizers[1].betaz: not a hyperparameter of zo-adam@delta"),
    ("budget: {steps: 20}", "budget: {steps: -1}", "budget.steps: must be >= 0, got -1"),
    ("budget: {steps: 20}", "budget: {steps: 20, eval_every: 0}", "budget.eval_every: must be >= 1, got 0"),
    ("budget: {steps: 20}", "budget: {steps: twenty}", "budget.steps: expected an integer"),
    ("T1: 5", "T1: 500", "optimizers[2]: zo-adamu rejects"),
    ("problems: [a, c]", "problems: [a, rosenbrok]", "problems[1]: unknown problem 'rosenbrok'"),
    ("seeds: [0, 1]", "seeds: [0, 1.5]", "seeds[1]: expected an integer"),
    ("overrides: {c: {lr: 0.2}}", "overrides: {d: {lr: 0.2}}", "optimizers[2].overrides.d: not a problem of this suite"),
    ("- name: zo-sgd\n    lr: [0.1, 0.01]", "- name: zo-sgd", "optimizers[0]: zo-sgd needs lr"),
    ("name: tiny", "name: [tiny", "is not valid YAML"),
    ("targets: [0.1]", "targets: [0.1, 150%]", "targets[1]: a gap target is a percentage in (0%, 100%], got '150%'"),
    ("seeds: [0, 1]", "seeds: [0, 1]\ndtype: fp32", "dtype: 'fp32' is not one of float32, float64, bfloat16, float16"),
    ("seeds: [0, 1]", "seeds: [0, 1]\ndevice: tpu", "device: 'tpu' is not one of cpu, cuda, auto"),
    ("seeds: [0, 1]", "seeds: [0, 1]\npeft: lora", "peft: test functions have no model to adapt"),
    ("seeds: [0, 1]", "seeds: [0, 1]\npeft: adapters", "peft: 'adapters' is not one of none, lora, prefix, head, top"),
    ("problems: [a, c]", "problems: [a, c]\ntasks: [sst3]\nmodels: [minilm-l6]", "tasks[0]: unknown task 'sst3'; did you mean sst5, sst2?"),
    ("problems: [a, c]", "problems: [a, c]\ntasks: [sst2]", "tasks need models"),
    ("problems: [a, c]", "problems: [a, c]\ntasks: [sst2]\nmodels: [minilm-l6]\ndata: {protocol: fewshot}",
     "data.protocol: 'fewshot' is not one of mezo, kshot"),
    ("budget: {steps: 20}", "budget: {steps: 20, eval_evry: 2}", "budget.eval_evry: unknown key; allowed: steps, eval_every"),
    ("seeds: [0, 1]", "seeds: [0, 1]\nreport: {tables: [{name: t, quantity: best, rows: problem, columns: label}]}",
     "report.tables[0].quantity: 'best' is not one of initial_test, final, selected_test"),
    ("seeds: [0, 1]", "seeds: [0, 1]\nreport: {tables: [{name: t, quantity: final, rows: task, columns: label}]}",
     "report.tables[0].rows: 'task' is not one of problem, model, peft, label"),
])
def test_each_mistake_is_one_line_naming_its_path(tmp_path, old, new, expected):
    text = textwrap.dedent(GOOD)
    assert old in text
    with pytest.raises(SuiteError) as error:
        load_suite(write(tmp_path, text.replace(old, new)))
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_suite_file_names_the_path(tmp_path):
    with pytest.raises(SuiteError, match="no such suite file"):
        load_suite(tmp_path / "absent.yaml")


def test_cli_reports_a_bad_suite_in_one_line_without_traceback(tmp_path):
    bad = write(tmp_path, GOOD.replace("zo-adamu", "zo-adamuu"))
    result = subprocess.run([sys.executable, "-m", "zobench", "run", str(bad), "--out", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("zobench: error: suite.yaml: optimizers[2].name: unknown optimizer")
    assert not (tmp_path / "tiny").exists()  # nothing ran


def test_numbers_in_exponent_form_without_a_point_are_numbers(tmp_path):
    """PyYAML (YAML 1.1) reads 1e-5 as a string; zobench reads it as YAML 1.2 does, a number."""
    suite = load_suite(write(tmp_path, GOOD.replace("lr: [0.1, 0.01]", "lr: [1e-5, 3E-2]")))
    assert {run.hyperparameters["lr"] for run in suite.runs if run.optimizer == "zo-sgd"} == {1e-5, 0.03}


def test_a_suite_may_mix_test_functions_and_tasks_and_peft_applies_to_the_tasks(shared_data):
    suite = load_suite(Path(__file__).parents[1] / "suites" / "zoo.yaml")
    peft = {run.problem: run.peft for run in suite.runs}
    assert peft["sst2"] == "head" and {peft[p] for p in ("a", "b", "c", "d", "beale", "rosenbrock")} == {"none"}

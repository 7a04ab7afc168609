"""The language-model suites: the CI suite learns for real; the quickstart and paper suites validate."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from zobench.suite import load_suite

SUITES = Path(__file__).parents[1] / "suites"


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory, shared_data):
    out = tmp_path_factory.mktemp("ci")
    subprocess.run([sys.executable, "-m", "zobench", "run", str(SUITES / "ci.yaml"), "--out", str(out), "--quiet"],
                   check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return [json.loads(p.read_text()) for p in (out / "ci" / "runs").glob("*.json")]


def test_ci_suite_records_data_and_trainable_parameters(ci_run):
    assert len(ci_run) == 2
    for record in ci_run:
        assert record["status"] == "finished" and record["steps_done"] == 3000
        assert record["problem"]["split_sizes"] == {"train": 1000, "dev": 200, "test": 300}
        assert record["problem"]["trainable_parameters"] == 2 * 384 + 2  # the head only
        assert record["problem"]["data_source"].endswith("SST-2")
        assert 0.6 < record["initial"]["dev"]["accuracy"] < 0.8  # the zero-shot head is well above chance


def test_zo_adam_g_learns_beyond_zero_shot(ci_run):
    adam = next(r for r in ci_run if r["spec"]["optimizer"] == "zo-adam@g")
    assert adam["best_dev"]["value"] >= adam["initial"]["dev"]["accuracy"] + 0.02


@pytest.mark.parametrize("name, runs, model", [("quickstart", 12, "minilm-l6"), ("table2", 90, "roberta-large"),
                                               ("table3", 10, "facebook/opt-13b")])
def test_shipped_suites_validate_and_plan(name, runs, model, tmp_path):
    suite = load_suite(SUITES / f"{name}.yaml")
    assert len(suite.runs) == runs
    assert {run.model for run in suite.runs} == {model}
    result = subprocess.run([sys.executable, "-m", "zobench", "run", str(SUITES / f"{name}.yaml"), "--dry-run",
                             "--out", str(tmp_path)], check=True, capture_output=True, text=True)
    assert f"{runs} runs, {runs} to run" in result.stdout

"""The regression gate passes an unchanged suite and fails a degraded optimizer, with a readable table."""

import textwrap

import pytest

from zobench.cli import main

SUITE = """
name: gate
problems: [a, c]
optimizers:
  - {name: zo-sgd, label: MeZO, lr: LR}
  - {name: zo-adam@g, label: Adam g, lr: 0.01}
seeds: [0, 1]
budget: {steps: 300, eval_every: 10}
targets: [0.5]
"""


def suite(tmp_path, lr):
    path = tmp_path / f"gate-{lr}.yaml"
    path.write_text(textwrap.dedent(SUITE.replace("LR", str(lr))))
    return str(path)


@pytest.fixture
def baseline(tmp_path):
    path = tmp_path / "baseline.json"
    assert main(["check", suite(tmp_path, 0.01), "--baseline", str(path), "--update-baseline", "--quiet"]) == 0
    return str(path)


def test_unchanged_suite_passes(tmp_path, baseline, capsys):
    assert main(["check", suite(tmp_path, 0.01), "--baseline", baseline, "--quiet"]) == 0
    output = capsys.readouterr().out
    assert "| MeZO on a | test distance |" in output and "FAIL" not in output
    assert "no regression against" in output


def test_degraded_optimizer_fails_the_gate(tmp_path, baseline, capsys):
    assert main(["check", suite(tmp_path, 0.0001), "--baseline", baseline, "--quiet"]) == 1  # MeZO, 100x slower
    output = capsys.readouterr().out
    failing = [line for line in output.splitlines() if line.endswith("FAIL |")]
    assert failing and all(line.startswith("| MeZO on ") for line in failing)
    assert any("| test distance |" in line for line in failing)
    assert "regression(s) against" in output


def test_missing_baseline_says_how_to_make_one(tmp_path, capsys):
    assert main(["check", suite(tmp_path, 0.01), "--baseline", str(tmp_path / "none.json"), "--quiet"]) == 2
    assert "create it with --update-baseline" in capsys.readouterr().err

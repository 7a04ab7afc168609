"""The shipped figure2 suite end to end: runs, records, tables, figures; a rerun skips finished runs."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

SUITE = Path(__file__).parents[1] / "suites" / "figure2.yaml"
pytestmark = pytest.mark.slow  # the whole suite end to end, once per CI


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    # MKL's code paths differ by processor, and ZO-AdaMU's trajectories grow their last bits into other
    # tables; COMPATIBLE gives the same MKL results on every x86 CPU, as the committed tables were taken
    environment = {**os.environ, "MKL_CBWR": "COMPATIBLE"}
    result = subprocess.run([sys.executable, "-m", "zobench", "run", str(SUITE), "--out", str(out)],
                            capture_output=True, text=True, check=True, env=environment)
    return out / "figure2", result.stdout


def test_every_run_has_a_record_and_a_log(report):
    directory, stdout = report
    records = [json.loads(p.read_text()) for p in (directory / "runs").glob("*.json")]
    assert len(records) == 6 * 4 * 3
    for record in records:
        assert record["status"] in ("finished", "diverged")
        log = (directory / "logs" / f"{record['key']}.jsonl").read_text().splitlines()
        assert json.loads(log[-1])["step"] == record["steps_done"]
        if record["status"] == "finished":
            assert record["forward_passes"] == record["spec"]["steps"] * (  # a backward counts as two
                2 if record["spec"]["optimizer"].startswith("zo") else 3)
    assert f"report: {directory / 'index.md'}" in stdout


def test_trajectory_figure_is_a_2x3_png(report):
    directory, _ = report
    image = matplotlib.image.imread(directory / "trajectories.png")
    height, width = image.shape[:2]
    assert width > height > 500  # 2 rows x 3 columns of panels
    assert matplotlib.image.imread(directory / "anneal_schedule.png").shape[1] > 500


def test_tables_have_every_problem_and_optimizer(report):
    directory, _ = report
    markdown = (directory / "final_metric.md").read_text().splitlines()
    header = [cell.strip() for cell in markdown[2].strip("|").split("|")]
    assert header == ["problem", "Adam", "AdaMax", "MeZO", "ZO-AdaMU"]
    assert [line.split("|")[1].strip() for line in markdown[4:]] == ["a", "b", "c", "d", "beale", "rosenbrock"]
    rows = list(csv.DictReader(open(directory / "final_metric.csv")))
    assert len(rows) == 6 * 4 * 3
    assert "\\begin{tabular}" in (directory / "final_metric.tex").read_text()
    index = (directory / "index.md").read_text()
    for name in ("final_metric.md", "selected_test.md", "steps_to_target_0.md", "steps_to_target_1.md", "trajectories.png",
                 "ecdf_forward_passes.png", "curves_step.png", "curves_test_step.png", "curves_forward_passes.png", "peak_memory.png",
                 "step_time.png", "anneal_schedule.png"):
        assert f"({name})" in index and (directory / name).is_file()


def test_rerun_skips_finished_runs(report):
    directory, _ = report
    before = {p.name: p.read_text() for p in (directory / "runs").glob("*.json")}
    result = subprocess.run([sys.executable, "-m", "zobench", "run", str(SUITE), "--out", str(directory.parent)],
                            capture_output=True, text=True, check=True)
    assert "figure2: 72 runs, 72 recorded before, 0 to run" in result.stdout
    assert before == {p.name: p.read_text() for p in (directory / "runs").glob("*.json")}


def test_the_figure2_results_page_shows_what_the_suite_produces(report):
    """CI's check that the published Figure 2 tables are this code's (the suite runs once, here)."""
    directory, _ = report
    result = subprocess.run([sys.executable, "-m", "zobench", "pages", "--root", str(Path(__file__).parents[1]),
                             "--check", "--from", str(directory.parent)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "and the reports in" in result.stdout


def test_list_prints_every_optimizer_with_metadata():
    result = subprocess.run([sys.executable, "-m", "zobench", "list"], capture_output=True, text=True, check=True)
    lines = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}
    assert lines["zo-adamu"][1:4] == ["zo", "2", "1"]
    assert lines["zo-adamm@g"][1:4] == ["zo", "2", "3"]
    assert lines["fo-adam"][1:4] == ["fo", "3", "2"]  # forward + backward (two forwards' work)

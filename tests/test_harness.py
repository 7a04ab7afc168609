"""The harness: resume after a crash, reproducible records, divergence, executors, plans, loading."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from conftest import registered, without_measurements

from zobench import harness, optimizers, results
from zobench.problems.test_functions import TEST_FUNCTIONS
from zobench.executors import InlineExecutor, local_pool, make_executor
from zobench.report import write_report
from zobench.runner import run
from zobench.store import ResultStore
from zobench.suite import load_suite



def comparable(record: dict) -> dict:
    return without_measurements(record, also=("resumed_at_step",))


def suite_file(tmp_path, text, name="suite.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


SMALL = """
name: small
problems: [a, c]
optimizers:
  - name: zo-adamu
    lr: 0.01
    T1: 20
  - name: zo-adam@g
    lr: 0.01
  - name: fo-adam
    lr: 0.01
seeds: [0, 1]
budget: {steps: 150, eval_every: 10}
targets: [1.0, 0.1]
"""


def run_suite(tmp_path, text, out, executor=None):
    suite = load_suite(suite_file(tmp_path, text))
    store = ResultStore(out / suite.name)
    failures = harness.execute(suite, store, executor=executor, quiet=True)
    return suite, store, failures


def test_same_suite_twice_gives_identical_records_apart_from_measurements(tmp_path):
    suite, first, _ = run_suite(tmp_path, SMALL, tmp_path / "one")
    _, second, _ = run_suite(tmp_path, SMALL, tmp_path / "two")
    assert len(first.keys()) == len(suite.runs) == 12
    for key in first.keys():
        assert comparable(first.record(key)) == comparable(second.record(key))
        assert first.read_log(key)[-1]["x"] == second.read_log(key)[-1]["x"]


class Crash(Exception):
    pass


def crash_at(step_to_crash):
    def progress(step):
        if step == step_to_crash:
            raise Crash
    return progress


def untimed(store, key):
    return [{k: v for k, v in entry.items() if k != "seconds"} for entry in store.read_log(key)]


def one_run(tmp_path, name, lr=0.01):
    anneal = "T1: 20" if "T1" in optimizers.get(name).hyperparameters() else ""
    text = f"""
    name: resume
    problems: [c]
    optimizers:
      - name: {name}
        lr: {lr}
        {anneal}
    seeds: [0]
    budget: {{steps: 150, eval_every: 10}}
    """
    return load_suite(suite_file(tmp_path, text)).runs[0]


@pytest.mark.parametrize("name", registered(replayable=True))
def test_every_replayable_optimizer_resumes_from_its_step_records_bitwise(tmp_path, name):
    spec = one_run(tmp_path, name)
    whole = run(spec, ResultStore(tmp_path / "whole"))
    interrupted = ResultStore(tmp_path / "interrupted")
    with pytest.raises(Crash):
        run(spec, interrupted, progress=crash_at(60))
    assert not interrupted.has(spec.key) and len(interrupted.read_log(spec.key)) == 61
    resumed = run(spec, interrupted)
    assert resumed["resumed_at_step"] == 60
    assert comparable(resumed) == comparable(whole)  # final point, curves' summary, targets: bitwise equal
    # every step's loss, point and record (seed and evaluations)
    assert untimed(interrupted, spec.key) == untimed(ResultStore(tmp_path / "whole"), spec.key)


def test_conservative_steps_resume_where_they_were_wherever_they_branched(tmp_path):
    """ZO-SGD-Cons keeps θ, θ-ηĝz or θ+ηĝz; a resume that replayed only (seed, ĝ) took θ-ηĝz for every
    step and ended elsewhere (x = -1.3048184 instead of -1.3048155 on function c). The step record holds
    the evaluations the choice was made from, so the replayed step takes the same branch."""
    spec = one_run(tmp_path, "zo-sgd-cons", lr=0.1)
    run(spec, ResultStore(tmp_path / "whole"))
    log = ResultStore(tmp_path / "whole").read_log(spec.key)

    def descended(entry):  # the update took θ-ηĝz: ĝ > 0 moves against z, as the descent trial did
        current, plus, minus, descent, ascent = entry["record"]["evaluations"]
        return descent <= current and descent < ascent

    kept = [entry["step"] for entry in log[1:] if not descended(entry)]
    assert kept, "the test needs a step that did not take the descent trial"
    interrupted = ResultStore(tmp_path / "interrupted")
    with pytest.raises(Crash):
        run(spec, interrupted, progress=crash_at(kept[-1] + 1))  # that step is replayed on resume
    run(spec, interrupted)
    assert untimed(interrupted, spec.key) == untimed(ResultStore(tmp_path / "whole"), spec.key)

    # the record decides the branch: a record whose trial losses say otherwise replays elsewhere
    optimizer = optimizers.create("zo-sgd-cons", [torch.nn.Parameter(torch.tensor([-2.5, 2.0]))], lr=0.1)
    first = optimizers.create("zo-sgd-cons", [point := torch.nn.Parameter(torch.tensor([-2.5, 2.0]))], lr=0.1)
    first.step(lambda: TEST_FUNCTIONS["c"].loss(point))
    record = first.last_record
    flipped = {**record, "evaluations": record["evaluations"][:3] + [1e9, 1e9]}  # both trials worse: keep θ
    optimizer.replay(flipped)
    kept_point = optimizer.param_groups[0]["params"][0]
    torch.testing.assert_close(kept_point.detach(), torch.tensor([-2.5, 2.0]), rtol=0, atol=1e-6)
    assert not torch.equal(point.detach(), kept_point.detach())


@pytest.mark.slow
def test_kill_9_mid_suite_then_rerun(tmp_path):
    text = SMALL.replace("problems: [a, c]", "problems: [a]").replace("steps: 150, eval_every: 10",
                                                                       "steps: 2500, eval_every: 100")
    path = suite_file(tmp_path, text)
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "zobench", "run", str(path), "--out", str(out), "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = ResultStore(out / "small")
    deadline = time.time() + 600  # generous: a loaded machine is slow, and the loop ends as soon as it can
    while time.time() < deadline:  # wait for one finished run and the next one well under way
        keys = store.keys()
        logs = [p for p in store.logs.glob("*.jsonl") if p.stem not in keys] if store.logs.exists() else []
        if keys and any(len(p.read_text().splitlines()) > 300 for p in logs):
            break
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished = {key: store.record(key) for key in store.keys()}
    assert finished, "the suite was killed before any run finished"

    subprocess.run(command, check=True, capture_output=True)
    reference = ResultStore(tmp_path / "reference" / "small")
    subprocess.run(command[:-3] + ["--out", str(tmp_path / "reference"), "--quiet"], check=True, capture_output=True)
    assert store.keys() == reference.keys() and len(store.keys()) == 6
    for key, record in finished.items():
        assert store.record(key) == record  # finished runs were not repeated
    resumed = [store.record(k) for k in store.keys() if store.record(k)["resumed_at_step"] > 0]
    assert len(resumed) == 1 and resumed[0]["spec"]["optimizer"].startswith("zo-")
    for key in store.keys():
        assert comparable(store.record(key)) == comparable(reference.record(key))
        for line in (store.logs / f"{key}.jsonl").read_text().splitlines():
            json.loads(line)  # no corrupted line survives


def test_divergence_is_recorded_and_the_suite_goes_on(tmp_path):
    text = """
    name: diverging
    problems: [rosenbrock]
    optimizers:
      - {name: fo-sgd, lr: [0.1, 0.0001]}
      - {name: zo-sgd, lr: 1.0, eps: 1.0}
    budget: {steps: 100}
    """
    suite, store, failures = run_suite(tmp_path, text, tmp_path)
    by_name = {(r["spec"]["optimizer"], r["spec"]["hyperparameters"]["lr"]): r for r in map(store.record, store.keys())}
    assert not failures
    for diverging in (("fo-sgd", 0.1), ("zo-sgd", 1.0)):  # an inf loss, then an overflowing ZO estimate
        assert by_name[diverging]["status"] == "diverged" and by_name[diverging]["steps_done"] < 100
        assert store.read_log(by_name[diverging]["key"])[-1]["diverged"] is True
    assert by_name[("fo-sgd", 0.0001)]["status"] == "finished"
    assert by_name[("fo-sgd", 0.0001)]["steps_done"] == 100


def test_a_run_that_raises_is_reported_and_the_others_are_recorded(tmp_path, monkeypatch):
    suite = load_suite(suite_file(tmp_path, SMALL))
    broken = suite.runs[3]
    real_run = harness.run

    def flaky(spec, store, progress=None, wait=True, **options):
        if spec.key == broken.key:
            raise RuntimeError("out of memory\nlong traceback")
        return real_run(spec, store, progress, wait, **options)

    monkeypatch.setattr(harness, "run", flaky)
    store = ResultStore(tmp_path / "out")
    failures = harness.execute(suite, store, quiet=True)
    assert failures == [f"run {broken.key} ({broken.label} on {broken.problem}, seed {broken.seed}) "
                        "failed: out of memory"]
    assert len(store.keys()) == len(suite.runs) - 1


@pytest.mark.parametrize("kind", ["local", "slurm-debug", "slurm-local"])
def test_other_executors_give_the_inline_records(tmp_path, kind):
    """The slurm kinds send the suite's runs as one batch (a job array on Slurm; separate processes on
    submitit's local cluster, two at a time)."""
    text = SMALL.replace("seeds: [0, 1]", "seeds: [0]").replace("problems: [a, c]", "problems: [c]")
    _, inline, _ = run_suite(tmp_path, text, tmp_path / "inline")
    executor = local_pool(2) if kind == "local" else make_executor("slurm", folder=tmp_path / "slurm",
                                                                       cluster=kind.split("-")[1], parallel=2)
    _, other, failures = run_suite(tmp_path, text, tmp_path / kind, executor=executor)
    assert not failures and other.keys() == inline.keys()
    for key in inline.keys():
        assert comparable(other.record(key)) == comparable(inline.record(key))


def test_dry_run_plans_forward_passes_and_filters(tmp_path):
    suite = load_suite(suite_file(tmp_path, SMALL))
    store = ResultStore(tmp_path / "out")
    rows = harness.plan(harness.select(suite.runs, "optimizer=zo-adamu,seed=1"), store)
    assert [(r["problem"], r["state"], r["forward_passes"]) for r in rows] == [("a", "pending", 300),
                                                                               ("c", "pending", 300)]
    assert [r.problem for r in harness.select(suite.runs, "fo-adam")] == ["a", "a", "c", "c"]
    assert len(harness.select(suite.runs, suite.runs[5].key[:8])) == 1
    with pytest.raises(harness.FilterError, match="unknown field 'optimiser'"):
        harness.select(suite.runs, "optimiser=zo-sgd")
    result = subprocess.run([sys.executable, "-m", "zobench", "run", str(suite.source), "--out", str(tmp_path),
                             "--dry-run", "--only", "problem=c"], capture_output=True, text=True, check=True)
    # two seeds × (zo-adamu 2 + zo-adam@g 2 + fo-adam 3, a backward counting as two) × 150 steps
    assert "6 runs, 6 to run, 2,100 training forward passes to go" in result.stdout
    assert not (tmp_path / "small").exists()


def test_results_load_into_pandas(tmp_path):
    suite, store, _ = run_suite(tmp_path, SMALL, tmp_path)
    frame = results.load(store.root)
    assert len(frame) == 12
    assert set(frame["label"]) == {"zo-adamu", "zo-adam@g", "fo-adam"}
    for column in ("final_dev", "selected_test", "forward_passes", "seconds_per_step", "peak_train_rss_bytes",
                   "steps_to_0.1", "hp.lr"):
        assert column in frame.columns
    assert (frame.loc[frame.label == "fo-adam", "forward_passes"] == 3 * 150).all()  # a backward counts as two
    assert (frame["initial_test"] == frame["initial_dev"]).all()  # test functions: dev and test are one
    curves = results.load_curves(store.root)
    assert len(curves) == 12 * 151
    evaluated = curves[curves["dev"].notna()]
    assert evaluated["test"].notna().all() and curves[curves["dev"].isna()]["test"].isna().all()


def test_table3_style_layout(tmp_path):
    text = """
    name: layout
    problems: [c]
    optimizers:
      - {name: zo-adam@delta, lr: 0.01}
      - {name: zo-adam@g, lr: 0.01}
      - {name: zo-adamax@delta, lr: 0.01}
    budget: {steps: 20}
    report:
      tables:
        - {name: table3, quantity: final, rows: problem, columns: [schedule, placement]}
    """
    suite, store, _ = run_suite(tmp_path, text, tmp_path)
    write_report(suite, store)
    header = (store.root / "table3.md").read_text().splitlines()[2]
    assert header == "| problem | adam δ | adam g | adamax δ |"
    assert not (store.root / "anneal_schedule.png").exists()  # Figure 1 only where ZO-AdaMU runs


PHASES = """
import json, torch
from zobench.measure import PhaseMeter
meter = PhaseMeter(torch.device("cpu"))
with meter.phase("idle"):
    pass
with meter.phase("allocate"):
    block = torch.ones(64 * 2 ** 20 // 4)  # 64 MiB, touched
    del block
with meter.phase("after"):
    pass
print(json.dumps({"scope": meter.memory_scope, "peaks": meter.peaks, "phases": sorted(meter.seconds)}))
"""


def test_phase_meter_sees_an_allocation_and_resets_between_phases():
    # a fresh process: in this one, earlier tests may have left freed memory resident to allocate from
    result = json.loads(subprocess.run([sys.executable, "-c", PHASES], check=True, capture_output=True,
                                       text=True).stdout)
    peaks = {phase: values["rss_bytes"] for phase, values in result["peaks"].items()}
    assert result["scope"] == "phase" and result["phases"] == ["after", "allocate", "idle"]
    assert peaks["allocate"] - peaks["idle"] > 60 * 2 ** 20
    assert peaks["after"] < peaks["allocate"] - 60 * 2 ** 20


def test_inline_executor_is_a_futures_executor():
    future = InlineExecutor().submit(divmod, 7, 2)
    assert future.done() and future.result() == (3, 1)
    failed = InlineExecutor().submit(divmod, 1, 0)
    assert isinstance(failed.exception(), ZeroDivisionError)


def test_gap_targets_are_resolved_against_the_best_run(tmp_path):
    text = SMALL.replace("targets: [1.0, 0.1]", "targets: [0.1, 50%, 100%]")
    suite, store, _ = run_suite(tmp_path, text, tmp_path)
    assert suite.gap_targets == (0.5, 1.0)
    write_report(suite, store)
    captions = [(store.root / f"steps_to_target_{i}.md").read_text().splitlines()[0] for i in range(3)]
    assert captions[1].startswith("Steps to reach 50% of the gap from the initial to the best distance")
    # on each problem, exactly the runs that attained the best distance reach 100 % of the gap
    for problem in ("a", "c"):
        finals = {k: store.record(k) for k in store.keys() if store.record(k)["spec"]["problem"] == problem}
        best = min(min(e["dev"]["distance"] for e in store.read_log(k) if "dev" in e) for k in finals)
        row = next(line for line in (store.root / "steps_to_target_2.md").read_text().splitlines()
                   if line.startswith(f"| {problem} |"))
        reached = sum(int(cell.split("(")[1].split("/")[0]) for cell in row.split("|")[2:-1])
        owners = sum(any("dev" in e and e["dev"]["distance"] == best for e in store.read_log(k)) for k in finals)
        assert reached == owners >= 1


def test_zero_steps_records_the_untrained_evaluation(tmp_path):
    text = SMALL.replace("steps: 150, eval_every: 10", "steps: 0").replace("T1: 20", "T1: 20\n    T3: 100")
    suite, store, failures = run_suite(tmp_path, text, tmp_path)
    assert not failures and len(store.keys()) == 12
    for key in store.keys():
        record = store.record(key)
        assert record["steps_done"] == 0 and record["forward_passes"] == 0
        assert record["final"]["dev"] == record["initial"]["dev"]


def test_a_wall_clock_budget_stops_the_run_at_the_step_that_spends_it(tmp_path):
    text = """
    name: timed
    problems: [c]
    optimizers: [{name: zo-sgd, lr: 0.001}]
    budget: {steps: 1000000, seconds: 0.3, eval_every: 1000}
    """
    suite, store, failures = run_suite(tmp_path, text, tmp_path)
    [key] = store.keys()
    record, log = store.record(key), store.read_log(key)
    seconds = [entry["seconds"] for entry in log[1:]]
    assert not failures and 0 < record["steps_done"] < 1_000_000 and record["steps_done"] == len(seconds)
    assert sum(seconds[:-1]) < 0.3 <= sum(seconds)  # the last step is the one that spent the budget
    assert "dev" in log[-1]  # and it is evaluated
    untimed = load_suite(suite_file(tmp_path, text.replace(", seconds: 0.3", ""), "untimed.yaml")).runs[0]
    assert suite.runs[0].seconds_budget == 0.3 and untimed.seconds_budget is None
    assert untimed.key != suite.runs[0].key

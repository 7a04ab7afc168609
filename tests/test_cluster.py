"""Slurm jobs through submitit's local cluster: a preempted job is requeued and its run resumes."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from submitit.local.local import LocalJobEnvironment

from conftest import interruptible_suite
from zobench.executors import make_executor
from zobench.harness import run_in_worker
from zobench.runner import run
from zobench.store import ResultStore
from zobench.suite import load_suite

SUITE = interruptible_suite("requeue")


@pytest.mark.slow
def test_a_preempted_job_is_requeued_and_its_run_resumes(tmp_path):
    (tmp_path / "requeue.yaml").write_text(SUITE)
    (spec,) = load_suite(tmp_path / "requeue.yaml").runs
    executor = make_executor("slurm", folder=tmp_path / "slurm", cluster="local")
    future = executor.submit(run_in_worker, spec, str(tmp_path / "cluster"))
    log = tmp_path / "cluster" / "logs" / f"{spec.key}.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.is_file() and len(log.read_text().splitlines()) > 50):
        time.sleep(0.2)
    # the preemption signal Slurm sends a job's task before it requeues it, sent here to the task that
    # submitit's local controller started (submitit's own _interrupt reaches only the controller)
    controller = future.job._process.pid
    (task,) = Path(f"/proc/{controller}/task/{controller}/children").read_text().split()
    os.kill(int(task), LocalJobEnvironment._usr_sig())
    record = future.result(timeout=300)
    assert 50 <= record["resumed_at_step"] < 400 and record["steps_done"] == 400

    # uninterrupted, in this process: the job had the same default threads, so the same reductions
    uninterrupted = run(spec, ResultStore(tmp_path / "inline"))
    assert record["final"] == uninterrupted["final"]
    assert json.loads(log.read_text().splitlines()[-1])["step"] == 400


TUNED = """name: shared
problems: [quadratic-d200000-r8]
optimizers:
  - {name: zo-sgd, label: MeZO}
seeds: [0]
budget: {steps: 400, eval_every: 100}
targets: [0.1]
tune: {storage: journal, sampler: grid, trials: 4, space: {lr: [0.001, 0.003, 0.01, 0.03]}}
"""


@pytest.mark.slow
def test_two_processes_tune_one_study_through_a_journal_file(tmp_path):
    """Two `zobench run` processes on one results folder: each asks the journal for its own trials,
    every trial runs once, and the final run takes the best dev value of the trials' records."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    (tmp_path / "shared.yaml").write_text(TUNED)
    command = [sys.executable, "-m", "zobench", "run", str(tmp_path / "shared.yaml"), "--out", str(tmp_path / "out"),
               "--quiet"]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs

    root = tmp_path / "out" / "shared"
    storage = JournalStorage(JournalFileBackend(str(root / "tuning.journal")))
    (summary,) = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 4
    assert sorted(t.params["lr"] for t in trials) == [0.001, 0.003, 0.01, 0.03]
    assert len({t.user_attrs["process"] for t in trials}) == 2  # both processes ran trials

    suite = load_suite(tmp_path / "shared.yaml")
    (study,) = suite.studies
    store = ResultStore(root)
    dev = {t.params["lr"]: store.record(study.trial_spec({"lr": t.params["lr"]}).key)["best_dev"]["value"]
           for t in trials}
    finals = [r for r in store.records() if r["spec"]["label"] == "MeZO"]
    assert [r["spec"]["hyperparameters"]["lr"] for r in finals] == [min(dev, key=dev.get)]  # suboptimality: lower
    assert len(store.records()) == 5  # four trials and the chosen one's run, each once

"""Identity that follows the code: revisions in run keys, committed fingerprints, provenance."""

import dataclasses
import functools
import json
import re
import textwrap

from zobench import harness
from zobench.optimizers import REGISTRY
from zobench.optimizers import fingerprint
from zobench.report import write_report
from zobench.store import ResultStore
from zobench.suite import load_suite

TWO = """
name: two
problems: [c, a]
optimizers:
  - {name: zo-sgd, lr: 0.01}
  - {name: zo-adam@g, lr: 0.01}
seeds: [0, 1]
budget: {steps: 3}
"""


def test_every_optimizer_fingerprint_matches_its_committed_revision():
    assert fingerprint.problems(fingerprint.current(), fingerprint.committed()) == []


def test_changed_maths_without_a_new_revision_is_caught_and_named():
    info = REGISTRY.get("zo-sgd")
    changed = dataclasses.replace(info, factory=functools.partial(info.factory, eps=2e-3))
    then = fingerprint.committed()
    now = {"zo-sgd": {"revision": 1, "digest": fingerprint.digest(changed)}}
    assert now["zo-sgd"]["digest"] != then["zo-sgd"]["digest"]
    [line] = [p for p in fingerprint.problems(now, then) if p.startswith("zo-sgd:")]
    assert "its steps changed but its revision is still 1; bump it (revision=2" in line
    bumped = {"zo-sgd": {"revision": 2, "digest": now["zo-sgd"]["digest"]}}
    assert "--write" in [p for p in fingerprint.problems(bumped, then) if p.startswith("zo-sgd:")][0]


def _run(path, out):
    suite = load_suite(path)
    store = ResultStore(out / suite.name)
    assert harness.execute(suite, store, quiet=True) == []
    return suite, store


def test_a_revision_bump_reruns_only_that_optimizers_runs(tmp_path, monkeypatch):
    path = tmp_path / "two.yaml"
    path.write_text(textwrap.dedent(TWO))
    suite, store = _run(path, tmp_path)
    before = {spec.key: (spec.optimizer, store._record_path(spec.key).read_bytes()) for spec in suite.runs}
    assert len(before) == 8

    info = REGISTRY.get("zo-sgd")
    monkeypatch.setitem(REGISTRY._entries, "zo-sgd", dataclasses.replace(info, revision=2))
    bumped = load_suite(path)
    pending = {row["key"] for row in harness.plan(list(bumped.runs), store) if row["state"] == "pending"}
    assert {spec.optimizer for spec in bumped.runs if spec.key in pending} == {"zo-sgd"}
    assert len(pending) == 4 and not pending & set(before)
    _run(path, tmp_path)

    after = {p.stem for p in store.runs.glob("*.json")}
    assert after == set(before) | pending  # old records kept (not set aside), four new ones
    assert not (store.root / "damaged").exists()
    for key, (_, text) in before.items():
        assert store._record_path(key).read_bytes() == text
    for key in pending:
        assert store.record(key)["spec"]["revisions"]["optimizer"] == 2


def test_records_carry_provenance_and_the_report_names_mixed_commits(tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text(textwrap.dedent(TWO))
    suite, store = _run(path, tmp_path)
    record = store.record(suite.runs[0].key)
    assert record["schema_version"] == 2
    environment = record["environment"]
    assert re.fullmatch(r"[0-9a-f]{40}", environment["git_commit"])  # tests run in a checkout
    assert isinstance(environment["git_dirty"], bool)
    assert environment["torch"] and environment["cpu"] and environment["device"] == "cpu"
    assert {"transformers", "peft", "datasets", "numpy"} <= set(environment)
    index = write_report(suite, store).read_text()
    assert f"Code: {environment['git_commit'][:12]} (8 runs" in index and "Warning" not in index

    other = store._record_path(suite.runs[-1].key)
    changed = json.loads(other.read_text())
    changed["environment"]["git_commit"] = "0" * 40
    other.write_text(json.dumps(changed))
    index = write_report(suite, ResultStore(store.root)).read_text()
    assert "000000000000 (1 run" in index and "Warning: these records come from 2 commits" in index

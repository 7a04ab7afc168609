"""Bad input: every malformed suite, task file or command line is refused with exit 2 and one line on
stderr naming the problem, before anything runs; nothing escapes --out, nothing hangs, nothing
already recorded is lost. Each case runs ``zobench run`` (not ``--dry-run``) in-process."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import without_measurements
from test_tuning import TUNED

from zobench import harness, tuning
from zobench.cli import main
from zobench.store import ResultStore
from zobench.suite import load_suite

BASE = {"name": "bad", "problems": ["c"], "optimizers": [{"name": "zo-sgd", "lr": 0.1}], "seeds": [0],
        "budget": {"steps": 4}, "targets": [0.1]}
TASK_BASE = {"name": "bad", "tasks": ["sst2"], "models": ["random:opt-125m"],
             "optimizers": [{"name": "zo-sgd", "lr": 1e-6}], "budget": {"steps": 4}}


def refused(capsys, argv, fragment) -> str:
    """Runs the command line; asserts exit 2 and one stderr line holding ``fragment``."""
    with pytest.raises(SystemExit) as stop:  # argparse exits; our own errors return 2
        raise SystemExit(main(argv))
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert stop.value.code == 2, lines
    assert len(lines) == 1 and lines[0].startswith("zobench: error: "), lines
    assert fragment in lines[0], lines[0]
    return lines[0]


def suite_file(tmp_path, document=None, text=None, name="suite.yaml"):
    path = tmp_path / name
    if text is not None:
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    else:
        path.write_text(yaml.safe_dump(document, allow_unicode=True))
    return path


def with_changes(base, **changes):
    document = json.loads(json.dumps(base))
    for key, value in changes.items():
        if value is None:
            document.pop(key)
        else:
            document[key] = value
    return document


def optimizer(**hyperparameters):
    return [{"name": "zo-adam@g", "lr": 0.1, **hyperparameters}]


SUITES = {  # case -> (suite document, the message fragment)
    "name escapes upwards": (with_changes(BASE, name="../escaped-by-name"), "cannot name a results folder"),
    "absolute name": (with_changes(BASE, name="/tmp/escaped"), "cannot name a results folder"),
    "empty name": (with_changes(BASE, name=""), "cannot name a results folder"),
    "name with a NUL": (with_changes(BASE, name="a\x00b"), "control character '\\x00'"),
    "table name is a path": (with_changes(BASE, report={"tables": [{"name": "../t", "quantity": "final",
                                                                    "rows": "problem", "columns": "label"}]}),
                             "a table's name is its file name"),
    "two tables, one name": (with_changes(BASE, report={"tables": [
        {"name": "t", "quantity": "final", "rows": "problem", "columns": "label"},
        {"name": "t", "quantity": "selected_test", "rows": "problem", "columns": "label"}]}), "names two tables"),
    "caption placeholder": (with_changes(BASE, report={"tables": [
        {"name": "t", "quantity": "final", "rows": "problem", "columns": "label", "caption": "{bogus}"}]}),
        "a caption may hold {metric} and {target} only"),
    "caption brace": (with_changes(BASE, report={"tables": [
        {"name": "t", "quantity": "final", "rows": "problem", "columns": "label", "caption": "a { b"}]}),
        "a caption may hold {metric} and {target} only"),
    "unknown statistic": (with_changes(BASE, report={"tables": [{"name": "t", "quantity": "final", "rows": "problem",
                                                                "columns": "label", "statistic": "median"}]}),
                          "statistic: 'median' is not one of iqm, mean-std"),
    "improvement over no column": (with_changes(BASE, report={"tables": [
        {"name": "t", "quantity": "final", "rows": "problem", "columns": "label", "improvement": {"over": "MeZO"}}]}),
        "improvement.over: 'MeZO' is not a column of the table; columns: zo-sgd"),
    "negative seed": (with_changes(BASE, seeds=[-1]), "seeds[0]: must be >= 0, got -1"),
    "no seeds": (with_changes(BASE, seeds=[]), "seeds: an empty list; give at least 1"),
    "repeated seed": (with_changes(BASE, seeds=[0, 0]), "seed 0 is listed twice"),
    "no optimizers": (with_changes(BASE, optimizers=[]), "optimizers: an empty list; give at least 1"),
    "infinite lr": (with_changes(BASE, optimizers=[{"name": "zo-sgd", "lr": float("inf")}]), "finite number"),
    "infinite eps": (with_changes(BASE, optimizers=[{"name": "zo-sgd", "lr": 0.1, "eps": float("inf")}]),
                     "finite number"),
    "string for a bool": (with_changes(BASE, optimizers=[{"name": "zo-sgd", "lr": 0.1, "fused": "no"}]),
                          "fused: expected true or false, got 'no'"),
    "same label twice": (with_changes(BASE, optimizers=[{"name": "zo-sgd", "lr": 0.1, "label": "X"},
                                                        {"name": "zo-sgd", "lr": 0.2, "label": "X"}]),
                         "'X' also labels optimizers[0]"),
    "one label on a grid": (with_changes(BASE, optimizers=[{"name": "zo-sgd", "lr": [0.1, 0.2], "label": "X"}]),
                            "one label for 2 configurations"),
    "same entry twice": (with_changes(BASE, optimizers=[{"name": "zo-sgd", "lr": 0.1},
                                                        {"name": "zo-sgd", "lr": 0.1, "label": "again"}]),
                         "gives the same runs as optimizers[0]"),
    "negative target": (with_changes(BASE, targets=[-0.5]), "can never be reached: a distance is >= 0"),
    "accuracy above 1": (with_changes(TASK_BASE, targets=[1.5]), "task metrics (accuracy, F1, EM) lie in [0, 1]"),
    "negative num_train": (with_changes(TASK_BASE, data={"num_train": -5}), "data.num_train: must be >= 1"),
    "zero seconds": (with_changes(BASE, budget={"steps": 4, "seconds": 0}), "budget.seconds: must be > 0"),
    "zero max_length": (with_changes(TASK_BASE, data={"max_length": 0}), "data.max_length: must be >= 1"),
    "three betas": (with_changes(BASE, optimizers=optimizer(betas=[0.9, 0.99, 0.999])), "betas must be two"),
    "one beta": (with_changes(BASE, optimizers=optimizer(betas=[0.9])), "betas must be two numbers in [0, 1)"),
    "beta above 1": (with_changes(BASE, optimizers=optimizer(betas=[1.5, 0.999])), "betas must be two numbers"),
    "negative sigma": (with_changes(BASE, optimizers=optimizer(sigma=-1)), "sigma must be a finite number > 0"),
    "control character": (with_changes(BASE, description="bell \x07 here"), "control character '\\x07'"),
    "control character in a label": (with_changes(BASE, optimizers=[{"name": "zo-sgd", "lr": 0.1,
                                                                      "label": "Me\x01ZO"}]), "control character"),
}


@pytest.mark.parametrize("case", SUITES)
def test_a_malformed_suite_is_refused_in_one_line(case, tmp_path, capsys):
    document, fragment = SUITES[case]
    refused(capsys, ["run", str(suite_file(tmp_path, document)), "--out", str(tmp_path / "out"), "--quiet"],
            fragment)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # nothing was written


TEXTS = {  # case -> (file contents, the message fragment)
    "duplicate top-level key": ("name: a\nname: b\nproblems: [c]\n", "line 2: key 'name' is given twice"),
    "binary": (bytes(range(256)) * 4, "not UTF-8 text"),
    "UTF-16": (yaml.safe_dump(BASE).encode("utf-16"), "not UTF-8 text"),
    "a NUL byte": (b"name: a\x00b\n", "holds a NUL byte"),
    "invalid YAML": ("name: [unclosed\n", "is not valid YAML"),
    "recursive alias": ("name: x\nseeds: &s [0, *s]\n", "recursive alias"),
    "deep nesting": ("name: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
}


@pytest.mark.parametrize("case", TEXTS)
def test_an_unreadable_suite_file_is_refused_in_one_line(case, tmp_path, capsys):
    text, fragment = TEXTS[case]
    refused(capsys, ["run", str(suite_file(tmp_path, text=text)), "--out", str(tmp_path / "out")], fragment)


def laughs(levels: int = 9) -> str:
    """A billion-laughs value: nine anchors, each ten aliases of the one before (10⁹ scalars expanded)."""
    parts = ["&l0 [" + ", ".join(["lol"] * 10) + "]"]
    parts += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "[" + ", ".join(parts) + "]"


@pytest.mark.parametrize("where", ["description", "seeds", "lr", "caption"])
def test_alias_bombs_are_refused_at_once(where, tmp_path, capsys):
    document = {k: v for k, v in BASE.items() if k not in ("seeds", "optimizers")}
    text = yaml.safe_dump(document)
    text += f"seeds: {laughs() if where == 'seeds' else '[0]'}\n"
    text += f"optimizers: [{{name: zo-sgd, lr: {laughs() if where == 'lr' else 0.1}}}]\n"
    if where == "description":
        text += f"description: {laughs()}\n"
    if where == "caption":
        text += f"report: {{tables: [{{name: t, quantity: final, rows: problem, columns: label, caption: {laughs()}}}]}}\n"
    started = time.perf_counter()
    refused(capsys, ["run", str(suite_file(tmp_path, text=text)), "--out", str(tmp_path / "out")],
            "expands to more than 100,000 values")
    assert time.perf_counter() - started < 10  # refused while counting, not after expanding 10⁹ nodes


def test_every_problem_of_a_suite_is_named_at_once_on_one_line(tmp_path, capsys):
    document = with_changes(BASE, seeds=[0, 1.5], dtype="fp32", budget={"steps": 4, "eval_evry": 2})
    line = refused(capsys, ["run", str(suite_file(tmp_path, document)), "--out", str(tmp_path / "out")],
                   "seeds[1]: expected an integer, got 1.5")
    assert "budget.eval_evry: unknown key; allowed: steps, eval_every, forward_passes, seconds" in line
    assert "dtype: 'fp32' is not one of float32, float64, bfloat16, float16" in line and "(3 problems)" in line


def test_an_oversized_suite_is_refused_at_once(tmp_path, capsys):
    text = yaml.safe_dump(BASE) + "problems: [" + ", ".join(["c"] * 3_500_000) + "]\n"  # 10 MiB
    refused(capsys, ["run", str(suite_file(tmp_path, text=text)), "--out", str(tmp_path / "out")],
            "more than the 1,048,576 a declaration may have")


@pytest.mark.parametrize("contents, fragment", [
    ("name: [broken\n", "is not valid YAML"),
    ("", "a task file is a mapping"),
    ("- a\n- b\n", "a task file is a mapping"),
    (bytes(range(256)), "not UTF-8 text"),
    ("name: t\ntemplate: '{sentence}'\nlabel: label\ncandidates: [' bad', ' good']\n",
     "candidates: expected a mapping, got [' bad', ' good']"),
    ("name: t\ntemplate: 5\nlabel: label\ncandidates: {0: ' bad'}\n", "template: expected a string, got 5"),
    ("name: t\ntemplate: x\nlabel: label\ncandidates: {0: ' bad'}\nlocal: {dir: D, train: {file: a.tsv, "
     "format: csv}}\n", "local.train.format: 'csv' is not one of glue_tsv, lmbff_csv"),
    ("name: t\ntemplat: x\n", "templat: unknown key; allowed: name, template, label"),
], ids=["malformed", "empty", "list", "binary", "candidates as a list", "template a number", "unknown format",
        "misspelt key"])
def test_a_malformed_task_file_is_refused_in_one_line(contents, fragment, tmp_path, capsys):
    task = tmp_path / "mytask.yaml"
    task.write_bytes(contents if isinstance(contents, bytes) else contents.encode())
    suite = suite_file(tmp_path, with_changes(TASK_BASE, tasks=["mytask.yaml"]))
    line = refused(capsys, ["run", str(suite), "--out", str(tmp_path / "out")], fragment)
    assert "tasks[0]" in line


@pytest.mark.parametrize("argv, fragment", [
    (["--workers", "-1"], "--workers: expected a whole number >= 1"),
    (["--workers", "0"], "--workers: expected a whole number >= 1"),
    (["--only", "nothing-like-this"], "matches none of the suite's 1 runs"),
    (["--only", "problem=zz"], "matches none"),
    (["--only", "seed"], "matches none"),
    (["--only", "seed=0,"], "'' is not field=value"),
    (["--only", "=0"], "'=0' is not field=value"),
    (["--only", "colour=red"], "unknown field 'colour'"),
])
def test_a_bad_command_line_is_refused_in_one_line(argv, fragment, tmp_path, capsys):
    refused(capsys, ["run", str(suite_file(tmp_path, BASE)), "--out", str(tmp_path / "out"), *argv], fragment)


def test_out_that_is_a_file_or_unwritable_is_refused(tmp_path, capsys, monkeypatch):
    suite = str(suite_file(tmp_path, BASE))
    occupied = tmp_path / "a-file"
    occupied.write_text("x")
    refused(capsys, ["run", suite, "--out", str(occupied)], "is a file, not a folder")

    def denied(*args, **kwargs):  # root ignores folder permissions, so the refusal is simulated
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tempfile.TemporaryFile", denied)
    refused(capsys, ["run", suite, "--out", str(tmp_path / "locked")], "cannot write there (Permission denied)")


def test_report_with_nothing_recorded_is_refused(tmp_path, capsys):
    refused(capsys, ["report", str(suite_file(tmp_path, BASE)), "--out", str(tmp_path / "out")],
            "no run of bad is recorded")


@pytest.mark.parametrize("contents, fragment", [
    ("{not json", "not a baseline JSON file"),
    ("[1, 2]", "a baseline is an object whose 'labels'"),
    ('{"labels": {"x": {"metric": "accuracy"}}}', "a baseline is an object whose 'labels'"),
], ids=["syntax", "a list", "missing fields"])
def test_check_with_a_malformed_baseline_is_refused(contents, fragment, tmp_path, capsys):
    baseline = tmp_path / "baseline.json"
    baseline.write_text(contents)
    refused(capsys, ["check", str(suite_file(tmp_path, BASE)), "--baseline", str(baseline), "--quiet"], fragment)


def test_a_refused_input_loses_nothing_already_recorded(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", str(suite_file(tmp_path, BASE)), "--out", str(out), "--quiet"]) == 0
    records = {path: path.read_bytes() for path in (out / "bad").rglob("*") if path.is_file()}
    assert any(path.parent.name == "runs" for path in records)
    capsys.readouterr()
    broken = with_changes(BASE, optimizers=[{"name": "zo-sgd", "lr": float("inf")}])
    refused(capsys, ["run", str(suite_file(tmp_path, broken)), "--out", str(out)], "finite number")
    refused(capsys, ["run", str(suite_file(tmp_path, text="name: bad\nname: bad\n")), "--out", str(out)],
            "given twice")
    assert {path: path.read_bytes() for path in (out / "bad").rglob("*") if path.is_file()} == records
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "suite.yaml"]  # nothing escaped --out


def test_a_results_folder_that_links_outside_out_is_refused(tmp_path, capsys):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "bad").symlink_to(elsewhere)  # the suite's folder would resolve outside --out
    refused(capsys, ["run", str(suite_file(tmp_path, BASE)), "--out", str(out)], "resolves outside")
    assert not any(elsewhere.iterdir())


def test_a_memory_study_name_is_a_safe_folder_name(tmp_path, capsys):
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({"name": "../up", "methods": [], "fit": {}, "validate": {}, "predict": {}}))
    refused(capsys, ["memory", str(study), "--out", str(tmp_path / "out")], "name: '../up' cannot name")


# ---- damaged results: named in one line, moved aside (never deleted), the run redone ----

TWO = with_changes(BASE, optimizers=[{"name": "zo-sgd", "lr": [0.1, 0.05]}])


def recorded(tmp_path, capsys, document=TWO):
    """A suite run to the end: its file, its results folder and each file's bytes."""
    path = suite_file(tmp_path, document)
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    return path, out / "bad", {p: p.read_bytes() for p in (out / "bad").rglob("*") if p.is_file()}


def comparable(record: dict) -> dict:
    return without_measurements(record)


DAMAGE = {  # case -> (what is done to the first run's files, the file the warning names)
    "truncated record": (lambda rec, log: rec.write_bytes(rec.read_bytes()[:40]), "runs/"),
    "empty record": (lambda rec, log: rec.write_bytes(b""), "runs/"),
    "garbage record": (lambda rec, log: rec.write_bytes(bytes(range(256))), "runs/"),
    "record is a list": (lambda rec, log: rec.write_text("[1, 2]"), "runs/"),
    "record lacks a field": (lambda rec, log: rec.write_text(json.dumps(
        {k: v for k, v in json.loads(rec.read_text()).items() if k != "final"})), "runs/"),
    "record holds another run": (None, "runs/"),  # the second run's record copied over the first's
    "log deleted": (lambda rec, log: log.unlink(), "its step log is missing"),
    "log is not objects": (lambda rec, log: log.write_text("[1]\n[2]\n"), "runs/"),
    "log with a bad first line": (lambda rec, log: log.write_text(
        "\n".join(["{not json"] + log.read_text().splitlines()[1:]) + "\n"), "runs/"),
    "log with a bad line inside": (lambda rec, log: log.write_text(
        "\n".join(log.read_text().splitlines()[:2] + ["{not json"] + log.read_text().splitlines()[2:]) + "\n"),
        "logs/"),
}


@pytest.mark.parametrize("command", ["run", "dry-run", "report"])
@pytest.mark.parametrize("case", DAMAGE)
def test_a_damaged_record_or_log_is_moved_aside_and_its_run_redone(case, command, tmp_path, capsys):
    path, folder, before = recorded(tmp_path, capsys)
    first, second = sorted((folder / "runs").glob("*.json"))
    log = folder / "logs" / f"{first.stem}.jsonl"
    original = json.loads(first.read_text())
    damage, named = DAMAGE[case]
    if damage is None:
        first.write_bytes(second.read_bytes())
    else:
        damage(first, log)
    damaged_bytes = {p: p.read_bytes() for p in (first, log) if p.exists()}
    argv = {"run": ["run", str(path), "--quiet"], "dry-run": ["run", str(path), "--dry-run"],
            "report": ["report", str(path)]}[command]
    assert main(argv + ["--out", str(folder.parent)]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("zobench: warning: ") and first.stem in err[0], err
    assert named in err[0] and "moved aside" in err[0]
    kept = {p.read_bytes() for p in (folder / "damaged").iterdir()}
    assert set(damaged_bytes.values()) <= kept  # nothing deleted: the damaged files are in damaged/
    for p, content in before.items():  # the other run's files are untouched
        if first.stem not in p.name and p.parent.name in ("runs", "logs"):
            assert p.read_bytes() == content
    if command == "run":  # redone, to the same results
        assert comparable(json.loads(first.read_text())) == comparable(original)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "suite.yaml"]  # nothing escaped --out


def test_a_target_met_at_step_0_is_reported_not_a_crash(tmp_path, capsys):
    """Two optimizers on c with a target every run meets before training: the profile divided by a
    cost of zero passes (a ZeroDivisionError after every run was recorded)."""
    document = with_changes(BASE, optimizers=[{"name": "zo-sgd", "lr": 0.1}, {"name": "zo-adam@g", "lr": 0.1}],
                            targets=[1000])
    assert main(["run", str(suite_file(tmp_path, document)), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert "| zo-sgd | 1.00 |" in (tmp_path / "out" / "bad" / "performance_profile.md").read_text()


def test_a_record_with_a_spec_not_its_own_is_refused(tmp_path, capsys):
    """A record edited to claim another spec than its key's: keys are checked against their contents."""
    path, folder, _ = recorded(tmp_path, capsys)
    first = sorted((folder / "runs").glob("*.json"))[0]
    record = json.loads(first.read_text())
    record["spec"]["hyperparameters"]["lr"] = 0.3
    first.write_text(json.dumps(record))
    assert main(["run", str(path), "--out", str(folder.parent), "--dry-run"]) == 0
    assert "its spec is that of run" in capsys.readouterr().err


def test_a_tuned_suite_reruns_nothing_and_its_choice_is_rebuilt_from_the_records(tmp_path, capsys):
    """The study is not stored: with the records in place, a rerun runs nothing and rewrites nothing
    (an emptied or deleted study database can no longer re-tune over good records)."""
    document = with_changes(BASE, optimizers=[{"name": "zo-sgd"}],
                            tune={"trials": 3, "seed": 50_000, "space": {"lr": {"log": [1e-3, 1e-1]}}})
    path, folder, before = recorded(tmp_path, capsys, document)  # a seed past 2**32 / 100,003 runs too
    assert len(list((folder / "runs").glob("*.json"))) == 3 + 1
    assert main(["run", str(path), "--out", str(folder.parent)]) == 0
    assert "1 runs, 1 recorded before, 0 to run" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in before if p.parent.name in ("runs", "logs")} == {
        p: c for p, c in before.items() if p.parent.name in ("runs", "logs")}


# ---- writes that would escape --out or destroy a file ----

TEMPLATE = "# R\n\n<!-- zobench:table bad/final_metric -->\n| old |\n<!-- /zobench:table -->\ntail\n"
TEMPLATES = {
    "marker reaches outside": (TEMPLATE.replace("bad/final_metric", "../secret/x"), "line 3: malformed marker"),
    "dot-dot as the suite": (TEMPLATE.replace("bad/final_metric", "../final_metric"), "line 3: '..' cannot name"),
    "name with dots": (TEMPLATE.replace("bad/final_metric", "a..b/final_metric"), "line 3: 'a..b' cannot name"),
    "nested": (TEMPLATE.replace("| old |", "<!-- zobench:table bad/final_metric -->\n| old |"),
               "line 4: a block opens inside the block opened at line 3"),
    "unclosed": (TEMPLATE.replace("<!-- /zobench:table -->\n", ""), "line 3: the block is never closed"),
    "stray close": (TEMPLATE + "<!-- /zobench:table -->\n", "line 7: <!-- /zobench:table --> closes no block"),
    "not UTF-8": (TEMPLATE.encode("utf-16"), "not UTF-8 text"),
}


@pytest.mark.parametrize("case", TEMPLATES)
def test_a_malformed_page_template_is_refused_and_nothing_is_written(case, tmp_path, capsys):
    _, folder, _ = recorded(tmp_path, capsys)
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "x.md").write_text("| secret |\n")
    text, fragment = TEMPLATES[case]
    (tmp_path / "suites").mkdir()
    template = tmp_path / "suites" / "bad.md"
    template.write_bytes(text if isinstance(text, bytes) else text.encode())
    for check in ([], ["--check"]):
        refused(capsys, ["pages", "--root", str(tmp_path), "--from", str(folder.parent), *check], fragment)
        assert template.read_bytes() == (text if isinstance(text, bytes) else text.encode())
        assert not (tmp_path / "docs").exists()


@pytest.mark.parametrize("where", ["runs", "logs", "a report file"])
def test_a_link_inside_the_results_folder_is_refused(where, tmp_path, capsys):
    path, folder, before = recorded(tmp_path, capsys)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if where == "a report file":
        (folder / "index.md").unlink()
        (folder / "index.md").symlink_to(elsewhere / "index.md")
    else:
        (folder / where).rename(elsewhere / where)
        (folder / where).symlink_to(elsewhere / where)
    for argv in (["run", str(path)], ["report", str(path)], ["run", str(path), "--dry-run"]):
        refused(capsys, argv + ["--out", str(folder.parent)], "is a link; results stay inside --out")
    assert not (elsewhere / "index.md").exists()


def test_a_memory_study_folder_that_is_a_link_is_refused(tmp_path, capsys):
    study = yaml.safe_load(open(Path(__file__).parents[1] / "suites" / "memory.yaml"))
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study, allow_unicode=True))
    (tmp_path / "out").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out" / "memory").symlink_to(tmp_path / "elsewhere")
    refused(capsys, ["memory", str(path), "--out", str(tmp_path / "out")], "resolves outside")
    assert not any((tmp_path / "elsewhere").iterdir())


# ---- memory studies, quadratics, tuning and data blocks that crashed, hung or passed silently ----

MEMORY_STUDIES = {  # case -> (key, value, the message fragment)
    "methods as names": ("methods", ["zo-sgd"], "methods[0]: expected a mapping, got 'zo-sgd'"),
    "methods as a string": ("methods", "zo-sgd", "methods: expected a list, got 'zo-sgd'"),
    "a method without label": ("methods", [{"optimizer": "zo-sgd"}], "methods[0]: missing required key 'label'"),
    "no shapes": ("fit", {"sequence_lengths": [256]}, "fit: missing required key 'shapes'"),
    "a shape missing fields": ("fit", {"shapes": [[128, 2]], "sequence_lengths": [256]},
                               "fit.shapes[0]: expected at least 4 items"),
    "validate as a list": ("validate", ["opt-125m"], "validate: expected a mapping, got ['opt-125m']"),
    "a negative hidden": ("fit", {"shapes": [[-128, 2, 4, 512]], "sequence_lengths": [256]},
                          "fit.shapes[0][0]: must be >= 1, got -128"),
    "a bad peft": ("methods", [{"label": "M", "optimizer": "zo-sgd", "peft": "bogus"}],
                   "methods[0].peft: 'bogus' is not one of none, lora, prefix, head, top"),
    "duplicate labels": ("methods", [{"label": "M", "optimizer": "zo-sgd"}, {"label": "M", "optimizer": "zo-sgd"}],
                         "methods[1].label: 'M' also labels methods[0]"),
    "a misspelt optimizer": ("methods", [{"label": "M", "optimizer": "zo-sgdd"}], "methods[0].optimizer: "),
}


@pytest.mark.parametrize("case", MEMORY_STUDIES)
def test_a_malformed_memory_study_is_refused_in_one_line(case, tmp_path, capsys):
    key, value, fragment = MEMORY_STUDIES[case]
    study = yaml.safe_load(open(Path(__file__).parents[1] / "suites" / "memory.yaml"))
    study[key] = value
    if key == "methods":
        study["predict"]["table5"] = [study["methods"][0]["label"]] if isinstance(value, list) and "label" in (
            value[0]) else study["predict"]["table5"]
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study, allow_unicode=True))
    refused(capsys, ["memory", str(path), "--out", str(tmp_path / "out")], fragment)
    assert not (tmp_path / "out").exists()


def test_a_corrupt_memory_record_is_moved_aside_and_remeasured(tmp_path, capsys):
    from zobench.memory.study import _record_problem
    from zobench.store import ResultStore

    store = ResultStore(tmp_path / "memory", check=_record_problem, logged=False)
    store.runs.mkdir(parents=True)
    (store.runs / "0123456789abcdef.json").write_text('{"point": {"method": "M"}, "key": "0123456789abcdef"}')
    assert not store.has("0123456789abcdef")
    assert "runs/0123456789abcdef.json" in capsys.readouterr().err
    assert [p.name.split(".")[0] for p in (tmp_path / "memory" / "damaged").iterdir()] == ["0123456789abcdef"]


SUITE_CASES = {  # case -> (changes to the suite, the message fragment)
    "d of 1e18": ({"problems": ["quadratic-d1e18-r8"]}, "d above 1e12 is beyond any machine's memory"),
    "d of 1e400": ({"problems": ["quadratic-d1e400-r8"]}, "d above 1e12 is beyond any machine's memory"),
    "d past the machine": ({"problems": ["quadratic-d1e11-r8"]}, "needs at least 1,490 GiB; this machine has"),
    "a trial count in the billions": ({"optimizers": [{"name": "zo-sgd"}], "tune": {
        "trials": 10 ** 9, "space": {"lr": {"log": [1e-3, 1e-1]}}}}, "tune.trials: must be <= 10000, got 1000000000"),
    "a tune seed past numpy's": ({"optimizers": [{"name": "zo-sgd"}], "tune": {
        "seed": 2 ** 32, "space": {"lr": [0.1, 0.01]}}}, "tune.seed: must be < 4294967296"),
    "a run seed past numpy's": ({"seeds": [2 ** 32]}, "seeds[0]: must be < 4294967296"),
    "a tuned name no optimizer has": ({"optimizers": [{"name": "zo-sgd"}], "tune": {
        "space": {"lr": [0.1, 0.01], "betas": [[0.9, 0.99]]}}}, "tune.space.betas: is a hyperparameter of none"),
    "duplicate grid points": ({"optimizers": [{"name": "zo-sgd"}], "tune": {
        "sampler": "grid", "trials": 2, "space": {"lr": [0.1, 0.1]}}}, "tune.space.lr[1]: 0.1 is listed twice"),
    "a trial of no steps": ({"optimizers": [{"name": "zo-sgd"}], "tune": {
        "budget": {"steps": 0}, "space": {"lr": [0.1, 0.01]}}}, "tune.budget.steps: a trial trains"),
    "a data block on test functions": ({"data": {"num_train": 5}}, "data: applies to tasks"),
    "an entry's data block on test functions": ({"optimizers": [{"name": "zo-sgd", "lr": 0.1,
                                                                  "data": {"num_train": 5}}]}, "data: applies to tasks"),
}


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
@pytest.mark.parametrize("case", SUITE_CASES)
def test_a_suite_that_crashed_hung_or_passed_is_refused_at_once(case, dry_run, tmp_path, capsys):
    changes, fragment = SUITE_CASES[case]
    started = time.perf_counter()
    refused(capsys, ["run", str(suite_file(tmp_path, with_changes(BASE, **changes))), "--out",
                     str(tmp_path / "out"), *(["--dry-run"] if dry_run else [])], fragment)
    assert time.perf_counter() - started < 30  # refused while reading, not after allocating or factoring
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# ---- tuning under faults: exactly-once across kills, concurrent runs and full disks ----

def tuned_file(tmp_path, text):
    path = tmp_path / "tuned.yaml"
    path.write_text(textwrap.dedent(text))
    return path


KILLED = TUNED.replace("problems: [c, a]", "problems: [c]").replace("steps: 40", "steps: 2000").replace(
    "  - {name: fo-adam, label: FO, lr: 0.01}\n", "")


def tuned_state(root):
    """What tuning leaves: every record's key and hyperparameters, and each study's choice."""
    store = ResultStore(root)
    suite = load_suite(root.parent.parent / "tuned.yaml")
    return ({r["key"]: r["spec"]["hyperparameters"] for r in store.records()},
            [tuning.progress(root, study) for study in suite.studies])


@pytest.mark.slow
def test_kills_at_random_instants_end_as_an_uninterrupted_study(tmp_path):
    """kill -9 anywhere (between proposing a trial and recording it included), four times over: the
    trials, their records and the choice are the uninterrupted study's. The first kill comes during
    start-up, the others each when a trial is a random number of steps in."""
    path = tuned_file(tmp_path, KILLED)
    command = [sys.executable, "-m", "zobench", "run", str(path), "--quiet"]
    subprocess.run(command + ["--out", str(tmp_path / "reference")], check=True, capture_output=True)
    reference = tuned_state(tmp_path / "reference" / "tuned")
    killed = tmp_path / "killed"
    store = ResultStore(killed / "tuned")
    random = np.random.default_rng(0)
    for round, lines in enumerate(random.integers(50, 1500, size=4)):
        process = subprocess.Popen(command + ["--out", str(killed)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        deadline = time.time() + 600  # generous: the loop ends as soon as the kill point is reached
        while round and process.poll() is None and time.time() < deadline:  # round 0: kill at start-up
            running = [p for p in store.logs.glob("*.jsonl") if not (store.runs / f"{p.stem}.json").exists()
                       ] if store.logs.exists() else []
            if any(len(p.read_bytes().splitlines()) > lines for p in running):
                break  # a trial is well under way
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    subprocess.run(command + ["--out", str(killed)], check=True, capture_output=True)
    assert tuned_state(killed / "tuned") == reference
    assert any(r["resumed_at_step"] > 0 for r in ResultStore(killed / "tuned").records())  # killed mid-trial
    assert len(reference[0]) == 2 * 4 + 2 * 2  # two studies of four trials, each choice over two seeds
    assert not (killed / "tuned" / "damaged").exists()


def alone_and_together(path, tmp_path) -> None:
    """Runs the suite at ``path`` alone into ``reference/``, then twice at once into ``together/``;
    both of those exit 0 and say nothing on stderr."""
    command = [sys.executable, "-m", "zobench", "run", str(path), "--quiet"]
    subprocess.run(command + ["--out", str(tmp_path / "reference")], check=True, capture_output=True)
    together = [subprocess.Popen(command + ["--out", str(tmp_path / "together")], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for process in together:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0 and not err.strip(), err


@pytest.mark.slow
def test_two_invocations_at_once_tune_each_trial_once(tmp_path):
    """Two `zobench run`s of one tuned suite started together share the trials through their claims,
    and end with the records and choice of one invocation alone."""
    alone_and_together(tuned_file(tmp_path, KILLED.replace("steps: 2000", "steps: 200")), tmp_path)
    assert tuned_state(tmp_path / "together" / "tuned") == tuned_state(tmp_path / "reference" / "tuned")
    records = ResultStore(tmp_path / "together" / "tuned").records()
    assert all(r["resumed_at_step"] == 0 for r in records)  # no run was started twice


def test_a_failing_trial_stops_its_study_and_a_rerun_goes_on_from_it(tmp_path, monkeypatch):
    """A trial whose run raises (a full disk, say) is not a trial result: its study stops there, in
    one line, and the next invocation runs that trial and goes on to the uninterrupted choice."""
    path = tuned_file(tmp_path, KILLED.replace("steps: 2000", "steps: 20"))
    suite = load_suite(path)
    real_run, calls = harness.run, []

    def disk_full_on_third(spec, store, progress=None, wait=True, **options):
        calls.append(spec.key)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real_run(spec, store, progress, wait, **options)

    monkeypatch.setattr(harness, "run", disk_full_on_third)
    store = ResultStore(tmp_path / "out" / "tuned")
    failures = harness.execute(suite, store, quiet=True)
    assert len(failures) == 1 and "No space left on device" in failures[0] and "the study stops there" in failures[0]
    monkeypatch.setattr(harness, "run", real_run)
    assert harness.execute(suite, store, quiet=True) == []
    reference = ResultStore(tmp_path / "reference" / "tuned")
    assert harness.execute(suite, reference, quiet=True) == []
    assert store.keys() == reference.keys()
    assert [tuning.progress(store.root, s) for s in suite.studies] == [
        tuning.progress(reference.root, s) for s in suite.studies]


@pytest.mark.slow
def test_two_invocations_of_an_untuned_suite_at_once_give_the_reference_records(tmp_path):
    document = with_changes(BASE, optimizers=[{"name": "zo-sgd", "lr": [0.1, 0.05, 0.02]}], seeds=[0, 1],
                            budget={"steps": 300})
    alone_and_together(suite_file(tmp_path, document), tmp_path)
    reference, both = ResultStore(tmp_path / "reference" / "bad"), ResultStore(tmp_path / "together" / "bad")
    assert both.keys() == reference.keys() and len(both.keys()) == 6
    for key in both.keys():
        assert comparable(both.record(key)) == comparable(reference.record(key))
        assert both.record(key)["resumed_at_step"] == 0

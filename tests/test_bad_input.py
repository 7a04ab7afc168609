"""Bad input: every malformed suite, task file or command line is refused with exit 2 and one line on
stderr naming the problem, before anything runs; nothing escapes --out, nothing hangs, nothing
already recorded is lost. Each case runs ``zobench run`` (not ``--dry-run``) in-process."""

import json
import time

import pytest
import yaml

from zobench.cli import main

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
    "negative seed": (with_changes(BASE, seeds=[-1]), "a seed is >= 0"),
    "no seeds": (with_changes(BASE, seeds=[]), "seeds: an empty list gives no runs"),
    "repeated seed": (with_changes(BASE, seeds=[0, 0]), "seed 0 is listed twice"),
    "no optimizers": (with_changes(BASE, optimizers=[]), "optimizers: an empty list gives no runs"),
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


def test_an_oversized_suite_is_refused_at_once(tmp_path, capsys):
    text = yaml.safe_dump(BASE) + "problems: [" + ", ".join(["c"] * 3_500_000) + "]\n"  # 10 MiB
    refused(capsys, ["run", str(suite_file(tmp_path, text=text)), "--out", str(tmp_path / "out")],
            "more than the 1,048,576 a declaration may have")


@pytest.mark.parametrize("contents, fragment", [
    ("name: [broken\n", "is not valid YAML"),
    ("", "a task file is a mapping"),
    ("- a\n- b\n", "a task file is a mapping"),
    (bytes(range(256)), "not UTF-8 text"),
], ids=["malformed", "empty", "list", "binary"])
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

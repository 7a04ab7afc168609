"""Bundles: a suite run in parts on two "machines", exported, merged, reports as if run on one."""

import json
import textwrap

import pandas as pd

from zobench.cli import main

from test_bad_input import refused

SUITE = """
name: parts
problems: [a, c]
optimizers:
  - {name: zo-sgd, label: MeZO, lr: 0.01}
  - {name: zo-adam@g, label: Adam g, lr: 0.01}
seeds: [0, 1]
budget: {steps: 6, eval_every: 2}
targets: [0.5, 50%]
"""


def test_two_machines_merge_into_the_report_of_one(tmp_path, capsys):
    suite = tmp_path / "parts.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    one, first, second, merged = (tmp_path / name for name in ("one", "first", "second", "merged"))
    assert main(["run", str(suite), "--out", str(one), "--quiet"]) == 0
    assert main(["run", str(suite), "--out", str(first), "--quiet", "--only", "problem=a"]) == 0
    assert main(["run", str(suite), "--out", str(second), "--quiet", "--only", "problem=c"]) == 0
    for folder in (first, second):
        assert main(["export", str(suite), "--out", str(folder), "--to", str(folder / "bundle.parquet")]) == 0
    bundle = pd.read_parquet(first / "bundle.parquet")
    assert len(bundle) == 4 and set(bundle["problem"]) == {"a"}
    assert bundle["env.git_commit"].str.fullmatch(r"[0-9a-f]{40}").all() and "env.cpu" in bundle
    capsys.readouterr()

    assert main(["merge", str(first / "bundle.parquet"), str(second / "bundle.parquet"), "--suite", str(suite),
                 "--out", str(merged)]) == 0
    assert "8 runs merged" in capsys.readouterr().out
    for name in ("final_metric.md", "steps_to_target_0.md", "steps_to_target_1.md"):  # 50%: the gap over both parts
        assert (merged / "parts" / name).read_text() == (one / "parts" / name).read_text()
    records = {p.name: json.loads(p.read_text()) for p in (merged / "parts" / "runs").glob("*.json")}
    assert records.keys() == {p.name for p in (one / "parts" / "runs").glob("*.json")}
    before = {p.name: p.read_bytes() for p in (merged / "parts" / "runs").glob("*.json")}
    assert main(["merge", str(first / "bundle.parquet"), "--suite", str(suite), "--out", str(merged)]) == 0
    out = capsys.readouterr().out
    assert "0 runs merged into" in out and "(4 already there)" in out
    assert before == {p.name: p.read_bytes() for p in (merged / "parts" / "runs").glob("*.json")}


def test_a_file_that_is_not_a_bundle_is_refused_in_one_line(tmp_path, capsys):
    suite = tmp_path / "parts.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    (tmp_path / "x.parquet").write_text("not parquet")
    refused(capsys, ["merge", str(tmp_path / "x.parquet"), "--suite", str(suite), "--out", str(tmp_path / "out")],
            "x.parquet: not a zobench bundle")
    refused(capsys, ["export", str(suite), "--out", str(tmp_path / "out"), "--to", str(tmp_path / "b.parquet")],
            "no run of parts is recorded")

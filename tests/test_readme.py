"""Result tables in the README are rewritten from the reports, and --check fails when one is stale."""

from zobench.cli import main

from test_bad_input import refused

README = """# Title

Final distance:

<!-- zobench:table demo/final_metric -->
| problem | A |
|---|---|
| a | 0.5 |
<!-- /zobench:table -->

Prose after.
"""


def report(out, body):
    (out / "demo").mkdir(parents=True, exist_ok=True)
    (out / "demo" / "final_metric.md").write_text(f"Final distance (mean ± std over seeds)\n\n{body}")


def test_readme_tables_are_rewritten_from_the_report_and_checked(tmp_path, capsys):
    out, readme = tmp_path / "reports", tmp_path / "README.md"
    readme.write_text(README)
    report(out, "| problem | A |\n|---|---|\n| a | 0.25 |\n")
    assert main(["readme", str(readme), "--out", str(out), "--check"]) == 1
    assert "demo/final_metric" in capsys.readouterr().err
    assert readme.read_text() == README  # --check changes nothing
    assert main(["readme", str(readme), "--out", str(out)]) == 0
    assert readme.read_text() == README.replace("| a | 0.5 |", "| a | 0.25 |")  # the caption stays in the prose
    assert main(["readme", str(readme), "--out", str(out), "--check"]) == 0


def test_a_table_without_its_report_names_the_suite_to_run(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(README)
    refused(capsys, ["readme", str(readme), "--out", str(tmp_path / "reports")], "zobench run suites/demo.yaml")

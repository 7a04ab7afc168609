"""Results pages: written from their templates and committed tables, taken from reports, checked."""

from pathlib import Path

from zobench.cli import main

from test_bad_input import refused

TEMPLATE = """# Demo

Final distance:

<!-- zobench:table demo/final_metric -->
<!-- /zobench:table -->

![Curves](demo/curves_step.png)
"""


def report(out, body):
    (out / "demo").mkdir(parents=True, exist_ok=True)
    (out / "demo" / "final_metric.md").write_text(f"Final distance (mean ± std over seeds)\n\n{body}")
    (out / "demo" / "curves_step.png").write_bytes(b"\x89PNG fake")


def test_pages_take_the_reports_write_the_pages_and_check_them(tmp_path, capsys):
    root, out = tmp_path / "checkout", tmp_path / "reports"
    (root / "suites").mkdir(parents=True)
    (root / "suites" / "demo.md").write_text(TEMPLATE)
    report(out, "| problem | A |\n|---|---|\n| a | 0.5 |\n")
    assert main(["pages", "--root", str(root), "--from", str(out)]) == 0
    page = (root / "docs" / "results" / "demo.md").read_text()
    assert "edit that file, not this one" in page.splitlines()[0]
    assert "<!-- zobench:table demo/final_metric -->\n| problem | A |\n|---|---|\n| a | 0.5 |\n<!-- /zobench:table -->" in page
    assert "Final distance (mean" not in page  # the caption stays in the template's prose
    assert (root / "docs" / "results" / "demo" / "curves_step.png").read_bytes() == b"\x89PNG fake"
    assert main(["pages", "--root", str(root), "--check", "--from", str(out)]) == 0

    report(out, "| problem | A |\n|---|---|\n| a | 0.25 |\n")  # a rerun moved a number
    assert main(["pages", "--root", str(root), "--check", "--from", str(out)]) == 1
    assert "docs/results/demo/final_metric.md (the report in" in capsys.readouterr().err
    assert main(["pages", "--root", str(root), "--check"]) == 0  # the committed page and tables still agree
    (root / "suites" / "demo.md").write_text(TEMPLATE.replace("Final distance", "Distance"))
    assert main(["pages", "--root", str(root), "--check"]) == 1  # the template moved, the page did not
    assert "docs/results/demo.md" in capsys.readouterr().err
    assert main(["pages", "--root", str(root), "--from", str(out)]) == 0
    assert "| a | 0.25 |" in (root / "docs" / "results" / "demo.md").read_text()


def test_a_table_never_taken_names_the_command_to_run(tmp_path, capsys):
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "demo.md").write_text(TEMPLATE)
    refused(capsys, ["pages", "--root", str(tmp_path)], "run the suite, then zobench pages --from reports")


def test_the_committed_results_pages_are_their_templates_and_tables():
    assert main(["pages", "--root", str(Path(__file__).parents[1]), "--check"]) == 0

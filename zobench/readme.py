"""Result tables in a markdown file (the README), rewritten from the reports, so numbers never go stale.

A table in the file is a block between two markers that name a suite and one of its report tables:

    <!-- zobench:table figure2/final_metric -->
    | problem | Adam | … |
    <!-- /zobench:table -->

``zobench readme README.md`` replaces every block's body by that table as the report at
``<out>/<suite>/<table>.md`` has it (its caption stays in the prose around the block);
``--check`` changes nothing and fails, naming the blocks, when a body differs from its report.
"""

from __future__ import annotations

import re
from pathlib import Path

BLOCK = re.compile(r"(<!-- zobench:table (?P<suite>[\w.-]+)/(?P<table>[\w.-]+) -->\n)(?P<body>.*?)"
                   r"(<!-- /zobench:table -->)", re.S)


class ReadmeError(ValueError):
    """A block whose report table does not exist; the message names the suite to run."""


def report_table(out: Path, suite: str, table: str) -> str:
    """The rows of ``<out>/<suite>/<table>.md`` without its caption."""
    path = out / suite / f"{table}.md"
    if not path.is_file():
        raise ReadmeError(f"no report table {path}; run it first: zobench run suites/{suite}.yaml --out {out}")
    lines = path.read_text().splitlines()
    return "\n".join(line for line in lines if line.startswith("|")) + "\n"


def rewrite(text: str, out: Path) -> tuple[str, list[str]]:
    """``text`` with every block's body replaced from the reports, and the blocks that changed."""
    changed = []

    def replace(match: re.Match) -> str:
        body = report_table(out, match["suite"], match["table"])
        if body != match["body"]:
            changed.append(f"{match['suite']}/{match['table']}")
        return match.group(1) + body + match.group(5)

    return BLOCK.sub(replace, text), changed

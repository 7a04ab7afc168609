"""Result tables in a markdown file (the README), rewritten from the reports, so numbers never go stale.

A table in the file is a block between two markers that name a suite and one of its report tables:

    <!-- zobench:table figure2/final_metric -->
    | problem | Adam | … |
    <!-- /zobench:table -->

``zobench readme README.md`` replaces every block's body by that table as the report at
``<out>/<suite>/<table>.md`` has it (its caption stays in the prose around the block);
``--check`` changes nothing and fails, naming the blocks, when a body differs from its report.
Every HTML comment line that mentions ``zobench:table`` must be one of the two markers, alone on its line;
a malformed, unclosed or nested marker, or one naming a path, is refused with its line number, so a
typo never deletes lines of the file or passes ``--check``.
"""

from __future__ import annotations

import re
from pathlib import Path

from .store import unsafe_name

OPEN = re.compile(r"<!-- zobench:table (?P<suite>[^/ ]+)/(?P<table>[^/ ]+) -->")
CLOSE = "<!-- /zobench:table -->"
MARKER = "zobench:table"


class ReadmeError(ValueError):
    """A block whose report table does not exist, or a marker that is malformed, unclosed or nested;
    the message names the line and the fix."""


def report_table(out: Path, suite: str, table: str) -> str:
    """The rows of ``<out>/<suite>/<table>.md`` without its caption; never a file outside ``out``."""
    path = out / suite / f"{table}.md"
    if not path.resolve().is_relative_to(out.resolve()):
        raise ReadmeError(f"{suite}/{table} resolves outside {out} (a link?); tables come from inside --out")
    if not path.is_file():
        raise ReadmeError(f"no report table {path}; run it first: zobench run suites/{suite}.yaml --out {out}")
    lines = path.read_text(errors="replace").splitlines()
    return "\n".join(line for line in lines if line.startswith("|")) + "\n"


def _blocks(lines: list[str]) -> list[tuple[int, int, str, str]]:
    """Each block as (opening line index, closing line index, suite, table), markers checked strictly."""
    blocks, opened = [], None
    for index, line in enumerate(lines):
        if not (line.lstrip().startswith("<!--") and MARKER in line):
            continue  # prose that mentions the markers, in backticks say, is not one
        where = f"line {index + 1}"
        if line.strip() == CLOSE:
            if opened is None:
                raise ReadmeError(f"{where}: {CLOSE} closes no block; remove it")
            blocks.append((opened[0], index, opened[1], opened[2]))
            opened = None
            continue
        match = OPEN.fullmatch(line.strip())
        if not match:
            raise ReadmeError(f"{where}: malformed marker {line.strip()[:80]!r}; write "
                              "<!-- zobench:table SUITE/TABLE --> alone on its line")
        for name in (match["suite"], match["table"]):
            if unsafe_name(name):
                raise ReadmeError(f"{where}: {unsafe_name(name)}: a marker names a suite and one of its tables")
        if opened is not None:
            raise ReadmeError(f"{where}: a block opens inside the block opened at line {opened[0] + 1}; "
                              f"close that one first with {CLOSE}")
        opened = (index, match["suite"], match["table"])
    if opened is not None:
        raise ReadmeError(f"line {opened[0] + 1}: the block is never closed; add {CLOSE} after its table")
    return blocks


def rewrite(text: str, out: Path) -> tuple[str, list[str]]:
    """``text`` with every block's body replaced from the reports, and the blocks that changed."""
    lines = text.split("\n")
    changed, pieces, done = [], [], 0
    for first, last, suite, table in _blocks(lines):
        body = report_table(out, suite, table)
        if body != "".join(line + "\n" for line in lines[first + 1:last]):
            changed.append(f"{suite}/{table}")
        pieces += [*lines[done:first + 1], *body.splitlines()]
        done = last
    return "\n".join(pieces + lines[done:]), changed

"""The JSON Schema of each kind of file a user writes, from its pydantic model.

``zobench schema`` writes them; the shipped copies in ``zobench/schemas/`` are what the shipped suites
name on their first line (``# yaml-language-server: $schema=...``), so an editor with the YAML
language server completes keys and flags mistakes as a suite is typed. A test keeps the copies equal
to the models and validates every shipped file against them.
"""

from __future__ import annotations

import json
from pathlib import Path

from .memory.study import StudyFile
from .suite_file import SuiteFile
from .tasks.task import TaskFile
from .tracks import BaselineTargets

KINDS = {"suite": SuiteFile, "task": TaskFile, "memory-study": StudyFile, "baseline-targets": BaselineTargets}
SHIPPED = Path(__file__).with_name("schemas")


def schema(kind: str) -> dict:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **KINDS[kind].model_json_schema()}


def write(folder: Path) -> list[Path]:
    """Writes ``<kind>.schema.json`` of every kind into ``folder``; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind in KINDS:
        path = folder / f"{kind}.schema.json"
        path.write_text(json.dumps(schema(kind), indent=1, ensure_ascii=False) + "\n")
        paths.append(path)
    return paths

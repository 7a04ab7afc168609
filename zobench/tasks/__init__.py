"""Tasks by name (the declarations shipped in ``definitions/``) or by the path of a YAML file."""

from __future__ import annotations

import difflib
from pathlib import Path

from .data import DATA_ENV, PROTOCOLS, Splits, check_data, load_splits, local_examples
from .task import Task, TaskError

DEFINITIONS = Path(__file__).parent / "definitions"


def task_names() -> list[str]:
    return sorted(path.stem for path in DEFINITIONS.glob("*.yaml"))


def load_task(name_or_path: str) -> Task:
    """A shipped task by name, or a user's declaration by path (``my_tasks/foo.yaml``)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise TaskError(f"no task file {path}")
        return Task.from_yaml(path)
    shipped = DEFINITIONS / f"{name_or_path}.yaml"
    if not shipped.is_file():
        close = difflib.get_close_matches(name_or_path, task_names(), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise TaskError(f"unknown task {name_or_path!r}; {hint}known: {', '.join(task_names())}, "
                        "or the path of a task YAML file")
    return Task.from_yaml(shipped)


__all__ = ["Task", "TaskError", "Splits", "check_data", "load_task", "load_splits", "local_examples", "task_names", "DATA_ENV",
           "PROTOCOLS"]

"""Suite files: a declared experiment, validated whole before anything runs, expanded into runs.

A suite (``suites/*.yaml``) names its problems (test functions) or its tasks and models, its
optimizers with hyperparameters (a list means a grid; ``overrides`` sets hyperparameters per
problem), seeds, a budget, convergence targets, dtype, device, PEFT mode and the layout of its
report tables (with the paper's values to print beside ours). An optimizer entry may also set its
own ``peft``, ``budget``, ``data``, ``objective`` and ``dtype``, so one suite holds rows as different
as zero-shot, in-context learning, LoRA and full fine-tuning (Table 1). A target is an absolute value
of the dev metric, or a percentage: that fraction of
the gap between a run's initial metric and the best any run of the suite reached on the same problem
(COCO-style, resolved when the report is written). Every mistake is reported as one line that names
the YAML path, e.g. ``figure2.yaml: optimizers[2].lr: expected a number, got 'fast'``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import ValidationError

from . import suite_references as references
from . import tracks
from .expansion import Common, configurations, expand
from .schema import one_line
from .spec import RunSettings, RunSpec, Study, Suite, SuiteError, TableLayout
from .store import unsafe_name
from .suite_file import SuiteFile
from .yaml_files import YamlFileError, load_yaml

__all__ = ["load_suite", "RunSpec", "Study", "Suite", "SuiteError", "TableLayout"]


def _read(path: Path) -> dict:
    """The file's document, its shape checked (every problem named at once), unset keys left out."""
    if not path.is_file():
        raise SuiteError(f"{path}: no such suite file (the suites shipped with zobench are in suites/)")
    try:
        document = load_yaml(path)
    except YamlFileError as error:
        raise SuiteError(str(error)) from None
    if not isinstance(document, dict):
        raise SuiteError(f"{path.name}: a suite is a mapping of name, problems, optimizers, seeds, budget, targets")
    if "methods" in document and "optimizers" not in document:
        raise SuiteError(f"{path.name}: a memory study, not a suite; run it with zobench memory {path}")
    try:
        document = SuiteFile.model_validate(document).model_dump(exclude_unset=True)
    except ValidationError as error:
        raise SuiteError(one_line(error, path.name, SuiteFile)) from None
    if unsafe_name(document["name"]):
        raise SuiteError(f"{path.name}: name: {unsafe_name(document['name'])}: the suite's name is its results folder")
    if "steps" not in document["budget"]:
        raise SuiteError(f"{path.name}: budget: missing required key 'steps'")
    return document


def load_suite(path: str | Path) -> Suite:
    """Reads a suite file, checks its shape and then its cross-references, and expands it into runs
    and tuning studies; raises :class:`SuiteError` (one line) on a mistake."""
    path = Path(path)
    where = path.name
    document = _read(path)
    tracks.check_document(where, document)
    pairs, tasks = references.problems(where, document, path.parent)
    test_functions = bool(document.get("problems"))
    seeds = document.get("seeds", [0])
    references.check_seeds(where, seeds)
    targets, gap_targets = references.targets(where, document, tasks)
    tables = references.tables(where, document.get("report", {}))
    data_dir = document.get("data_dir")
    if data_dir is not None and not Path(data_dir).is_absolute():
        data_dir = str((path.parent / data_dir).resolve())

    if str(path.parent.resolve()) not in sys.path:  # `optimizer: module:function` imports from here
        sys.path.insert(0, str(path.parent.resolve()))
    suite_settings = references.run_settings(where, document, RunSettings(), test_functions, tasks)
    found = configurations(where, document, [problem for problem, _ in pairs], suite_settings, tasks,
                           len(pairs) * len(seeds))
    found = tracks.check_entries(where, document.get("track"), found)
    baseline = {}
    if "baseline_targets" in document:
        baseline = tracks.baseline_targets(where, path.parent / document["baseline_targets"])
        tracks.check_baseline(where, baseline, pairs, found)
    references.check_task_data(where, document, found, tasks, seeds, data_dir)
    references.check_suite_space(where, document, {c.optimizer for c in found})
    references.check_memory(where, document.get("problems", []), found)

    identities = {name: dict(zip(("task_file", "task_hash"), references.task_identity(task)))
                  for name, task in tasks.items()}
    common = Common(document["name"], document.get("device", "cpu"), tuple(seeds), tuple(targets), data_dir,
                    identities, baseline)
    runs, studies = expand(where, common, pairs, found, tasks, test_functions)
    references.check_cells(where, tables, runs, studies)
    return Suite(document["name"], document.get("description", ""), tuple(runs), tables, path, tuple(gap_targets),
                 tuple(studies), tuple(c.label for c in found), document.get("track"))

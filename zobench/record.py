"""The run record, typed and versioned: what the runner writes and everything else reads.

A record is a summary of its run's step log plus measurements and provenance. ``schema_version``
says which shape it has: version 1 (no field) is the shape before records were typed, the same
fields without the version and without ``spec.revisions``; it reads as is, since its run key did not
include revisions either (:class:`zobench.suite.RunSpec`). A record that does not fit the model is
damaged (the store sets it aside and the run is redone).

``results.load`` flattens records into the one tidy frame reports, the gate and bundles read.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

SCHEMA_VERSION = 2


class _Fields(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Metric(_Fields):
    name: str
    higher_is_better: bool


class Evaluated(_Fields):
    dev: dict[str, float | None]
    test: dict[str, float | None]


class Final(Evaluated):
    step: int


class BestDev(_Fields):
    step: int
    value: float | None


class Target(_Fields):
    target: float
    reached: bool
    step: int | None
    forward_passes: float | None
    seconds: float | None = None  # training seconds up to the step (records before this field: None)


class RunRecord(_Fields):
    """One finished (or diverged) run."""

    schema_version: int = 1
    key: str
    spec: dict
    status: Literal["finished", "diverged"]
    steps_done: int
    forward_passes: float
    metric: Metric
    initial: Evaluated
    final: Final
    best_dev: BestDev
    selected_test: float | None
    targets: list[Target]
    resumed_at_step: int = 0
    problem: dict = {}
    time: dict = {}
    memory: dict = {}
    environment: dict = {}  # provenance: commit, dirty tree, package versions, torch build, device, CPU
    health: dict = {}  # zobench.health's flags (growth, collapse, drift), each with the step where it began


def problem(record: dict) -> str | None:
    """Why ``record`` does not fit :class:`RunRecord` (one line), or ``None``."""
    try:
        RunRecord.model_validate(record)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        return f"its field {'.'.join(map(str, first['loc'])) or 'record'} is missing or of the wrong type ({first['msg']})"
    return None

"""Results into pandas, and bundles of them between machines.

``frame(records)`` is the one flattening of run records into a tidy frame, one row per run:
identity, hyperparameters (``hp.*``), metrics, targets, time, memory and provenance. ``load(dir)``
is that frame for a results folder, ``load_curves(dir)`` one row per logged step.

A bundle (``zobench export``) is the frame written as Parquet with two more columns per run, its
whole record and its whole step log as JSON text, so nothing is lost: ``zobench merge`` writes the
bundles of several machines (benchopt's merge) back into one results folder, checking every record as
the store does, and a report of the merged folder is as if one machine had run everything.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .health import flagged_at, summary
from .measure import peak_bytes
from .record import RunRecord
from .store import ResultStore, run_record_problem

IDENTITY = ("suite", "problem", "model", "optimizer", "label", "seed", "steps", "dtype", "device", "peft", "objective")
PROVENANCE = ("git_commit", "git_dirty", "zobench", "torch", "transformers", "peft", "datasets", "device", "cpu")


def _row(record: dict) -> dict:
    typed = RunRecord.model_validate(record)
    spec, metric = typed.spec, typed.metric.name
    row = {key: spec.get(key) for key in IDENTITY}
    row.update({f"hp.{name}": value for name, value in spec["hyperparameters"].items()})
    row.update({f"revision.{name}": value for name, value in spec.get("revisions", {}).items()})
    row.update(key=typed.key, schema_version=typed.schema_version, status=typed.status, steps_done=typed.steps_done,
               forward_passes=typed.forward_passes, metric=metric, higher_is_better=typed.metric.higher_is_better,
               initial_dev=typed.initial.dev[metric], initial_test=typed.initial.test[metric],
               final_dev=typed.final.dev[metric], final_test=typed.final.test[metric], best_dev=typed.best_dev.value,
               selected_test=typed.selected_test, resumed_at_step=typed.resumed_at_step,
               flags=summary(typed.health), flagged_at=flagged_at(typed.health))
    row.update(typed.time)
    for phase, peaks in typed.memory.items():
        if isinstance(peaks, dict):
            row.update({f"peak_{phase}_{kind}": value for kind, value in peaks.items()})
            row[f"peak_{phase}_bytes"] = peak_bytes(typed.memory, phase)  # GPU allocated, else CPU RSS
    row["targets"] = [target.model_dump() for target in typed.targets]
    for target in typed.targets:
        row[f"steps_to_{target.target:g}"] = target.step
        row[f"forward_passes_to_{target.target:g}"] = target.forward_passes
        row[f"seconds_to_{target.target:g}"] = target.seconds
    row.update({f"env.{name}": typed.environment.get(name) for name in PROVENANCE})
    return row


def frame(records) -> pd.DataFrame:
    """One row per run record."""
    return pd.DataFrame([_row(record) for record in records])


def load(directory: str | Path) -> pd.DataFrame:
    """One row per recorded run of the suite directory ``directory`` (e.g. ``reports/figure2``)."""
    return frame(ResultStore(directory).records())


def load_curves(directory: str | Path) -> pd.DataFrame:
    """One row per logged step of every recorded run, with the run's key, label, problem and seed."""
    store = ResultStore(directory)
    frames = []
    for record in store.records():
        metric = record["metric"]["name"]
        rows = [{"step": e["step"], "forward_passes": e["forward_passes"], "loss": e.get("loss"),
                 "dev": e["dev"][metric] if "dev" in e else None, "test": e["test"][metric] if "test" in e else None}
                for e in store.read_log(record["key"])]
        curve = pd.DataFrame(rows)
        for name in ("problem", "label", "seed"):
            curve[name] = record["spec"][name]
        curve["key"] = record["key"]
        frames.append(curve)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def export(store: ResultStore, to: Path) -> int:
    """Writes the folder's sound records, with their logs, as a Parquet bundle; returns the run count."""
    records = store.records()
    bundle = frame(records)
    bundle["record"] = [json.dumps(record, sort_keys=True) for record in records]
    bundle["log"] = ["".join(json.dumps(e) + "\n" for e in store.read_log(record["key"])) for record in records]
    to.parent.mkdir(parents=True, exist_ok=True)
    bundle.to_parquet(to, index=False)
    return len(bundle)


class BundleError(ValueError):
    """A file that is not a zobench bundle, or a run that two bundles record differently."""


def merge(bundles: list[Path], store: ResultStore) -> tuple[int, int]:
    """Writes every run of ``bundles`` into ``store``: (runs added, runs already there). A run already
    recorded is kept (same key: the same run); a record that fails the store's check is refused."""
    added = present = 0
    for path in bundles:
        try:
            rows = pd.read_parquet(path, columns=["key", "record", "log"]).itertuples()
        except Exception as error:  # pyarrow raises many kinds for a file that is not Parquet
            raise BundleError(f"{path}: not a zobench bundle ({type(error).__name__}); write one with "
                              "zobench export SUITE --to FILE") from None
        for row in rows:
            record = json.loads(row.record)
            why = run_record_problem(record, row.key)
            if why:
                raise BundleError(f"{path}: run {row.key} cannot be merged: {why}")
            if store.record(row.key):
                present += 1
                continue
            with store.log_writer(row.key, keep=[json.loads(line) for line in row.log.splitlines()]):
                pass
            store.write_record(record)
            if not store.record(row.key):  # its log was damaged: set aside with it, and named
                raise BundleError(f"{path}: run {row.key} has a damaged step log; export it again")
            added += 1
    return added, present

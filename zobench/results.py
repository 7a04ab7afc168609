"""Results into pandas: ``load(dir)`` gives one row per run, ``load_curves(dir)`` one row per logged step
(dev and test at evaluation steps)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .store import ResultStore


def _row(record: dict) -> dict:
    spec, metric = record["spec"], record["metric"]["name"]
    row = {key: spec.get(key) for key in ("suite", "problem", "model", "optimizer", "label", "seed", "steps", "dtype",
                                         "device", "peft", "objective")}
    row.update({f"hp.{name}": value for name, value in spec["hyperparameters"].items()})
    row.update(key=record["key"], status=record["status"], steps_done=record["steps_done"],
               forward_passes=record["forward_passes"], metric=metric,
               initial_dev=record["initial"]["dev"][metric], initial_test=record["initial"]["test"][metric],
               final_dev=record["final"]["dev"][metric],
               final_test=record["final"]["test"][metric], best_dev=record["best_dev"]["value"],
               selected_test=record["selected_test"], resumed_at_step=record["resumed_at_step"])
    row.update({name: value for name, value in record["time"].items()})
    for phase, peaks in record["memory"].items():
        if isinstance(peaks, dict):
            row.update({f"peak_{phase}_{kind}": value for kind, value in peaks.items()})
    for target in record["targets"]:
        row[f"steps_to_{target['target']:g}"] = target["step"]
        row[f"forward_passes_to_{target['target']:g}"] = target["forward_passes"]
    return row


def load(directory: str | Path) -> pd.DataFrame:
    """One row per recorded run of the suite directory ``directory`` (e.g. ``reports/figure2``)."""
    return pd.DataFrame([_row(record) for record in ResultStore(directory).records()])


def load_curves(directory: str | Path) -> pd.DataFrame:
    """One row per logged step of every recorded run, with the run's key, label, problem and seed."""
    store = ResultStore(directory)
    frames = []
    for record in store.records():
        metric = record["metric"]["name"]
        rows = [{"step": e["step"], "forward_passes": e["forward_passes"], "loss": e.get("loss"),
                 "dev": e["dev"][metric] if "dev" in e else None, "test": e["test"][metric] if "test" in e else None}
                for e in store.read_log(record["key"])]
        frame = pd.DataFrame(rows)
        for name in ("problem", "label", "seed"):
            frame[name] = record["spec"][name]
        frame["key"] = record["key"]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

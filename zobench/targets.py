"""Convergence targets, resolved in one place: the step, forward passes and training seconds at which
a run's dev metric first reached each of its targets.

* An absolute target is a value of the metric (``targets: [0.78]``); the runner resolves it from the
  step log into the record, so the record alone says when the run got there.
* A gap target ``f`` (``targets: [90%]``, COCO-style) is the run's initial dev metric plus ``f`` times
  the gap to the best dev metric that any run of the suite reached on the same problem; it depends on
  the other runs, so it is resolved when a report is written, from the logs of all of them.

A target met at step 0 costs 0 steps and 0 forward passes (profiles count it as the best, not as a
division by zero: ``report/profiles.py``).
"""

from __future__ import annotations

import pandas as pd


def first_hit(history: list[dict], metric: str, goal: float, higher: bool) -> dict | None:
    """The first evaluated step whose dev metric reached ``goal``, or ``None``."""
    return next((e for e in history if "dev" in e and (e["dev"][metric] >= goal if higher
                                                       else e["dev"][metric] <= goal)), None)


def seconds_until(history: list[dict], hit: dict | None) -> float | None:
    """The training seconds the log spent up to and including ``hit``'s step (None: never reached)."""
    return None if hit is None else sum(e.get("seconds", 0.0) for e in history if e["step"] <= hit["step"])


def before(history: list[dict], step: int | None) -> list[dict]:
    """The log up to (not including) ``step``, where :mod:`zobench.health` flagged the run (None: all):
    a target counts only if it was reached while the run was sound."""
    return history if step is None else [e for e in history if e["step"] < step]


def absolute(history: list[dict], goals, metric: str, higher: bool, flagged_at: int | None = None) -> list[dict]:
    """The record's targets: for each goal, whether, at which step, after how many forward passes and
    training seconds (counting only what came before a health flag)."""
    hits = [(goal, first_hit(before(history, flagged_at), metric, goal, higher)) for goal in goals]
    return [{"target": goal, "reached": hit is not None, "step": hit and hit["step"],
             "forward_passes": hit and hit["forward_passes"], "seconds": seconds_until(history, hit)}
            for goal, hit in hits]


def resolved(runs: pd.DataFrame, logs: dict[str, list[dict]], gap_fractions) -> pd.DataFrame:
    """One row per (run, target), absolute and gap targets alike: ``key``, ``problem``, ``label``,
    ``seed``, ``name`` (as a report prints it), ``step``, ``forward_passes`` and ``seconds`` (``None``:
    never; a record from before seconds were kept reads them from its log)."""
    rows = []
    best = {}
    for run in runs.itertuples():
        values = [e["dev"][run.metric] for e in logs[run.key] if "dev" in e]
        pick = max if run.higher_is_better else min
        best[run.problem] = pick(values + ([best[run.problem]] if run.problem in best else []))
    for run in runs.itertuples():
        relation = "≥" if run.higher_is_better else "≤"
        flagged_at = getattr(run, "flagged_at", None)
        sound = before(logs[run.key], None if pd.isna(flagged_at) else int(flagged_at))
        for target in run.targets:  # read from the log again: a record may predate its run's flag
            hit = first_hit(sound, run.metric, target["target"], run.higher_is_better)
            rows.append((run.key, f"{run.metric} {relation} {target['target']:g}", hit and hit["step"],
                         hit and hit["forward_passes"], seconds_until(logs[run.key], hit)))
        start = next(e["dev"][run.metric] for e in logs[run.key] if "dev" in e)
        for fraction in gap_fractions:
            hit = first_hit(sound, run.metric, start + fraction * (best[run.problem] - start), run.higher_is_better)
            rows.append((run.key, f"{fraction:.0%} of the gap from the initial to the best {run.metric}",
                         hit and hit["step"], hit and hit["forward_passes"], seconds_until(logs[run.key], hit)))
    found = pd.DataFrame(rows, columns=["key", "name", "step", "forward_passes", "seconds"], dtype=object)
    return found.merge(runs[["key", "problem", "label", "seed"]], on="key", how="left")

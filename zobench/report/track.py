"""A track's scores (:mod:`zobench.tracks`): what each method pays to reach the validation targets.

Per (problem, target) pair a method's cost is the median over seeds of its forward passes (and,
separately, its training seconds) to the target, ∞ when more than half the seeds never reach it
(:func:`~zobench.report.profiles.median_cost`). Two summaries, both over every pair of the suite:

* AlgoPerf's benchmark score, the performance profile integrated from τ = 1 to τ = 4
  (:func:`~zobench.report.profiles.area`): 1 is the cheapest on every pair, 0 never within 4× of it;
* the IQM over (pair, seed) of a run's cost over the cheapest method's median cost on that pair, ∞ when
  the run missed the target, with its stratified bootstrap 95% interval (a pair is a stratum).
"""

from __future__ import annotations

import math

import pandas as pd

from . import profiles
from .statistics import iqm_interval

UNITS = {"forward_passes": 1.0, "seconds": 1e-9}  # each unit's floor: a target met at step 0 costs nothing
TAU_MAX = 4.0


def scores(reached: pd.DataFrame, labels: list[str]) -> dict[str, dict[str, float | object]]:
    """``{label: {"score <unit>": area, "iqm <unit>": Estimate}}`` for both units."""
    out = {label: {} for label in labels}
    for unit, floor in UNITS.items():
        medians = profiles.pair_costs(reached, labels, unit)
        costs = {pair: dict(row) for pair, row in medians.iterrows()}
        for label, ratios in profiles.ratios(costs, floor).items():
            out[label][f"score {unit}"] = profiles.area(ratios, TAU_MAX)
        best = medians.min(axis=1).clip(lower=floor)
        for label in labels:
            runs = reached[reached["label"] == label]
            strata = [[math.inf if pd.isna(cost) else max(cost, floor) / best[pair] for cost in group[unit]]
                      for pair, group in runs.groupby(["problem", "name"], sort=False)]
            out[label][f"iqm {unit}"] = iqm_interval(strata, misses=True)
    return out


def table(track: str, reached: pd.DataFrame, labels: list[str]) -> str:
    """The track's score table in markdown."""
    found = scores(reached, labels)
    pairs = reached.groupby(["problem", "name"]).ngroups
    lines = [f"Scores of the {track} over {pairs} (problem, target) pairs: AlgoPerf's score is the performance "
             f"profile's area from τ = 1 to {TAU_MAX:g} (1: the cheapest on every pair); the IQM is of each run's cost "
             "over the cheapest median cost on its pair, ∞ when the run missed the target [95% stratified bootstrap CI]",
             "", "| method | score (forward passes) | score (seconds) | IQM cost ratio (forward passes) | "
                 "IQM cost ratio (seconds) |", "|---|---|---|---|---|"]
    for label in labels:
        cells = [f"{found[label][f'score {unit}']:.3f}" for unit in UNITS]
        cells += [found[label][f"iqm {unit}"].text(number=".3g") if found[label][f"iqm {unit}"] else "—"
                  for unit in UNITS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

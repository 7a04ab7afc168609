"""Performance profiles (Dolan & Moré, Math. Programming 2002): over a set of problems, the share
each method solves within a factor τ of the cheapest method on that problem.

A *problem* here is a (problem, target) pair of a suite; its cost for a method is the median over
seeds of the forward passes to reach the target, an unreached seed counting as infinite (so the cost
is finite when more than half the seeds reached it). Problems no method solves stay in the
denominator: a profile says what share of the whole set a method solves, not of the solvable part.
Written here rather than taken from a library because no maintained one exists, and the definition
is four lines.
"""

from __future__ import annotations

import math
import statistics

import pandas as pd

TAUS = (1.0, 2.0, 4.0, 10.0)  # the factors the table reports


def median_cost(costs: list[float | None]) -> float:
    """The median of a method's costs over seeds, ``None`` (not reached) counting as infinite."""
    return statistics.median([math.inf if c is None else c for c in costs])


def median_costs(reached: pd.DataFrame, by: list[str], unit: str = "forward_passes") -> pd.Series:
    """:func:`median_cost` of each label's costs (the ``unit`` column of ``reached``, one row per run and
    target; missing: never reached), per ``by`` and label."""
    return reached.groupby([*by, "label"], sort=False)[unit].agg(
        lambda costs: median_cost([None if pd.isna(cost) else cost for cost in costs]))


def pair_costs(reached: pd.DataFrame, labels: list[str], unit: str = "forward_passes") -> pd.DataFrame:
    """(problem, target) × label: the median costs, ∞ where a label never reached the target or never ran."""
    return median_costs(reached, ["problem", "name"], unit).unstack("label").reindex(columns=labels).fillna(math.inf)


def ratios(costs: dict[str, dict[str, float]], floor: float = 1.0) -> dict[str, list[float]]:
    """``costs[problem][method]`` → each method's cost ratios r = t / min over methods (inf: unsolved).
    A cost below ``floor`` counts as ``floor``: forward passes are whole numbers, so a target met at
    step 0 (zero passes) ties as best instead of dividing by zero (seconds take a tiny floor)."""
    out: dict[str, list[float]] = {}
    for by_method in costs.values():
        best = max(floor, min(by_method.values()))
        for method, cost in by_method.items():
            out.setdefault(method, []).append(max(floor, cost) / best if math.isfinite(cost) else math.inf)
    return out


def solved_within(method_ratios: list[float], tau: float) -> float:
    """ρ(τ): the share of problems whose ratio is at most τ (solved ones only, also for τ = ∞)."""
    return sum(math.isfinite(r) and r <= tau for r in method_ratios) / len(method_ratios)


def area(method_ratios: list[float], tau_max: float = 4.0) -> float:
    r"""AlgoPerf's benchmark score: the area under ρ(τ) from τ = 1 to ``tau_max``, over its width, so 1 is
    the fastest on every problem and 0 never within ``tau_max``×: :math:`\frac{1}{\tau_{max}-1}\int_1^{\tau_{max}}
    \rho(\tau)\,d\tau`. ρ is a step function, so the integral is exact: a problem solved at ratio r ≤ τ_max
    adds (τ_max − r) / (τ_max − 1) / P."""
    return sum((tau_max - r) / (tau_max - 1) for r in method_ratios if r <= tau_max) / len(method_ratios)


def table(costs: dict[str, dict[str, float]]) -> str:
    """A markdown table: per method, ρ(τ) at TAUS and the share solved at all."""
    by_method = ratios(costs)
    head = "| method | " + " | ".join(f"ρ({tau:g})" for tau in TAUS) + " | solved |"
    lines = [head, "|---" * (len(TAUS) + 2) + "|"]
    for method, values in by_method.items():
        cells = [f"{solved_within(values, tau):.2f}" for tau in TAUS] + [f"{solved_within(values, math.inf):.2f}"]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

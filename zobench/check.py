"""The regression gate: a fresh run of a suite against a committed baseline.

For each optimizer label on each problem, the gate compares, over the suite's seeds:

* the dev-selected test metric (mean over seeds): it fails when it gets worse by more than
  ``metric_tolerance`` (absolute, in the metric's units; an improvement never fails);
* the forward passes to each target (median over seeds; an unreached target counts as the run's
  whole budget): it fails when they grow by more than ``passes_factor``;
* the peak-memory ratio of training to evaluation in the same run (machines differ, ratios much
  less): it fails when it grows by more than ``memory_factor``.

Wall times are never compared across machines. The baseline is a JSON file written by
``--update-baseline``.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from . import results
from .store import ResultStore
from .suite import Suite

TOLERANCES = {"metric_tolerance": 0.02, "passes_factor": 1.5, "memory_factor": 1.25}


def summary(suite: Suite, store: ResultStore) -> dict:
    """The gate's numbers per "<label> on <problem>": a group-by of the runs' frame over the seeds."""
    frame = results.frame(store.record(spec.key) for spec in suite.runs)
    frame["name"] = frame["label"] + " on " + frame["problem"]
    measured = {"peak_train_bytes", "peak_eval_bytes"} <= set(frame)  # a suite of 0 steps trains nothing
    frame["memory_ratio"] = frame["peak_train_bytes"] / frame["peak_eval_bytes"] if measured else float("nan")
    result = {}
    for name, runs in frame.groupby("name", sort=False):
        goals = [f"{target['target']:g}" for target in runs["targets"].iloc[0]]
        # an unreached target costs the run's whole budget
        passes = {goal: float(statistics.median(runs[f"forward_passes_to_{goal}"].fillna(runs["forward_passes"])))
                  for goal in goals}
        ratios = runs["memory_ratio"].dropna()
        result[name] = {"metric": runs["metric"].iloc[0], "higher_is_better": bool(runs["higher_is_better"].iloc[0]),
                        "selected_test": statistics.fmean(runs["selected_test"]),
                        "forward_passes_to_target": passes,
                        "train_to_eval_memory": statistics.fmean(ratios) if len(ratios) else None}
    return result


@dataclass
class Finding:
    label: str
    quantity: str
    baseline: float
    fresh: float
    limit: str
    failed: bool


def compare(baseline: dict, fresh: dict, tolerances: dict | None = None) -> list[Finding]:
    limits = {**TOLERANCES, **(baseline.get("tolerances") or {}), **(tolerances or {})}
    findings = []
    for label, old in baseline["labels"].items():
        new = fresh.get(label)
        if new is None:
            findings.append(Finding(label, "present", 1, 0, "must run", True))
            continue
        worse = old["selected_test"] - new["selected_test"]
        if not old["higher_is_better"]:
            worse = -worse
        findings.append(Finding(label, f"test {old['metric']}", old["selected_test"], new["selected_test"],
                                f"worse by ≤ {limits['metric_tolerance']}", worse > limits["metric_tolerance"]))
        for target, passes in old["forward_passes_to_target"].items():
            now = new["forward_passes_to_target"].get(target)
            findings.append(Finding(label, f"forward passes to {target}", passes, now,
                                    f"≤ {limits['passes_factor']}×", now is None or now > passes * limits["passes_factor"]))
        if old.get("train_to_eval_memory") and new.get("train_to_eval_memory"):
            findings.append(Finding(label, "train/eval peak memory", old["train_to_eval_memory"],
                                    new["train_to_eval_memory"], f"≤ {limits['memory_factor']}×",
                                    new["train_to_eval_memory"] > old["train_to_eval_memory"] * limits["memory_factor"]))
    return findings


def table(findings: list[Finding]) -> str:
    def number(value):
        return "—" if value is None else f"{value:.4g}"

    lines = ["| optimizer on problem | quantity | baseline | now | limit | |", "|---|---|---|---|---|---|"]
    lines += [f"| {f.label} | {f.quantity} | {number(f.baseline)} | {number(f.fresh)} | {f.limit} | "
              f"{'FAIL' if f.failed else 'ok'} |" for f in findings]
    return "\n".join(lines)


def read_baseline(path: Path) -> dict:
    """A baseline written by :func:`write_baseline`; a malformed one raises ``ValueError`` in one line."""
    fix = "rewrite it with zobench check SUITE --baseline FILE --update-baseline"
    try:
        baseline = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a baseline JSON file ({error}); {fix}") from None
    labels = baseline.get("labels") if isinstance(baseline, dict) else None
    fields = {"metric": str, "higher_is_better": bool, "selected_test": (int, float), "forward_passes_to_target": dict}
    if not isinstance(labels, dict) or not all(
            isinstance(entry, dict) and all(isinstance(entry.get(k), t) for k, t in fields.items())
            for entry in labels.values()):
        raise ValueError(f"{path}: a baseline is an object whose 'labels' map each optimizer on a problem to "
                         f"{', '.join(fields)}; {fix}")
    return baseline


def write_baseline(path: Path, suite: Suite, fresh: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"suite": suite.name, "tolerances": TOLERANCES, "labels": fresh}, indent=1,
                               sort_keys=True) + "\n")

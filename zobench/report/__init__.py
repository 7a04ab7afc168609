"""Reports: tables and figures from a suite's records, linked from ``index.md``."""

from __future__ import annotations

from pathlib import Path

from ..optimizers.anneal import AnnealSchedule
from ..store import ResultStore
from ..suite import Suite
from . import figures
from .tables import Table, median_reached

PAPER_ANNEAL = AnnealSchedule(T1=1024, T2=16000, T3=20000)


def _ordered(values):
    return list(dict.fromkeys(values))


def write_report(suite: Suite, store: ResultStore) -> Path:
    """Writes every table and figure of ``suite`` into the store's directory; returns ``index.md``."""
    records = {spec.key: store.record(spec.key) for spec in suite.runs if store.has(spec.key)}
    runs = [spec for spec in suite.runs if spec.key in records]
    problems = _ordered(spec.problem for spec in runs)
    labels = _ordered(spec.label for spec in runs)
    out = store.root
    entries = []  # (caption, file name)

    def cells(value_of) -> dict:
        table: dict = {}
        for spec in runs:
            table.setdefault((spec.problem, spec.label), []).append(value_of(records[spec.key]))
        return table

    distance = Table("final_distance", "Final distance to the optimum (mean ± std over seeds)",
                     "problem", problems, labels, cells(lambda r: r["final"]["distance"]))
    distance.write(out)
    entries.append((distance.caption, "final_distance.md"))
    targets = _ordered(t for spec in runs for t in spec.targets)
    for index, target in enumerate(targets):
        def steps_to(record, target=target):
            hit = next(t for t in record["targets"] if t["target"] == target)
            return hit["step"]
        table = Table(f"steps_to_target_{index}", f"Steps to reach distance ≤ {target:g} "
                      "(median over the seeds that reached it; reached/seeds)", "problem", problems,
                      labels, cells(steps_to), formatter=median_reached)
        table.write(out)
        entries.append((table.caption, f"{table.name}.md"))

    first_seed = min(spec.seed for spec in runs) if runs else 0
    paths = {problem: {} for problem in problems}
    for spec in runs:
        if spec.seed == first_seed:
            paths[spec.problem][spec.label] = [(e["x"], e["y"]) for e in store.read_log(spec.key)]
    if runs:
        figures.trajectories(paths, out / "trajectories.png")
        entries.append(("Trajectories over the contours of each test function (Figure 2)", "trajectories.png"))

    anneals = {"paper defaults (T1=1024, T2=16000, T3=20000)": PAPER_ANNEAL}
    for spec in runs:
        if spec.optimizer.startswith("zo-adamu"):
            h = spec.hyperparameters
            schedule = AnnealSchedule(T3=h.get("T3") or spec.steps, T1=h.get("T1", 1024), T2=h.get("T2"),
                                      last_phase=h.get("last_phase", "eq7"))
            anneals[f"{spec.label} in this suite (T1={schedule.T1}, T2={schedule.T2}, T3={schedule.T3})"] = schedule
    figures.anneal_schedule(anneals, out / "anneal_schedule.png")
    entries.append(("ZO-AdaMU's α, β1, β2 over the steps (Figure 1)", "anneal_schedule.png"))

    lines = [f"# {suite.name}", "", suite.description.strip(), "",
             f"{len(records)} of {len(suite.runs)} runs finished; "
             f"{sum(r['status'] == 'diverged' for r in records.values())} diverged.", ""]
    lines += [f"- [{caption}]({name})" for caption, name in entries]
    for caption, name in entries:
        if name.endswith(".md"):
            lines += ["", (out / name).read_text()]
        else:
            lines += ["", f"![{caption}]({name})"]
    index = out / "index.md"
    index.write_text("\n".join(lines) + "\n")
    return index

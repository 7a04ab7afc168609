"""Reports: the suite's tables (laid out as the suite asks) and figures, linked from ``index.md``."""

from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd

from .. import health, results, targets, tracks
from ..optimizers.anneal import HYPERPARAMETERS as ANNEAL_HYPERPARAMETERS
from ..optimizers.anneal import AnnealSchedule
from ..problems import quadratic
from ..store import ResultStore
from ..suite import RunSpec, Suite, TableLayout
from ..suite_references import TO_TARGET
from . import figures, profiles, track
from .statistics import Estimate, probability_of_improvement
from .tables import Table, iqm_ci, mean_std, median_reached

PAPER_ANNEAL = AnnealSchedule(T1=1024, T2=16000, T3=20000)
METRIC_QUANTITIES = ("initial_test", "final", "selected_test")
FRACTIONS = {"accuracy", "f1", "em"}  # metrics in [0, 1], shown in percent as the paper shows them
MIB = 2 ** 20
# Process RSS moves by a few MiB between runs that allocate the same (the allocator's arenas, page
# faults of the libraries): up to 3.6 MiB between seeds of the quickstart's 770-parameter head, whose
# optimizer state is kilobytes. Below this a CPU figure measures no difference; the GPU allocator
# counts bytes.
RSS_RESOLUTION_MIB = 4.0
TRACK_TERMS = {"external": "Every method was tuned on dev with the same trials over its family's search space; "
                           "the chosen setting ran over the seeds.",
               "self-tuning": "Every method ran once per seed, untuned, with 1.5× the budget."}


def _ordered(values):
    return list(dict.fromkeys(values))


def _runs(runs: list[RunSpec], records: dict) -> pd.DataFrame:
    """The report's tidy frame: ``results.frame`` of the runs' records, in the suite's order, with the
    ablation axes the registry declares (schedule, placement) beside the spec's fields."""
    frame = results.frame([records[spec.key] for spec in runs])
    # the suite's label: a final run whose trial had the same settings and seed reuses the trial's record
    frame["label"] = [spec.label for spec in runs]
    frame["schedule"] = [spec.schedule for spec in runs]
    frame["placement"] = [spec.placement for spec in runs]
    frame["peak_train_mib"] = frame["peak_train_bytes"] / MIB if "peak_train_bytes" in frame else None
    return frame


def _cells(layout: TableLayout, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each run's table row and column, as the layout names them."""
    def joined(fields):
        return frame[list(fields)].astype(str).agg(" ".join, axis=1)

    return frame.assign(row=joined(layout.rows), column=joined(layout.columns))


VALUES = {"initial_test": "initial_test", "final": "final_dev", "selected_test": "selected_test",
          "seconds_per_step": "seconds_per_step_median", "peak_train_memory": "peak_train_mib"}


def _tables(layout: TableLayout, frame: pd.DataFrame, targets: pd.DataFrame) -> list[Table]:
    """The tables of one layout, each a group-by of the run frame (or of its targets, one table per
    target, for the to-target quantities) over the layout's rows and columns."""
    quantity = layout.quantity
    if quantity in TO_TARGET:
        unit = TO_TARGET[quantity]
        formatter = functools.partial(median_reached, number=".3g") if unit == "seconds" else median_reached
        variants = [(f"{layout.name}_{i}", name,
                     frame.merge(targets.loc[targets["name"] == name, ["key", unit]].rename(columns={unit: "value"}),
                                 on="key"), formatter)
                    for i, name in enumerate(dict.fromkeys(targets["name"]))]
    else:
        percent = quantity in METRIC_QUANTITIES and set(frame["metric"]) <= FRACTIONS  # as the paper shows them
        formatter = iqm_ci if layout.statistic == "iqm" else mean_std
        variants = [(layout.name, None, frame.assign(value=frame[VALUES[quantity]]),
                     functools.partial(formatter, scale=100) if percent else formatter)]
    spread = "IQM over seeds [95% bootstrap CI]" if layout.statistic == "iqm" else "mean ± std over seeds"
    default_captions = {"initial_test": f"Test {{metric}} before training (zero-shot; {spread})",
                        "final": f"Final dev {{metric}} ({spread})",
                        "selected_test": f"Test {{metric}} at the best dev step ({spread})",
                        "seconds_per_step": "Median seconds per training step",
                        "peak_train_memory": "Peak memory of the training steps (MiB)",
                        "steps_to_target": "Steps to reach {target} "
                                           "(median over the seeds that did; reached/seeds)",
                        "forward_passes_to_target": "Forward passes to reach {target} "
                                                    "(median over the seeds that did; reached/seeds)",
                        "seconds_to_target": "Training seconds to reach {target} "
                                             "(median over the seeds that did; reached/seeds)"}
    caption = layout.caption or default_captions[quantity]
    tables = []
    for name, target, held, formatter in variants:
        # a gap target is named by its metric, so a suite mixing distances and accuracies has targets
        # that only some problems have: each target's table holds the runs that have it
        held = _cells(layout, held)
        groups = held.groupby(["row", "column"], sort=False)
        cells = {cell: _present(values) for cell, values in groups["value"]}
        seeds = {cell: [int(seed) for seed in values] for cell, values in groups["seed"]}
        text = caption.format(metric=" / ".join(sorted(set(held["metric"]))), target=target or "")
        if layout.paper:
            text += "; after the slash, the paper's value"
        tables.append(Table(name, text, " / ".join(layout.rows), list(dict.fromkeys(held["row"])),
                            list(dict.fromkeys(held["column"])), cells, formatter, layout.paper, seeds))
    if layout.improvement:
        higher = quantity in METRIC_QUANTITIES and bool(frame["higher_is_better"].iloc[0])
        tables.append(_improvement_table(layout, tables[0], higher))
    return tables


def _improvement_table(layout: TableLayout, table: Table, higher_is_better: bool) -> Table:
    """P(a run of a column beats a run of ``over``) per row, and over all rows with each row a
    stratum: the columns compared are ``of``, or every column but ``over``."""
    over = layout.improvement["over"]
    challengers = [layout.improvement["of"]] if "of" in layout.improvement else [c for c in table.columns if c != over]
    columns = [f"P({c} > {over})" if higher_is_better else f"P({c} better than {over})" for c in challengers]
    cells, seeds = {}, {}
    every = "all rows (each a stratum)"
    for row_name, rows in [(row, [row]) for row in table.rows] + [(every, table.rows)]:
        for challenger, column in zip(challengers, columns):
            pairs = [(table.cells.get((r, challenger), []), table.cells.get((r, over), [])) for r in rows]
            estimate = probability_of_improvement(pairs, higher_is_better)
            cells[(row_name, column)] = [] if estimate is None else [estimate.value, estimate.low, estimate.high]
            seeds[(row_name, column)] = ["estimate", "low", "high"]
    return Table(f"{layout.name}_improvement",
                 f"Probability that a run of a column beats a run of {over} in the same row, over all pairs of "
                 f"seeds ({table.caption.split(' (')[0]}; [95% stratified bootstrap CI])",
                 table.row_header, table.rows + [every], columns, cells, _probability_text, {}, seeds)



def _flow(value) -> str:
    """A chosen hyperparameter as a suite writes it: 0.03, (0.9, 0.999), {name: cosine, warmup: 200}."""
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    return str(value)


def _tuning_lines(suite: Suite, root: Path) -> list[str]:
    """The tuning protocol and what it chose: per optimizer and problem, the values its best trial had."""
    from ..tuning import progress

    if not suite.studies:
        return []
    first = suite.studies[0]
    lines = [f"Tuned on dev only: each optimizer gets the same trials per problem, then its best configuration "
             f"(the best dev metric a trial reached) runs over seeds {list(first.seeds)}.", "",
             "| optimizer | problem | trials | sampler | trial budget | chosen | best dev |", "|---|---|---|---|---|---|---|"]
    for study in suite.studies:
        finished, best, value = progress(root, study)
        budget = f"{study.trial.steps} steps" + (f", {study.trial.seconds_budget:g} s" if study.trial.seconds_budget else "")
        chosen = ", ".join(f"{k}={_flow(v)}" for k, v in (best or {}).items())
        lines.append(f"| {study.label} | {study.trial.problem} | {finished}/{study.trials} | {study.sampler} | {budget} "
                     f"| {chosen or '—'} | {'—' if value is None else f'{value:.4g}'} |")
    return lines + [""]


def _probability_text(values: list) -> str:
    """A probability of improvement's cell: [estimate, low, high], two decimals."""
    return Estimate(*values).text(number=".2f") if values else "—"


def write_report(suite: Suite, store: ResultStore) -> Path:
    """Writes every table and figure of ``suite`` into the store's directory; returns ``index.md``."""
    records = {spec.key: record for spec in suite.runs if (record := store.record(spec.key))}
    logs = {key: store.read_log(key) for key in records}
    records = {key: record for key, record in records.items() if logs[key]}  # a damaged log was set aside
    runs = [spec for spec in suite.runs if spec.key in records]
    out = store.root
    out.mkdir(parents=True, exist_ok=True)
    entries = []  # (caption, file name)
    lines = [f"# {suite.name}", "", suite.description.strip(), ""]
    if suite.track:
        lines += [f"Track: the {tracks.NAMES[suite.track]} (AlgoPerf; zobench.tracks). " + TRACK_TERMS[suite.track], ""]
    if runs:
        frame = _flagged(_runs(runs, records), logs)
        reached = targets.resolved(frame, logs, suite.gap_targets)
        for layout in suite.tables:
            for table in _tables(layout, frame, reached):
                if suite.track:  # a table says which track its numbers belong to
                    table.caption = f"{tracks.NAMES[suite.track].capitalize()}: {table.caption}"
                table.write(out)
                entries.append((table.caption, f"{table.name}.md"))
        if suite.track and not reached.empty:
            (out / "track_scores.md").write_text(track.table(tracks.NAMES[suite.track], reached,
                                                             _ordered(reached["label"])))
            entries.append((f"Scores of the {tracks.NAMES[suite.track]}: AlgoPerf's profile area and IQM cost ratios",
                            "track_scores.md"))
        colours = figures.palette(spec.label for spec in suite.runs)
        entries += _figures(runs, frame, logs, reached, colours, out)
        diverged = [f"{run.label} on {run.problem}, seed {run.seed}, at step {run.steps_done}"
                    for run in frame.itertuples() if run.status == "diverged"]
        lines += [f"{len(runs)} of {len(suite.runs)} runs recorded; {len(diverged)} diverged"
                  + (": " + "; ".join(diverged) if diverged else "") + ".", ""]
        flagged = [f"{run.label} on {run.problem}, seed {run.seed} ({run.flags})" for run in frame.itertuples()
                   if getattr(run, "flags", "")]
        if flagged:
            lines += [f"{len(flagged)} flagged by zobench.health (a target counts only before its flag): "
                      + "; ".join(flagged) + ".", ""]
        lines += _provenance_lines(frame)
    else:
        lines += [f"0 of {len(suite.runs)} runs recorded; 0 diverged.", ""]
    entries += _anneal_figure(runs, out)
    lines += _data_lines(runs, records)
    lines += _tuning_lines(suite, out)
    lines += [f"- [{caption}]({name})" for caption, name in entries]
    for caption, name in entries:
        lines += ["", (out / name).read_text() if name.endswith(".md") else f"![{caption}]({name})"]
    index = out / "index.md"
    index.write_text("\n".join(lines) + "\n")
    return index


def _flagged(frame: pd.DataFrame, logs: dict) -> pd.DataFrame:
    """The health flags read again from each run's log (they are a function of it), so that records
    written before a flag existed are flagged as a run recorded today would be."""
    found = [health.flags(logs[key]) for key in frame["key"]]
    return frame.assign(flags=[health.summary(f) for f in found], flagged_at=[health.flagged_at(f) for f in found])


def _provenance_lines(frame: pd.DataFrame) -> list[str]:
    """The commits the records were made at (and how many had uncommitted changes), with a warning
    when they are mixed: runs of unchanged maths are reused across commits, so a mixed report is
    sound by construction, but a reader should know which code made which numbers."""
    commits = frame.assign(commit=frame["env.git_commit"].fillna("unknown (not a git checkout)"),
                           dirty=frame["env.git_dirty"].fillna(False).astype(bool))
    made = commits.groupby("commit", sort=False)["dirty"].agg(["size", "sum"])
    lines = ["Code: " + "; ".join(
        f"{commit[:12]} ({runs} run{'s' * (runs != 1)}" + (f", {dirty} with uncommitted changes" if dirty else "") + ")"
        for commit, (runs, dirty) in made.iterrows()) + "."]
    if len(made) > 1:
        lines.append(f"Warning: these records come from {len(made)} commits. Runs are reused while their "
                     "optimizer's, problem's and scorer's revisions are unchanged; to see one commit's numbers, "
                     "rerun into a fresh --out.")
    return lines + [""]


def _data_lines(runs, records) -> list[str]:
    """Each task's split sizes and class balance, from its first recorded run."""
    lines = []
    for problem in _ordered(spec.problem for spec in runs):
        described = records[next(s.key for s in runs if s.problem == problem)].get("problem", {})
        if "split_sizes" not in described:
            continue
        balance = described.get("class_balance", {})
        splits = [f"{split} {size}" + (" (" + " / ".join(f"{name} {share:.0%}" for name, share in
                                                         balance[split].items()) + ")" if split in balance else "")
                  for split, size in described["split_sizes"].items()]
        lines.append(f"Data of {problem}: " + "; ".join(splits) + ".")
    return lines + [""] if lines else []


def _figures(runs, frame: pd.DataFrame, logs, reached: pd.DataFrame, colours, out: Path) -> list[tuple[str, str]]:
    entries = []
    problems = _ordered(frame["problem"])
    metrics = dict(zip(frame["key"], frame["metric"]))

    if all("x" in logs[key][0] for key in frame["key"]):
        paths = {problem: {} for problem in problems}
        for run in frame.sort_values("seed", kind="stable").itertuples():
            paths[run.problem].setdefault(run.label, []).append([(e["x"], e["y"]) for e in logs[run.key]])
        figures.trajectories(paths, colours, out / "trajectories.png")
        entries.append(("Trajectories over the contours of each test function (Figure 2)", "trajectories.png"))

    metric = " / ".join(sorted(set(frame["metric"])))
    finished = frame[frame["status"] != "diverged"] if (frame["status"] != "diverged").any() else frame
    values = [e["dev"][metrics[key]] for key in finished["key"] for e in logs[key] if "dev" in e]
    log_y = not frame["higher_is_better"].iloc[0] and min(values) > 0
    for split, axis, name in (("dev", "step", "steps"), ("dev", "forward_passes", "forward passes"),
                              ("test", "step", "steps")):  # test beside dev: selection on dev can overfit it
        curves, diverged = {problem: {} for problem in problems}, {problem: [] for problem in problems}
        for run in frame.itertuples():
            if run.status == "diverged":  # apart: its blown-up values would set the scale
                diverged[run.problem].append((run.label, logs[run.key][-1][axis]))
                continue
            points = [(e[axis], e[split][run.metric]) for e in logs[run.key] if split in e]
            curves[run.problem].setdefault(run.label, []).append(points)
        file = f"curves_{axis}.png" if split == "dev" else f"curves_{split}_{axis}.png"
        figures.metric_curves(curves, metric, name, log_y, colours, out / file, diverged, split)
        entries.append((f"{split.capitalize()} {metric} against {name}, IQM and 95% bootstrap CI over seeds", file))

    hits = {label: _present(passes) for label, passes in reached.groupby("label", sort=False)["forward_passes"]}
    if any(hits.values()):
        figures.ecdf(hits, colours, out / "ecdf_forward_passes.png")
        entries.append(("ECDF of forward passes to each target, over runs and targets", "ecdf_forward_passes.png"))

    entries += _profile(reached, colours, out)
    entries += _scaling_figure(reached, colours, out)

    memory = {}  # what training adds, not the process every run shares (runs of 0 steps have no training)
    if {"peak_train_bytes", "peak_load_bytes"} <= set(frame):
        added = (frame["peak_train_bytes"] - frame["peak_load_bytes"]).clip(lower=0) / MIB
        memory = {label: list(values.dropna()) for label, values in added.groupby(frame["label"], sort=False)
                  if values.notna().any()}
    time = {label: list(values.dropna() * 1e3) for label, values in
            frame.groupby("label", sort=False)["seconds_per_step_median"] if values.notna().any()}
    on_gpu = "peak_train_allocated_bytes" in frame
    figures.bars(memory, "MiB", "Peak memory of the training steps above the loaded model and data "
                 f"({'GPU allocated' if on_gpu else 'process RSS'})", colours, out / "peak_memory.png",
                 resolution=0.0 if on_gpu else RSS_RESOLUTION_MIB)
    figures.bars(time, "ms", "Median time per training step of each run (runs timed one after another: "
                 "machine load differs between them)", colours, out / "step_time.png")
    entries += [("Peak memory of the training steps above the loaded model and data, per optimizer", "peak_memory.png"),
                ("Median wall time per training step per optimizer", "step_time.png")]
    return entries


def _present(values) -> list:
    """A column's values with pandas' missing markers as ``None``, as tables and profiles count them
    (a seed without a value, a target never reached)."""
    return [None if pd.isna(value) else value for value in values]


def _profile(reached: pd.DataFrame, colours, out: Path) -> list[tuple[str, str]]:
    """The performance profile over the suite's (problem, target) pairs, when there is a choice to profile."""
    labels = _ordered(reached["label"])
    if len(labels) < 2 or reached.empty:
        return []
    costs = {pair: dict(row) for pair, row in profiles.pair_costs(reached, labels).iterrows()}
    (out / "performance_profile.md").write_text(
        f"Performance profile over {len(costs)} (problem, target) pairs: ρ(τ) is the share a method solves "
        "within τ× the fewest forward passes of any method (median over seeds; unreached counts as never)\n\n"
        + profiles.table(costs))
    figures.performance_profile(profiles.ratios(costs), colours, out / "performance_profile.png")
    return [("Performance profile: share of (problem, target) pairs within τ× the fewest forward passes",
             "performance_profile.md"),
            ("Performance profile (Dolan–Moré) of forward passes to target", "performance_profile.png")]


def _scaling_figure(reached: pd.DataFrame, colours, out: Path) -> list[tuple[str, str]]:
    """Forward passes to target against d and r, for a suite of low-rank quadratics of several shapes."""
    shapes = {problem: quadratic.parse(problem) for problem in reached["problem"].unique()}
    if None in shapes.values() or len({shape[:2] for shape in shapes.values()}) < 2:
        return []
    colours = dict(colours)  # a noisy variant takes its label's colour here, not in the report's palette
    noisy = reached["problem"].map(lambda problem: shapes[problem][2])
    shown = reached.assign(label=reached["label"].where(~noisy, reached["label"] + " (noisy)"))
    for label, plain in zip(shown["label"], reached["label"]):
        colours.setdefault(label, colours[plain])
    medians: dict = {}
    for (problem, target, label), cost in profiles.median_costs(shown, ["problem", "name"]).items():
        medians.setdefault(target, {}).setdefault(label, {})[shapes[problem][:2]] = cost
    figures.scaling(medians, colours, out / "scaling.png")
    return [("Forward passes to each target against d and against r (median over seeds)", "scaling.png")]


def _anneal_figure(runs, out: Path) -> list[tuple[str, str]]:
    """Figure 1, in the reports of suites that run ZO-AdaMU only."""
    if not any(spec.schedule == "adamu" for spec in runs):
        return []
    anneals = {"paper defaults (T1=1024, T2=16000, T3=20000)": PAPER_ANNEAL}
    for spec in runs:
        if spec.schedule == "adamu":
            chosen = {k: v for k, v in spec.hyperparameters.items() if k in ANNEAL_HYPERPARAMETERS}
            schedule = AnnealSchedule.for_run(spec.steps, **chosen)
            anneals[f"{spec.label} in this suite (T1={schedule.T1}, T2={schedule.T2}, T3={schedule.T3})"] = schedule
    figures.anneal_schedule(anneals, out / "anneal_schedule.png")
    return [("ZO-AdaMU's α, β1, β2 over the steps (Figure 1)", "anneal_schedule.png")]

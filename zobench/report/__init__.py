"""Reports: the suite's tables (laid out as the suite asks) and figures, linked from ``index.md``."""

from __future__ import annotations

import functools
from pathlib import Path

from ..optimizers.anneal import HYPERPARAMETERS as ANNEAL_HYPERPARAMETERS
from ..optimizers.anneal import AnnealSchedule
from ..measure import peak_bytes
from ..problems import quadratic
from ..store import ResultStore
from ..suite import RunSpec, Suite, TableLayout
from . import figures, profiles
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


def _ordered(values):
    return list(dict.fromkeys(values))


def _peak_train_mib(record: dict) -> float | None:
    value = peak_bytes(record["memory"], "train")
    return value / MIB if value is not None else None


def _metric(record: dict) -> tuple[str, bool]:
    """A run's own metric (a suite may mix accuracy and F1 tasks) and whether higher is better."""
    return record["metric"]["name"], record["metric"]["higher_is_better"]


def _targets(runs, records, logs, gap_targets) -> dict[str, list[dict]]:
    """Every run's targets, named: its absolute ones (from its record) and the suite's gap targets.

    A gap target f of a run is its initial dev metric plus f times the gap to the best dev metric
    that any run of the suite reached on the same problem.
    """
    best: dict[str, float] = {}
    for spec in runs:
        metric, higher = _metric(records[spec.key])
        values = [e["dev"][metric] for e in logs[spec.key] if "dev" in e]
        best[spec.problem] = (max if higher else min)(values + [best.get(spec.problem, values[0])])
    named = {}
    for spec in runs:
        metric, higher = _metric(records[spec.key])
        relation = "≥" if higher else "≤"
        entries = [{"name": f"{metric} {relation} {t['target']:g}", "step": t["step"],
                    "forward_passes": t["forward_passes"]} for t in records[spec.key]["targets"]]
        evaluations = [e for e in logs[spec.key] if "dev" in e]
        start = evaluations[0]["dev"][metric]
        for fraction in gap_targets:
            goal = start + fraction * (best[spec.problem] - start)
            hit = next((e for e in evaluations if (e["dev"][metric] >= goal if higher else e["dev"][metric] <= goal)),
                       None)
            entries.append({"name": f"{fraction:.0%} of the gap from the initial to the best {metric}",
                            "step": hit and hit["step"], "forward_passes": hit and hit["forward_passes"]})
        named[spec.key] = entries
    return named


def _tables(layout: TableLayout, runs: list[RunSpec], records: dict, targets: dict[str, list[dict]]) -> list[Table]:
    """The tables of one layout: one table, or one per target for the to-target quantities."""
    quantity = layout.quantity
    if quantity in ("steps_to_target", "forward_passes_to_target"):
        unit = "step" if quantity == "steps_to_target" else "forward_passes"
        names = _ordered(t["name"] for spec in runs for t in targets[spec.key])
        variants = [(f"{layout.name}_{i}", name,
                     lambda r, n=name: next(t[unit] for t in targets[r["key"]] if t["name"] == n), median_reached)
                    for i, name in enumerate(names)]
    else:
        value = {"initial_test": lambda r: r["initial"]["test"][_metric(r)[0]],
                 "final": lambda r: r["final"]["dev"][_metric(r)[0]], "selected_test": lambda r: r["selected_test"],
                 "seconds_per_step": lambda r: r["time"]["seconds_per_step_median"],
                 "peak_train_memory": _peak_train_mib}[quantity]
        metrics = {_metric(records[spec.key])[0] for spec in runs}
        percent = quantity in METRIC_QUANTITIES and metrics <= FRACTIONS  # shown as the paper shows them
        formatter = iqm_ci if layout.statistic == "iqm" else mean_std
        variants = [(layout.name, None, value, functools.partial(formatter, scale=100) if percent else formatter)]
    spread = "IQM over seeds [95% bootstrap CI]" if layout.statistic == "iqm" else "mean ± std over seeds"
    default_captions = {"initial_test": f"Test {{metric}} before training (zero-shot; {spread})",
                        "final": f"Final dev {{metric}} ({spread})",
                        "selected_test": f"Test {{metric}} at the best dev step ({spread})",
                        "seconds_per_step": "Median seconds per training step",
                        "peak_train_memory": "Peak memory of the training steps (MiB)",
                        "steps_to_target": "Steps to reach {target} "
                                           "(median over the seeds that did; reached/seeds)",
                        "forward_passes_to_target": "Forward passes to reach {target} "
                                                    "(median over the seeds that did; reached/seeds)"}
    caption = layout.caption or default_captions[quantity]
    tables = []
    for name, target, value_of, formatter in variants:
        # a gap target is named by its metric, so a suite mixing distances and accuracies has targets
        # that only some problems have: each target's table holds the runs that have it
        held = [spec for spec in runs if target is None or any(t["name"] == target for t in targets[spec.key])]
        rows = _ordered(layout.cell(spec)[0] for spec in held)
        columns = _ordered(layout.cell(spec)[1] for spec in held)
        cells: dict = {}
        seeds: dict = {}
        for spec in held:
            cells.setdefault(layout.cell(spec), []).append(value_of(records[spec.key]))
            seeds.setdefault(layout.cell(spec), []).append(spec.seed)
        text = caption.format(metric=" / ".join(sorted({_metric(records[s.key])[0] for s in held})),
                              target=target or "")
        if layout.paper:
            text += "; after the slash, the paper's value"
        tables.append(Table(name, text, " / ".join(layout.rows), rows, columns, cells, formatter, layout.paper, seeds))
    if layout.improvement:
        higher = quantity in METRIC_QUANTITIES and _metric(records[runs[0].key])[1]
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
        chosen = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in (best or {}).items())
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
    if runs:
        targets = _targets(runs, records, logs, suite.gap_targets)
        for layout in suite.tables:
            for table in _tables(layout, runs, records, targets):
                table.write(out)
                entries.append((table.caption, f"{table.name}.md"))
        colours = figures.palette(spec.label for spec in suite.runs)
        entries += _figures(runs, records, logs, targets, colours, out)
    entries += _anneal_figure(runs, out)

    diverged = [f"{spec.label} on {spec.problem}, seed {spec.seed}, at step {records[spec.key]['steps_done']}"
                for spec in runs if records[spec.key]["status"] == "diverged"]
    lines = [f"# {suite.name}", "", suite.description.strip(), "",
             f"{len(records)} of {len(suite.runs)} runs recorded; {len(diverged)} diverged"
             + (": " + "; ".join(diverged) if diverged else "") + ".", ""]
    lines += _provenance_lines([records[spec.key] for spec in runs])
    lines += _data_lines(runs, records)
    lines += _tuning_lines(suite, out)
    lines += [f"- [{caption}]({name})" for caption, name in entries]
    for caption, name in entries:
        lines += ["", (out / name).read_text() if name.endswith(".md") else f"![{caption}]({name})"]
    index = out / "index.md"
    index.write_text("\n".join(lines) + "\n")
    return index


def _provenance_lines(records: list[dict]) -> list[str]:
    """The commits the records were made at (and how many had uncommitted changes), with a warning
    when they are mixed: runs of unchanged maths are reused across commits, so a mixed report is
    sound by construction, but a reader should know which code made which numbers."""
    commits: dict[str, list[dict]] = {}
    for record in records:
        environment = record.get("environment", {})
        commits.setdefault(environment.get("git_commit") or "unknown (not a git checkout)", []).append(environment)
    if not commits:
        return []
    lines = ["Code: " + "; ".join(
        f"{commit[:12]} ({len(made)} run{'s' * (len(made) != 1)}"
        + (f", {dirty} with uncommitted changes" if (dirty := sum(bool(e.get("git_dirty")) for e in made)) else "")
        + ")" for commit, made in commits.items()) + "."]
    if len(commits) > 1:
        lines.append(f"Warning: these records come from {len(commits)} commits. Runs are reused while their "
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


def _figures(runs, records, logs, targets, colours, out: Path) -> list[tuple[str, str]]:
    entries = []
    problems = _ordered(spec.problem for spec in runs)

    if all("x" in logs[spec.key][0] for spec in runs):
        paths = {problem: {} for problem in problems}
        for spec in sorted(runs, key=lambda spec: spec.seed):
            paths[spec.problem].setdefault(spec.label, []).append([(e["x"], e["y"]) for e in logs[spec.key]])
        figures.trajectories(paths, colours, out / "trajectories.png")
        entries.append(("Trajectories over the contours of each test function (Figure 2)", "trajectories.png"))

    metric = " / ".join(sorted({_metric(records[spec.key])[0] for spec in runs}))
    finished = [spec for spec in runs if records[spec.key]["status"] != "diverged"] or runs
    values = [e["dev"][_metric(records[s.key])[0]] for s in finished for e in logs[s.key] if "dev" in e]
    log_y = not _metric(records[runs[0].key])[1] and min(values) > 0
    for split, axis, name in (("dev", "step", "steps"), ("dev", "forward_passes", "forward passes"),
                              ("test", "step", "steps")):  # test beside dev: selection on dev can overfit it
        curves, diverged = {problem: {} for problem in problems}, {problem: [] for problem in problems}
        for spec in runs:
            if records[spec.key]["status"] == "diverged":  # apart: its blown-up values would set the scale
                diverged[spec.problem].append((spec.label, logs[spec.key][-1][axis]))
                continue
            points = [(e[axis], e[split][_metric(records[spec.key])[0]]) for e in logs[spec.key] if split in e]
            curves[spec.problem].setdefault(spec.label, []).append(points)
        file = f"curves_{axis}.png" if split == "dev" else f"curves_{split}_{axis}.png"
        figures.metric_curves(curves, metric, name, log_y, colours, out / file, diverged, split)
        entries.append((f"{split.capitalize()} {metric} against {name}, IQM and 95% bootstrap CI over seeds", file))

    hits: dict[str, list] = {}
    for spec in runs:
        hits.setdefault(spec.label, []).extend(t["forward_passes"] for t in targets[spec.key])
    if any(hits.values()):
        figures.ecdf(hits, colours, out / "ecdf_forward_passes.png")
        entries.append(("ECDF of forward passes to each target, over runs and targets", "ecdf_forward_passes.png"))

    entries += _profile(runs, targets, colours, out)
    entries += _scaling_figure(runs, targets, colours, out)

    memory, time = {}, {}
    for spec in runs:
        record = records[spec.key]
        train, load = peak_bytes(record["memory"], "train"), peak_bytes(record["memory"], "load")
        if train is not None and load is not None:  # what training adds, not the process every run shares
            memory.setdefault(spec.label, []).append(max(0, train - load) / MIB)
        if record["time"]["seconds_per_step_median"] is not None:
            time.setdefault(spec.label, []).append(record["time"]["seconds_per_step_median"] * 1e3)
    on_gpu = "allocated_bytes" in records[runs[0].key]["memory"].get("train", {})
    figures.bars(memory, "MiB", "Peak memory of the training steps above the loaded model and data "
                 f"({'GPU allocated' if on_gpu else 'process RSS'})", colours, out / "peak_memory.png",
                 resolution=0.0 if on_gpu else RSS_RESOLUTION_MIB)
    figures.bars(time, "ms", "Median time per training step of each run (runs timed one after another: "
                 "machine load differs between them)", colours, out / "step_time.png")
    entries += [("Peak memory of the training steps above the loaded model and data, per optimizer", "peak_memory.png"),
                ("Median wall time per training step per optimizer", "step_time.png")]
    return entries


def _profile(runs, targets, colours, out: Path) -> list[tuple[str, str]]:
    """The performance profile over the suite's (problem, target) pairs, when there is a choice to profile."""
    costs: dict[tuple[str, str], dict[str, list]] = {}
    for spec in runs:
        for target in targets[spec.key]:
            costs.setdefault((spec.problem, target["name"]), {}).setdefault(spec.label, []).append(
                target["forward_passes"])
    labels = _ordered(spec.label for spec in runs)
    if len(labels) < 2 or not costs:
        return []
    medians = {problem: {label: profiles.median_cost(by_label.get(label, [None])) for label in labels}
               for problem, by_label in costs.items()}
    (out / "performance_profile.md").write_text(
        f"Performance profile over {len(medians)} (problem, target) pairs: ρ(τ) is the share a method solves "
        "within τ× the fewest forward passes of any method (median over seeds; unreached counts as never)\n\n"
        + profiles.table(medians))
    figures.performance_profile(profiles.ratios(medians), colours, out / "performance_profile.png")
    return [("Performance profile: share of (problem, target) pairs within τ× the fewest forward passes",
             "performance_profile.md"),
            ("Performance profile (Dolan–Moré) of forward passes to target", "performance_profile.png")]


def _scaling_figure(runs, targets, colours, out: Path) -> list[tuple[str, str]]:
    """Forward passes to target against d and r, for a suite of low-rank quadratics of several shapes."""
    shapes = {spec.problem: quadratic.parse(spec.problem) for spec in runs}
    if None in shapes.values() or len({shape[:2] for shape in shapes.values()}) < 2:
        return []
    passes: dict[str, dict[str, dict[tuple[int, int], list]]] = {}
    colours = dict(colours)  # a noisy variant takes its label's colour here, not in the report's palette
    for spec in runs:
        d, r, noisy = shapes[spec.problem]
        label = f"{spec.label} (noisy)" if noisy else spec.label
        colours.setdefault(label, colours[spec.label])
        for target in targets[spec.key]:
            passes.setdefault(target["name"], {}).setdefault(label, {}).setdefault((d, r), []).append(
                target["forward_passes"])
    medians = {target: {label: {shape: profiles.median_cost(costs) for shape, costs in by_shape.items()}
                        for label, by_shape in by_label.items()} for target, by_label in passes.items()}
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

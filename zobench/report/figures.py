"""Figures: trajectories over test-function contours (Figure 2), the anneal (Figure 1), curves,
ECDFs, profiles, scaling, bars and memory.

Every figure is laid out by matplotlib's constrained layout and saved by :func:`_save`, which wraps
titles to the canvas's width first: no text leaves the canvas at the size a report writes it
(``tests/test_report.py`` renders every kind and checks each text's extent).
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ..optimizers.anneal import AnnealSchedule  # noqa: E402
from ..problems.test_functions import TEST_FUNCTIONS  # noqa: E402
from .statistics import band  # noqa: E402


def palette(labels) -> dict[str, tuple]:
    """One colour per label, by the label's place in the suite: the same in every figure of a report,
    and an entry appended to the suite leaves the earlier colours as they were."""
    colours = plt.cm.tab10.colors + plt.cm.Dark2.colors + plt.cm.Set1.colors
    return {label: colours[i % len(colours)] for i, label in enumerate(dict.fromkeys(labels))}


def _fit(title, width_pixels: float, renderer) -> None:
    """Breaks ``title`` into lines, measured by the renderer, until it is no wider than ``width_pixels``."""
    text = title.get_text().replace("\n", " ")
    characters = len(text)
    while characters > 20 and title.get_window_extent(renderer).width > width_pixels:
        characters = int(characters * 0.9)
        title.set_text("\n".join(textwrap.wrap(text, characters)))


def _save(figure, output: Path, dpi: int) -> Path:
    """Fits the figure's and its panels' titles to their width, saves and closes the figure."""
    renderer = figure.canvas.get_renderer()
    if figure._suptitle is not None:
        _fit(figure._suptitle, 0.98 * figure.bbox.width, renderer)
    for axis in figure.axes:
        for title in (axis.title, axis._left_title, axis._right_title):
            if title.get_text():
                _fit(title, axis.get_window_extent(renderer).width, renderer)
    figure.savefig(output, dpi=dpi)
    plt.close(figure)
    return output


def _panel_grid(panels: dict[str, dict], panel_height: float):
    """A figure with one panel per problem, three to a row."""
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    return plt.subplots(rows, columns, figsize=(max(4.6 * columns, 8.0), panel_height * rows), squeeze=False,
                        layout="constrained")


def _finish_grid(figure, axes, used: int, title: str, output: Path, dpi: int) -> Path:
    """Hides unused panels, adds one legend below all panels and the title, and saves."""
    for axis in list(axes.flat)[used:]:
        axis.axis("off")
    handles, names = axes.flat[0].get_legend_handles_labels()
    columns = min(len(names), 4)
    while True:  # as many columns as fit the canvas's width
        legend = figure.legend(handles, names, loc="outside lower center", ncol=columns, frameon=False)
        if columns == 1 or legend.get_window_extent(figure.canvas.get_renderer()).width <= figure.bbox.width:
            break
        legend.remove()
        columns -= 1
    figure.suptitle(title)
    return _save(figure, output, dpi)


def trajectories(paths: dict[str, dict[str, list[list[tuple[float, float]]]]], colours: dict, output: Path) -> Path:
    """One panel per problem (2×3 for the paper's six): contours and each optimizer's paths.

    ``paths[problem][label]`` holds one list of visited (x, y) points per seed; the first seed is drawn
    solid, the others fainter.
    """
    figure, axes = _panel_grid(paths, 4.2)
    for axis, name in zip(axes.flat, paths):
        problem = TEST_FUNCTIONS[name]
        low, high = problem.domain
        grid = torch.linspace(low, high, 300, dtype=torch.float64)
        x, y = torch.meshgrid(grid, grid, indexing="xy")
        values = problem.f(x, y).numpy()
        levels = np.geomspace(max(values.min(), 1e-3) + 1e-3, values.max(), 25)
        axis.contour(x.numpy(), y.numpy(), values, levels=levels, cmap="Greys", linewidths=0.6, alpha=0.7)
        for label, seeds in paths[name].items():
            for index, points in enumerate(seeds):
                xs, ys = zip(*points)
                axis.plot(xs, ys, "-", color=colours[label], lw=1.4 if index == 0 else 0.8,
                          label=label if index == 0 else None, alpha=0.9 if index == 0 else 0.45)
                axis.plot(xs[-1], ys[-1], "o", color=colours[label], ms=4 if index == 0 else 2.5)
        axis.plot(*problem.start, "ks", ms=5)
        axis.plot(*problem.minimum, "r*", ms=13, zorder=5)
        axis.set(xlim=(low, high), ylim=(low, high), title=f"({name}) {problem.formula}", xlabel="x",
                 ylabel="y")
        axis.set_aspect("equal")
    return _finish_grid(figure, axes, len(paths), "Trajectories on the test functions "
                        "(■ start, ★ minimum, ● end; every seed, the first bold)", output, dpi=110)


def anneal_schedule(schedules: dict[str, AnnealSchedule], output: Path) -> Path:
    """α, β1, β2 of ZO-AdaMU against the step, one panel per schedule."""
    figure, axes = plt.subplots(1, len(schedules), figsize=(5.5 * len(schedules), 3.8), squeeze=False,
                                layout="constrained")
    for axis, (title, schedule) in zip(axes.flat, schedules.items()):
        steps = np.arange(1, schedule.T3 + 1)
        values = np.array([schedule(int(t)) for t in steps])
        for column, name in enumerate(("α", "β1", "β2")):
            axis.plot(steps, values[:, column], label=name)
        for boundary, tag in ((schedule.T1, "T1"), (schedule.T2, "T2")):
            axis.axvline(boundary, color="grey", ls=":", lw=1)
            axis.text(boundary, 1.04, tag, ha="center", fontsize=8)
        axis.set(title=title, xlabel="step t", ylabel="value", ylim=(-0.05, 1.1))
        axis.legend(loc="center left")
    figure.suptitle("ZO-AdaMU anneal schedule (Eq. 7)")
    return _save(figure, output, dpi=110)


def _by_label(curves: dict[str, list[list[tuple[float, float]]]]):
    """IQM over seeds and its 95% bootstrap band, of curves sampled at the same x positions; a seed that
    stopped early (diverged) drops out of the statistics from there on."""
    for label, seeds in curves.items():
        longest = max(seeds, key=len)
        xs = np.array([x for x, _ in longest])
        ys = np.full((len(seeds), len(longest)), np.nan)
        for row, points in enumerate(seeds):
            ys[row, :len(points)] = [y for _, y in points]
        yield label, xs, *band(ys)


def metric_curves(curves: dict[str, dict[str, list]], metric: str, x_label: str, log_y: bool, colours: dict,
                  output: Path, diverged: dict[str, list[tuple[str, float]]] | None = None,
                  split: str = "dev") -> Path:
    """A split's metric against ``x_label`` per problem: the IQM over seeds, with its 95% bootstrap band.

    ``curves[problem][label]`` is a list (one per seed) of (x, value) points. A label evaluated only
    at its start (zero-shot, in-context learning) is a dashed reference line across the panel.
    ``diverged[problem]`` lists (label, x) of runs left out of the curves because they diverged:
    each is an ✕ on the axis where it diverged, so it cannot stretch the scale.
    """
    figure, axes = _panel_grid(curves, 3.6)
    for axis, problem in zip(axes.flat, curves):
        for label, xs, centre, low, high in _by_label(curves[problem]):
            if len(xs) == 1:
                axis.axhline(centre[0], color=colours[label], ls="--", lw=1.1, label=f"{label} (no training)")
                continue
            axis.plot(xs, centre, color=colours[label], label=label, lw=1.3)
            axis.fill_between(xs, low, high, color=colours[label], alpha=0.2, lw=0)
        marked = set()
        for label, x in (diverged or {}).get(problem, []):
            axis.plot(x, 0.02, "x", color=colours[label], ms=8, mew=2, transform=axis.get_xaxis_transform(),
                      clip_on=False, label=None if label in marked else f"{label} diverged")
            marked.add(label)
        axis.set(title=problem, xlabel=x_label, ylabel=f"{split} {metric}")
        if log_y:
            axis.set_yscale("log")
    return _finish_grid(figure, axes, len(curves), f"{split} {metric} against {x_label} "
                        "(IQM over seeds, band: 95% bootstrap CI; ✕: a diverged run, left out)", output, dpi=100)


def scaling(costs: dict[str, dict[str, dict[tuple[int, int], float]]], colours: dict, output: Path) -> Path:
    """Forward passes to each target against the dimension d (left) and the rank r (right), log-log.

    ``costs[target][label][(d, r)]`` is the median over seeds (infinite: the median seed never got
    there, and the point is left out). A line holds the other axis fixed; its style tells which value.
    """
    styles = ["-", "--", ":", "-."]
    figure, axes = plt.subplots(len(costs), 2, figsize=(12, 4.0 * len(costs)), squeeze=False, layout="constrained")
    for row, (target, by_label) in enumerate(costs.items()):
        for column, (name, other) in enumerate((("d", "r"), ("r", "d"))):
            axis = axes[row, column]
            for label, points in by_label.items():
                for k, fixed in enumerate(sorted({shape[1 - column] for shape in points})):
                    line = sorted((shape[column], cost) for shape, cost in points.items()
                                  if shape[1 - column] == fixed and math.isfinite(cost))
                    if line:
                        axis.plot(*zip(*line), styles[k % len(styles)], marker="o", ms=4, color=colours[label],
                                  label=f"{label}, {other} = {fixed:g}")
            axis.set(xscale="log", yscale="log", xlabel=name, ylabel="forward passes (median over seeds)",
                     title=f"{target}: against {name}")
            if axis.lines:
                axis.legend(fontsize=6, ncol=2)
            else:
                axis.text(0.5, 0.5, "no shape reached this target", ha="center", transform=axis.transAxes)
    figure.suptitle("Forward passes to target on the low-rank quadratics (a missing point: not reached)")
    return _save(figure, output, dpi=75)


LEGEND_ROWS = 24  # entries a legend column holds beside a 4.2-inch-high panel at 7 points


def _beside_legend(labels) -> tuple[int, float]:
    """(columns, inches) of a legend beside one panel: a sweep's hundred labels widen the figure
    rather than squeezing the panel to nothing."""
    columns = -(-len(labels) // LEGEND_ROWS)
    return columns, 2.2 * columns


def ecdf(hits: dict[str, list[int | None]], colours: dict, output: Path) -> Path:
    """COCO-style ECDF: the fraction of (run, target) pairs reached within x forward passes."""
    columns, legend_width = _beside_legend(hits)
    figure, axis = plt.subplots(figsize=(4.6 + legend_width, 4.2), layout="constrained")
    for label, values in sorted(hits.items()):
        reached = np.sort([v for v in values if v is not None])
        if len(reached):
            fractions = np.arange(1, len(reached) + 1) / len(values)
            axis.step(np.concatenate([[reached[0]], reached]), np.concatenate([[0], fractions]), where="post",
                      color=colours[label], label=f"{label} ({len(reached)}/{len(values)})")
        else:
            axis.plot([], [], color=colours[label], label=f"{label} (0/{len(values)})")
    axis.set(xscale="log", ylim=(0, 1.02), xlabel="forward passes",
             ylabel="fraction of (run, target) pairs reached",
             title="Forward passes to reach the targets (ECDF)")
    figure.legend(fontsize=7, loc="outside right upper", ncol=columns)
    return _save(figure, output, dpi=100)


def performance_profile(ratios: dict[str, list[float]], colours: dict, output: Path) -> Path:
    """Dolan–Moré profile: for each method, the share of problems solved within τ× the cheapest method."""
    columns, legend_width = _beside_legend(ratios)
    figure, axis = plt.subplots(figsize=(6.2 + legend_width, 4.6), layout="constrained")
    finite = [r for values in ratios.values() for r in values if np.isfinite(r)]
    right = max(finite + [2.0]) * 1.5
    for i, (label, values) in enumerate(ratios.items()):
        steps = np.sort([r for r in values if np.isfinite(r)])
        taus = np.concatenate([[1.0], steps, [right]])
        shares = [np.mean(np.asarray(values) <= tau) for tau in taus]
        axis.step(taus, shares, where="post", color=colours[label], label=label,
                  linestyle=("-", "--", ":")[i // 10 % 3])  # many methods: styles tell similar colours apart
    axis.set(xscale="log", xlim=(1.0, right), ylim=(0, 1.02), xlabel="τ (forward passes to target / the fewest of any method)",
             ylabel="share of (problem, target) pairs", title="Performance profile (Dolan–Moré)")
    figure.legend(fontsize=7, loc="outside right upper", ncol=columns)
    return _save(figure, output, dpi=100)


def bars(values: dict[str, list[float]], ylabel: str, title: str, colours: dict, output: Path,
         resolution: float = 0.0) -> Path:
    """One bar per label: the median over its runs (seeds, problems), whiskers from their min to max.
    Below ``resolution`` (the measurement's noise) a grey band says that differences there are not
    measured; a figure whose every value lies in it says so in its title."""
    labels = list(values)
    medians = [float(np.median(values[label])) for label in labels]
    low = [m - min(values[label]) for m, label in zip(medians, labels)]
    high = [max(values[label]) - m for m, label in zip(medians, labels)]
    figure, axis = plt.subplots(figsize=(1.3 * len(labels) + 2.5, 3.8), layout="constrained")
    axis.bar(labels, medians, yerr=[low, high], color=[colours[label] for label in labels], capsize=3)
    axis.set(ylabel=ylabel)
    note = "Bar: median over runs; whiskers: min to max"
    if resolution:
        axis.axhspan(0, resolution, color="grey", alpha=0.25, lw=0, label=f"below resolution ({resolution:g} {ylabel})")
        axis.legend(fontsize=8, loc="upper right")
        if values and max(max(v) for v in values.values()) <= resolution:
            note = f"Every value is below the measurement's resolution ({resolution:g} {ylabel}): no difference is measured"
    axis.set_title(f"{title}. {note}", fontsize=9)
    axis.tick_params(axis="x", labelrotation=20)
    return _save(figure, output, dpi=100)


def memory_scaling(curves: dict[tuple[str, str], list[tuple[int, float]]],
                   measured: dict[str, list[tuple[int, float]]], capacities: dict[str, float], title: str,
                   output: Path, dpi: int = 120) -> Path:
    """Peak memory (GiB) against parameters, log-log: per method a solid line (the first precision
    of ``curves``' keys) and a dotted one (the second, the measured one), its measured points as
    markers, and a dashed line per GPU capacity (the paper's Figure 3)."""
    figure, axis = plt.subplots(figsize=(8, 5.5), layout="constrained")
    labels = list(dict.fromkeys(label for label, _ in curves))
    colours = dict(zip(labels, plt.cm.tab10.colors))
    precisions = list(dict.fromkeys(precision for _, precision in curves))
    for (label, precision), points in curves.items():
        solid = precision == precisions[0]
        axis.plot(*zip(*points), "-" if solid else ":", color=colours[label], label=label if solid else None,
                  linewidth=1.5 if solid else 1.0)
    for label in labels:
        if measured.get(label):
            axis.plot(*zip(*measured[label]), "o", color=colours[label])
    axis.set(xscale="log", yscale="log", xlabel="parameters", ylabel="peak memory (GiB)")
    for name, gib in capacities.items():
        axis.axhline(gib, color="grey", linestyle="--", linewidth=0.8)
        axis.annotate(name, (0.01, gib), xycoords=("axes fraction", "data"), textcoords="offset points",
                      xytext=(0, 3), fontsize=8)
    axis.set_title(title, fontsize=9)
    axis.legend(fontsize=8)
    return _save(figure, output, dpi=dpi)

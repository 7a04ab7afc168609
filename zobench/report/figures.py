"""Figures: optimizer trajectories over test-function contours (Figure 2) and the anneal (Figure 1)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ..optimizers.anneal import AnnealSchedule  # noqa: E402
from ..problems.test_functions import TEST_FUNCTIONS  # noqa: E402


def trajectories(paths: dict[str, dict[str, list[tuple[float, float]]]], output: Path) -> Path:
    """One panel per problem (2×3 for the paper's six): contours and each optimizer's path.

    ``paths[problem][label]`` is the list of visited (x, y) points of one seed.
    """
    problems = list(paths)
    columns = min(3, len(problems))
    rows = -(-len(problems) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 4.2 * rows), squeeze=False)
    labels = sorted({label for runs in paths.values() for label in runs})
    colours = dict(zip(labels, plt.cm.tab10.colors))
    for axis, name in zip(axes.flat, problems):
        problem = TEST_FUNCTIONS[name]
        low, high = problem.domain
        grid = torch.linspace(low, high, 300, dtype=torch.float64)
        x, y = torch.meshgrid(grid, grid, indexing="xy")
        values = problem.f(x, y).numpy()
        levels = np.geomspace(max(values.min(), 1e-3) + 1e-3, values.max(), 25)
        axis.contour(x.numpy(), y.numpy(), values, levels=levels, cmap="Greys", linewidths=0.6, alpha=0.7)
        for label, points in paths[name].items():
            xs, ys = zip(*points)
            axis.plot(xs, ys, "-", color=colours[label], lw=1.4, label=label, alpha=0.9)
            axis.plot(xs[-1], ys[-1], "o", color=colours[label], ms=4)
        axis.plot(*problem.start, "ks", ms=5)
        axis.plot(*problem.minimum, "r*", ms=13, zorder=5)
        axis.set(xlim=(low, high), ylim=(low, high), title=f"({name}) {problem.formula}", xlabel="x",
                 ylabel="y")
        axis.set_aspect("equal")
    for axis in list(axes.flat)[len(problems):]:
        axis.axis("off")
    handles, names = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, names, loc="lower center", ncol=min(len(names), 4), frameon=False)
    figure.suptitle("Trajectories on the test functions (■ start, ★ minimum, ● end; seed 0)")
    figure.tight_layout(rect=(0, 0.06, 1, 0.97))
    figure.savefig(output, dpi=110)
    plt.close(figure)
    return output


def anneal_schedule(schedules: dict[str, AnnealSchedule], output: Path) -> Path:
    """α, β1, β2 of ZO-AdaMU against the step, one panel per schedule."""
    figure, axes = plt.subplots(1, len(schedules), figsize=(5.5 * len(schedules), 3.8), squeeze=False)
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
    figure.tight_layout()
    figure.savefig(output, dpi=110)
    plt.close(figure)
    return output

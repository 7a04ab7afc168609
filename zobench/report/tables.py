"""Tables as markdown, LaTeX and CSV from one description.

A table is rows × columns of cells; each cell is a list of per-seed values (``None`` for a seed that
has no value, e.g. a target it never reached). Markdown and LaTeX show the IQM over seeds with its
95% bootstrap interval, ``value [low, high]`` (or ``mean ± std``, or the cell's own text), followed
by `` / <paper>`` where the paper published a value for the cell; the CSV keeps the numbers, one line
per seed, for anyone who wants to re-plot.
"""

from __future__ import annotations

import csv
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .statistics import iqm_interval


def mean_std(values: list[float | None], scale: float = 1.0) -> str:
    present = [v * scale for v in values if v is not None and math.isfinite(v)]
    if not present:
        return "—"
    if len(present) == 1:
        return f"{present[0]:.3g}"
    return f"{statistics.fmean(present):.3g} ± {statistics.stdev(present):.2g}"


def iqm_ci(values: list[float | None], scale: float = 1.0) -> str:
    estimate = iqm_interval([values])
    return estimate.text(scale) if estimate else "—"


def median_reached(values: list[float | None], number: str = ".0f") -> str:
    """Median over the seeds that reached the target (formatted by ``number``), and how many did."""
    present = [v for v in values if v is not None]
    median = format(statistics.median(present), number) if present else "—"
    return f"{median} ({len(present)}/{len(values)})"


@dataclass
class Table:
    name: str  # file stem
    caption: str
    row_header: str
    rows: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], list[float | None]]
    formatter: Callable[[list], str] = iqm_ci
    paper: dict[str, dict[str, float | str]] = field(default_factory=dict)  # row -> column -> published value
    seeds: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # the run seed of each cell value

    def _text(self, row: str, column: str) -> str:
        ours = self.formatter(self.cells.get((row, column), []))
        published = self.paper.get(row, {}).get(column)
        if published is None:
            return ours
        return f"{ours} / {published:g}" if isinstance(published, (int, float)) else f"{ours} / {published}"

    def markdown(self) -> str:
        lines = [f"| {self.row_header} | " + " | ".join(self.columns) + " |",
                 "|---" * (len(self.columns) + 1) + "|"]
        lines += [f"| {row} | " + " | ".join(self._text(row, c) for c in self.columns) + " |" for row in self.rows]
        return f"{self.caption}\n\n" + "\n".join(lines) + "\n"

    def latex(self) -> str:
        def escape(text: str) -> str:
            for char in "&%_#$":
                text = text.replace(char, "\\" + char)
            return text.replace("±", "$\\pm$").replace("—", "--")

        body = [" & ".join([escape(self.row_header)] + [escape(c) for c in self.columns]) + r" \\ \midrule"]
        body += [" & ".join([escape(row)] + [escape(self._text(row, c)) for c in self.columns]) + r" \\"
                 for row in self.rows]
        return ("\\begin{table}[t]\n\\centering\n\\caption{" + escape(self.caption) + "}\n"
                "\\begin{tabular}{l" + "c" * len(self.columns) + "}\n\\toprule\n"
                + "\n".join(body) + "\n\\bottomrule\n\\end{tabular}\n\\end{table}\n")

    def write(self, directory: Path) -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        paths = [directory / f"{self.name}.{suffix}" for suffix in ("md", "tex", "csv")]
        paths[0].write_text(self.markdown())
        paths[1].write_text(self.latex())
        with open(paths[2], "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([self.row_header, "column", "seed", "value", "paper"])
            for row in self.rows:
                for column in self.columns:
                    seeds = self.seeds.get((row, column), [])
                    for i, value in enumerate(self.cells.get((row, column), [])):
                        writer.writerow([row, column, seeds[i] if i < len(seeds) else "",
                                         "" if value is None else value, self.paper.get(row, {}).get(column, "")])
        return paths

"""The README's whole-registry step-cost table, rendered from one asv results file.

    asv run --python=same --set-commit-hash=$(git rev-parse HEAD) --bench "Registry|InferenceMemory"
    python -m benchmarks.registry_report .asv/results/<machine>/<commit>-<env>.json --write

``--write`` copies the results file to :data:`MEASURED` (the run the README shows, a few KB, kept in
git) and rewrites the README between :data:`BEGIN` and :data:`END`; a test renders the committed file
again and compares. The table takes one shape (``--shape``, MiniLM-L6 by default) and gives, per
method, its step over its own forward passes with each sampler it accepts (asv's
``RegistryStep.track_step_over_forwards``), the parameter-sized buffers it declares, and the worst
over its samplers of the step's peak resident memory over what it may hold: one forward's peak plus
its buffers, plus the shared noise table when it draws from the table (``RegistryMemory.peakmem_step``
over ``InferenceMemory.peakmem_inference``).
"""

from __future__ import annotations

import argparse
import shutil
from itertools import product
from pathlib import Path

import torch
from asv.results import Results

from benchmarks.optimizer_step import DIRECTIONS
from benchmarks.registry_step import BATCH, LENGTH, OWN, SHAPES, rows
from zobench import optimizers
from zobench.models import random_model
from zobench.optimizers.noise import TABLE_SIZE

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
MEASURED = Path(__file__).with_name("registry-step.asv.json")
BEGIN, END = "<!-- registry-step: begin -->", "<!-- registry-step: end -->"
SAMPLERS = DIRECTIONS + [OWN]
KEYS = {"ratio": "registry_step.RegistryStep.track_step_over_forwards",
        "step": "registry_step.RegistryMemory.peakmem_step",
        "inference": "registry_step.InferenceMemory.peakmem_inference"}


def _values(results: Results, key: str) -> dict[tuple[str, ...], float]:
    """{params: value} of one benchmark; a missing benchmark or a failed cell is absent."""
    for name in results.get_all_result_keys():
        if name.endswith(key):
            params = results.get_result_params(name)  # as asv stores them: repr()s
            combinations = product(*[[value.strip("'") for value in values] for values in params])
            values = zip(combinations, results.get_result_value(name, params))
            return {combination: value for combination, value in values if value is not None and value == value}  # NaN: not run
    return {}


def parameter_bytes(shape: str) -> int:
    """The shape's parameter bytes in float32, counted on the meta device (nothing allocated)."""
    model = random_model(SHAPES[shape].removeprefix("random:"), torch.float32, "meta").model
    return sum(p.numel() * 4 for p in model.parameters())


def table(path: Path, shape: str = "minilm-l6") -> str:
    results = Results.load(str(path))
    ratio, step, inference = (_values(results, key) for key in KEYS.values())
    forward_peak = inference.get((shape,))
    bytes_ = parameter_bytes(shape)
    by_method: dict[str, dict[str, tuple[float | None, float | None]]] = {}  # method -> sampler -> (ratio, peak)
    for name, sampler in rows():
        if name != "mezo-loop" and optimizers.get(name).distribution is not None:
            continue  # a plugin's rows are measured by asv, but the README shows zobench's own methods
        row = f"{name}|{sampler}"
        by_method.setdefault(name, {})[sampler] = (ratio.get((row, shape)), step.get((row, shape)))
    machine = results.params.get("machine", "?")
    lines = [f"asv run of commit `{results.commit_hash[:8]}` on `{machine}` ({results.params.get('cpu', '?')}, "
             f"{results.params.get('num_cpu', '?')} cores), shape `{SHAPES[shape]}` "
             f"({bytes_ / 4e6:.1f}M parameters), batch {BATCH} × {LENGTH}; one forward's peak "
             f"{forward_peak / 2 ** 20:.0f} MiB." if forward_peak else "",
             "",
             "| method | " + " | ".join(SAMPLERS[:-1]) + " | own sampler | buffers | peak step / (forward + buffers) |",
             "|---|" + "---|" * (len(SAMPLERS) + 2)]
    for name, cells in by_method.items():
        buffers = 0 if name == "mezo-loop" else optimizers.get(name).state_buffers
        worst = []
        for sampler, (_, peak) in cells.items():
            if peak is not None and forward_peak:
                allowed = forward_peak + buffers * bytes_ + (4 * TABLE_SIZE if sampler == "table" else 0)
                worst.append(peak / allowed)
        shown = [f"{cells[s][0]:.2f}" if s in cells and cells[s][0] is not None else ("—" if s in cells else "")
                 for s in SAMPLERS]
        lines.append(f"| `{name}` | " + " | ".join(shown) + f" | {buffers} | "
                     + (f"{max(worst):.2f}" if worst else "—") + " |")
    return "\n".join(lines)


def write_readme(text: str, readme: Path = README) -> None:
    content = readme.read_text()
    start, stop = content.index(BEGIN) + len(BEGIN), content.index(END)
    readme.write_text(content[:start] + "\n" + text + "\n" + content[stop:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="?", type=Path, default=MEASURED, help="an asv results file")
    parser.add_argument("--shape", default="minilm-l6", choices=list(SHAPES))
    parser.add_argument("--write", action="store_true", help=f"keep the file as {MEASURED.name} and rewrite the README")
    args = parser.parse_args()
    if args.write and args.results.resolve() != MEASURED.resolve():
        shutil.copyfile(args.results, MEASURED)
    text = table(MEASURED if args.write else args.results, args.shape)
    if args.write:
        write_readme(text)
    print(text)


if __name__ == "__main__":
    main()

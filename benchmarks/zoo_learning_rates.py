"""Picks each method's learning rate per test function from the zoo's sweep, and prints suites/zoo.yaml.

    python -m zobench run suites/zoo-sweep-functions.yaml --out OUT
    python benchmarks/zoo_learning_rates.py OUT/zoo-sweep-functions > suites/zoo.yaml

The choice: the grid value with the least final distance to the optimum (the test functions have no
separate test split, so dev is all there is); a diverged run is never chosen; ties go to the smaller
learning rate. Every method gets the same grid size (7 values), FZOO's scaled by its ε.
"""

import json
import sys
from pathlib import Path

from zobench.suite import load_suite

SWEEP = Path(__file__).parents[1] / "suites" / "zoo-sweep-functions.yaml"

HEADER = """name: zoo
description: >
  Every registered zeroth-order method (and the forward gradient) on the six test functions of the
  paper's Figure 2, from a common start, 1000 steps, seeds 0-2. Each method's learning rate per
  function is the best of the same-size grid by final distance at seed 0 (suites/zoo-sweep-functions.yaml,
  chosen by benchmarks/zoo_learning_rates.py). Targets are gap targets: 50 % and 90 % of the way
  from the start to the best distance any run reached on the function.
problems: [a, b, c, d, beale, rosenbrock]
optimizers:
"""
FOOTER = """seeds: [0, 1, 2]
budget: {steps: 1000, eval_every: 10}
targets: ["50%", "90%"]
report:
  tables:
    - {name: final_distance, quantity: final, rows: problem, columns: label}
    - {name: forward_passes_to_target, quantity: forward_passes_to_target, rows: problem, columns: label}
    - {name: peak_train_memory, quantity: peak_train_memory, rows: problem, columns: label}
"""


def main(folder: Path) -> None:
    best: dict[tuple[str, str], tuple[float, float]] = {}
    extra: dict[str, dict] = {}
    sweep = load_suite(SWEEP)
    order = list(dict.fromkeys(spec.optimizer for spec in sweep.runs))
    problems = list(dict.fromkeys(spec.problem for spec in sweep.runs))
    for path in sorted((folder / "runs").glob("*.json")):
        record = json.loads(path.read_text())
        spec = record["spec"]
        name, lr = spec["optimizer"], spec["hyperparameters"]["lr"]
        extra[name] = {k: v for k, v in spec["hyperparameters"].items() if k != "lr"}
        if record["status"] == "diverged":
            continue
        distance = record["final"]["dev"]["distance"]
        key = (name, spec["problem"])
        if key not in best or (distance, lr) < best[key]:
            best[key] = (distance, lr)
    lines = [HEADER.rstrip("\n")]
    for name in order:
        chosen = {problem: best[name, problem][1] for problem in problems}
        settings = "".join(f", {k}: {v}" for k, v in extra[name].items())
        overrides = ", ".join(f"{problem}: {{lr: {lr!r}}}" for problem, lr in chosen.items())
        lines.append(f"  - {{name: {name}, label: {name}, lr: {chosen['a']!r}{settings},\n"
                     f"     overrides: {{{overrides}}}}}")
    print("\n".join(lines) + "\n" + FOOTER, end="")


if __name__ == "__main__":
    main(Path(sys.argv[1]))

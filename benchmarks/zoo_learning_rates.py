"""Picks each method's learning rate per zoo problem from the zoo's sweeps, and prints suites/zoo.yaml.

    python -m zobench run suites/zoo-sweep-functions.yaml
    python -m zobench run suites/zoo-sweep-sst2.yaml
    python benchmarks/zoo_learning_rates.py reports/zoo-sweep-functions reports/zoo-sweep-sst2 > suites/zoo.yaml

The choice: the grid value with the best final dev metric — the least distance to the optimum on a
test function (which has no separate test split), the highest dev accuracy on SST-2 (test is never
read) —; a diverged run is never chosen; ties go to the smaller learning rate. Every method gets the
same grid size on a problem (7 values on the functions, 5 on SST-2), FZOO's and GRZO's scaled by ε.
"""

import json
import sys
from pathlib import Path

from zobench.suite import load_suite

SUITES = Path(__file__).parents[1] / "suites"
SWEEPS = [SUITES / "zoo-sweep-functions.yaml", SUITES / "zoo-sweep-sst2.yaml"]

HEADER = """# yaml-language-server: $schema=../zobench/schemas/suite.schema.json
name: zoo
description: >
  Every registered zeroth-order method (and the forward gradient) on the six test functions of the
  paper's Figure 2 and on SST-2 head tuning (the quickstart's problem), 1000 steps, seeds 0-2. Each
  method's learning rate per problem is the best of a same-size grid by final dev metric at seed 0
  (suites/zoo-sweep-functions.yaml and suites/zoo-sweep-sst2.yaml, chosen by
  benchmarks/zoo_learning_rates.py). Targets are gap targets: 50 % and 90 % of the way from the
  start to the best dev metric any run reached on the problem.
problems: [a, b, c, d, beale, rosenbrock]
tasks: [sst2]
models: [minilm-l6]
data_dir: ../../shared/data
data: {protocol: mezo, num_train: 1000, num_dev: 500, num_test: 1000, batch_size: 16}
peft: head
optimizers:
"""
FOOTER = """seeds: [0, 1, 2]
budget: {steps: 1000, eval_every: 10}
targets: ["50%", "90%"]
report:
  tables:
    - {name: final_dev, quantity: final, rows: problem, columns: label}
    - {name: forward_passes_to_target, quantity: forward_passes_to_target, rows: problem, columns: label}
    - {name: peak_train_memory, quantity: peak_train_memory, rows: problem, columns: label}
"""


def chosen_settings(folders: list[Path]) -> dict[tuple[str, str], dict]:
    """{(method, problem): the hyperparameters of its best sweep run} from the sweeps' run records."""
    best: dict[tuple[str, str], tuple[float, float, dict]] = {}
    for folder in folders:
        for path in sorted((folder / "runs").glob("*.json")):
            record = json.loads(path.read_text())
            spec = record["spec"]
            if record["status"] == "diverged":
                continue
            metric, higher = record["metric"]["name"], record["metric"]["higher_is_better"]
            loss = -record["final"]["dev"][metric] if higher else record["final"]["dev"][metric]
            key, lr = (spec["optimizer"], spec["problem"]), spec["hyperparameters"]["lr"]
            if key not in best or (loss, lr) < best[key][:2]:
                best[key] = (loss, lr, spec["hyperparameters"])
    return {key: hyperparameters for key, (_, _, hyperparameters) in best.items()}


def _mapping(values: dict) -> str:
    return ", ".join(f"{key}: {value!r}" for key, value in values.items())


def main(folders: list[Path]) -> None:
    chosen = chosen_settings(folders)
    runs = [run for sweep in SWEEPS for run in load_suite(sweep).runs]
    order = list(dict.fromkeys(run.optimizer for run in runs))
    problems = list(dict.fromkeys(run.problem for run in runs))
    lines = [HEADER.rstrip("\n")]
    for name in order:
        base = chosen[name, problems[0]]
        overrides = ", ".join(
            f"{problem}: {{{_mapping({k: v for k, v in chosen[name, problem].items() if k == 'lr' or base.get(k) != v})}}}"
            for problem in problems)
        lines.append(f"  - {{name: {name}, label: {name}, {_mapping(base)},\n     overrides: {{{overrides}}}}}")
    print("\n".join(lines) + "\n" + FOOTER, end="")


if __name__ == "__main__":
    main([Path(folder) for folder in sys.argv[1:]])

"""asv tracks of what the optimizers achieve: forward passes to a target and error after a budget.

Each class runs its suite once (``setup_cache``) and several ``track_`` methods read the results,
the asv idiom for one expensive run with many numbers. All are lower-is-better: forward passes,
distance to the optimum, error rate (1 - accuracy), never accuracy itself.
"""

import statistics
import tempfile
from pathlib import Path

from zobench.harness import execute
from zobench.store import ResultStore
from zobench.suite import load_suite

SUITES = Path(__file__).resolve().parents[1] / "suites"


def _run(name):
    suite = load_suite(SUITES / f"{name}.yaml")
    store = ResultStore(Path(tempfile.mkdtemp(prefix="zobench-asv-")) / suite.name)
    execute(suite, store, quiet=True)
    return {spec.key: (spec, store.record(spec.key)) for spec in suite.runs}


def _median(results, label, problem, value):
    return statistics.median(value(r) for spec, r in results.values() if spec.label == label and spec.problem == problem)


class TestFunctions:
    """The Figure 2 suite: forward passes to distance 0.1 (the budget when never reached), final distance."""

    params = (["Adam", "AdaMax", "MeZO", "ZO-AdaMU"], ["a", "b", "c", "d", "beale", "rosenbrock"])
    param_names = ["optimizer", "problem"]
    timeout = 600

    def setup_cache(self):
        return _run("figure2")

    def track_forward_passes_to_target(self, results, label, problem):
        def passes(record):
            hit = record["targets"][0]
            return hit["forward_passes"] if hit["reached"] else record["forward_passes"]
        return _median(results, label, problem, passes)

    track_forward_passes_to_target.unit = "forward passes"

    def track_final_distance(self, results, label, problem):
        return _median(results, label, problem, lambda record: record["final"]["dev"]["distance"])

    track_final_distance.unit = "distance"


class SmallTask:
    """The CI suite (MiniLM head tuning on SST-2): test error rate at the best dev step."""

    params = ["MeZO", "Adam g"]
    param_names = ["optimizer"]
    timeout = 600

    def setup_cache(self):
        return _run("ci")

    def track_test_error_rate(self, results, label):
        return _median(results, label, "sst2", lambda record: 1.0 - record["selected_test"])

    track_test_error_rate.unit = "error rate"

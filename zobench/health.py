"""A run's numerical health, read from its step log: problems that a NaN check does not catch.

* ``growth`` — the training loss exceeded :data:`GROWTH` times its first value (a first value above 0;
  negated metrics are left alone). A quadratic blown up to 1e24 never turns NaN, yet it diverged.
* ``collapse`` — :data:`FLAT_WINDOW` steps in a row were flat: every loss a step evaluated was the same
  value (so ĝ = 0 exactly; ZO-AdaMU at the paper's rate on SST-2 sat at ln 2 this way), or, for a
  step without a record (first-order), its loss equalled the previous step's bit for bit.
* ``drift`` — in fp16 or bf16, one perturb–restore cycle left θ more than :data:`DRIFT_LIMIT` unit
  roundoffs from where it started (:meth:`~zobench.optimizers.ZerothOrder.restore_drift`, measured at
  each evaluation and logged as ``drift``). A cycle's three adds each round at θ's scale, so a sound
  cycle leaves about 1 u (measured 0.9–1.7 u on fp16 and bf16 weights of scale 0.001–1 with ε from
  1e-3 to 0.1); past 4 u the probe ε·d has swamped θ's precision, and the restore cannot bring θ back:
  the steps then move θ by rounding as much as by the estimate.

Each flag names the step where the problem began. A target counts only if the run reached it before
that step (:func:`zobench.targets.before`): a run that collapses from its first step reaches nothing,
while one that converged to its minimum, where ĝ is 0 too, keeps what it reached on the way. The
report lists flagged runs beside the diverged ones. Because the flags are a function of the log, a
resumed run is flagged exactly as an uninterrupted one.
"""

from __future__ import annotations

import math

GROWTH = 100.0
FLAT_WINDOW = 20
DRIFT_LIMIT = 4.0  # unit roundoffs a perturb–restore cycle may leave (see the module docstring)


def flags(history: list[dict]) -> dict[str, dict]:
    """{flag: {"step": where it began, …}} for the log ``history`` (step 0 first)."""
    steps = [entry for entry in history[1:] if entry.get("loss") is not None and math.isfinite(entry["loss"])]
    found = {}
    if steps and steps[0]["loss"] > 0:
        start = steps[0]["loss"]
        grown = next((e for e in steps if e["loss"] > GROWTH * start), None)
        if grown is not None:
            found["growth"] = {"step": grown["step"], "loss": grown["loss"], "start": start, "factor": GROWTH}
    run, previous = [], None
    for entry in history[1:]:
        if _flat(entry, previous):
            run.append(entry["step"])
            if len(run) == FLAT_WINDOW:
                found["collapse"] = {"step": run[0], "window": FLAT_WINDOW}
                break
        else:
            run = []
        previous = entry
    drifted = next((e for e in history if e.get("drift", 0.0) > DRIFT_LIMIT), None)
    if drifted is not None:
        found["drift"] = {"step": drifted["step"], "drift": drifted["drift"], "limit": DRIFT_LIMIT}
    return found


def summary(found: dict[str, dict]) -> str:
    """The flags as a report prints them: ``growth from step 22, collapse from step 31``."""
    return ", ".join(f"{flag} from step {flag_found['step']}" for flag, flag_found in found.items())


def flagged_at(found: dict[str, dict]) -> int | None:
    """The step where the first of the flags ``found`` began (None: a sound run): targets count before it."""
    return min((flag["step"] for flag in found.values()), default=None)


def _flat(entry: dict, previous: dict | None) -> bool:
    evaluations = entry.get("record", {}).get("evaluations")
    if evaluations and len(evaluations) > 1 and all(isinstance(v, (int, float)) for v in evaluations):
        return len(set(evaluations)) == 1
    return previous is not None and entry.get("loss") is not None and entry.get("loss") == previous.get("loss")

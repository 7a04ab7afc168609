"""Benchmark tracks, as AlgoPerf defines them (Dahl et al., "Benchmarking Neural Network Training
Algorithms", 2023): how much tuning each method gets, declared by the suite (``track:``), so that a
table compares methods on equal terms and says which terms.

* ``external`` — every method is tuned on dev, with the same trials and trial budget, over the track's
  search space: the suite's ``tune.space``, or ``tune.families.<family>`` for the methods of that
  registry family (``zo``, ``fo``, ``fg``), since a first-order learning rate and a zeroth-order one
  live on different scales, or ``tune.families.<name>`` for one method whose rate means something else
  (FZOO's normalised step is about 1/ε larger for the same rate). An entry may not bring its own ``tune:`` block, nor fix a hyperparameter
  the space searches: the space is the track's, not the method's. The best trial's values then run
  over the suite's seeds.
* ``self-tuning`` — no tuning at all: one configuration per method, as its author would set it, and
  1.5× the budget (steps, forward passes and seconds), AlgoPerf's allowance for a method that must
  find its own settings while it trains.

Either way a method is scored by what it costs to reach each validation target (forward passes, and
separately seconds), ∞ when it never does (:mod:`zobench.report.track`). The targets themselves come,
as in AlgoPerf, from a strong baseline tuned with a larger budget and rerun over seeds, and are stored
beside the suite (``baseline_targets:``; written by ``zobench targets``), so every method chases the
same number.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
from pathlib import Path

import yaml
from pydantic import ValidationError

from .optimizers import REGISTRY, UnknownOptimizerError
from .schema import Declared, Number, one_line
from .spec import RunSettings, SuiteError
from .suite_references import fail
from .yaml_files import YamlFileError, load_yaml

NAMES = {"external": "external-tuning track", "self-tuning": "self-tuning track"}  # the suite file's TRACKS
SELF_TUNING_BUDGET = 1.5
FAMILIES = ("zo", "fo", "fg")


def check_document(where: str, document: dict) -> None:
    """The track's rules that the file alone decides (the rest needs the expanded entries: :func:`check_entries`)."""
    track = document.get("track")
    if track is None:
        if "families" in document.get("tune", {}):
            fail(f"{where}: tune.families", "belongs to the external-tuning track; add track: external")
        return
    for family in document.get("tune", {}).get("families", {}):
        if family not in FAMILIES:
            try:
                REGISTRY.get(family)
            except UnknownOptimizerError as error:
                fail(f"{where}: tune.families.{family}", f"neither a family ({', '.join(FAMILIES)}) nor {error}")
    tuned = [i for i, entry in enumerate(document["optimizers"]) if "tune" in entry]
    if track == "external":
        if not (document.get("tune", {}).get("space") or document.get("tune", {}).get("families")):
            fail(f"{where}: tune", "the external-tuning track tunes every method on the track's space: give "
                                   "tune.space (and tune.families.<zo|fo|fg> where a family needs its own)")
        if tuned:
            fail(f"{where}: optimizers[{tuned[0]}].tune", "the external-tuning track's space is the same for every "
                                                          "method of a family; remove the entry's tune block")
    elif "tune" in document or tuned:
        at = "tune" if "tune" in document else f"optimizers[{tuned[0]}].tune"
        fail(f"{where}: {at}", "the self-tuning track runs each method once, untuned; remove the tune block "
                               "(or use track: external)")


def space_for(tune: dict, info) -> dict:
    """The suite's tune block as the registered optimizer ``info`` sees it: the space the track gives its
    name, else its family's, else the suite's."""
    block = {key: value for key, value in tune.items() if key != "families"}
    families = tune.get("families", {})
    for key in (info.name, info.family):
        if key in families:
            block["space"] = families[key]
            break
    return block


def check_entries(where: str, track: str | None, configurations: list) -> list:
    """Every entry tuned (external) or one configuration each (self-tuning); returns the configurations,
    with the self-tuning track's 1.5× budget."""
    if track == "external":
        untuned = next((c for c in configurations if c.tune is None), None)
        if untuned is not None:
            fail(f"{where}: optimizers[{untuned.entry}]", f"{untuned.optimizer} leaves nothing of the track's space "
                                                          "unset, so it would run untuned; leave its searched "
                                                          "hyperparameters (e.g. lr) to the track")
    if track == "self-tuning":
        entries = [c.entry for c in configurations]
        repeated = next((entry for entry in entries if entries.count(entry) > 1), None)
        if repeated is not None:
            fail(f"{where}: optimizers[{repeated}]", "the self-tuning track runs one configuration per method; "
                                                     "give each hyperparameter one value")
        return [dataclasses.replace(c, settings=_more_budget(c.settings)) for c in configurations]
    return configurations


def _more_budget(settings: RunSettings) -> RunSettings:
    """The self-tuning allowance: 1.5× the steps, forward passes and seconds (evaluated as often)."""
    scaled = {name: value and math.ceil(SELF_TUNING_BUDGET * value) for name, value in
              (("steps", settings.steps), ("forward_passes", settings.forward_passes))}
    seconds = settings.seconds and SELF_TUNING_BUDGET * settings.seconds
    return dataclasses.replace(settings, **scaled, seconds=seconds)


class BaselineTarget(Declared):
    problem: str
    model: str = ""  # empty for the test functions
    peft: str = "none"
    value: Number


class BaselineTargets(Declared):
    """A baseline's targets, as ``zobench targets`` writes them beside a suite."""

    baseline: dict = {}  # provenance: the suite, label, seeds and statistic they came from
    targets: list[BaselineTarget]


def baseline_targets(where: str, path: Path) -> dict[tuple[str, str, str], float]:
    """``{(problem, model, peft): target}`` from a targets file; one line naming the fix if it cannot be read."""
    if not path.is_file():
        fail(f"{where}: baseline_targets", f"{path} does not exist; write it with zobench targets BASELINE_SUITE "
                                           f"--out {path}")
    try:
        declared = BaselineTargets.model_validate(load_yaml(path))
    except YamlFileError as error:
        raise SuiteError(str(error)) from None
    except ValidationError as error:
        raise SuiteError(one_line(error, path.name, BaselineTargets)) from None
    return {(t.problem, t.model, t.peft): float(t.value) for t in declared.targets}


def check_baseline(where: str, baseline: dict, pairs: list[tuple[str, str]], configurations: list) -> None:
    """Every (problem, model, PEFT mode) the suite runs has a baseline target."""
    for problem, model in pairs:
        for configuration in configurations:
            peft = configuration.settings.peft if model else "none"
            if (problem, model, peft) not in baseline:
                on = f" on {model} with peft {peft}" if model else ""
                fail(f"{where}: baseline_targets", f"has no target for {problem}{on}; run the baseline suite on it "
                                                   "and write the file again with zobench targets")


def write_baseline_targets(suite, store, labels: list[str] | None, to: Path) -> list[dict]:
    """Writes ``to``: per (problem, model, PEFT mode) of the baseline suite's runs labelled ``labels``
    (default: its only label), the median over seeds of the best dev metric each run reached (AlgoPerf
    sets its targets from the baseline's validation results rerun over seeds). Refuses in one line
    while a run is unrecorded, or when two labels give the same problem a target."""
    known = list(dict.fromkeys(spec.label for spec in suite.runs))
    if not labels:
        if len(known) != 1:
            raise SuiteError(f"{suite.source.name}: runs {len(known)} labels ({', '.join(known)}); name the baseline "
                             "with --label")
        labels = known
    unknown = [label for label in labels if label not in known]
    if unknown:
        raise SuiteError(f"{suite.source.name}: no run is labelled {unknown[0]!r}; labels: {', '.join(known)}")
    runs = [spec for spec in suite.runs if spec.label in labels]
    missing = [spec for spec in runs if not store.record(spec.key)]
    if missing:
        raise SuiteError(f"{suite.source.name}: {len(missing)} of the baseline's {len(runs)} runs are not recorded "
                         f"under {store.root}; run the suite first")
    best: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    for spec in runs:
        by_label = best.setdefault((spec.problem, spec.model, spec.peft), {})
        by_label.setdefault(spec.label, []).append(store.record(spec.key)["best_dev"]["value"])
    clash = next((key for key, by_label in best.items() if len(by_label) > 1), None)
    if clash is not None:
        raise SuiteError(f"{suite.source.name}: labels {', '.join(best[clash])} both run {clash[0]} with the same model "
                         "and PEFT mode; give one --label per problem")
    found = [{"problem": problem, "model": model, "peft": peft,
              "value": float(statistics.median(next(iter(by_label.values()))))}
             for (problem, model, peft), by_label in best.items()]
    document = {"baseline": {"suite": suite.name, "labels": labels, "seeds": sorted({spec.seed for spec in runs}),
                             "statistic": "median over seeds of the best dev metric"}, "targets": found}
    to.parent.mkdir(parents=True, exist_ok=True)
    from .file_schemas import SHIPPED  # the schema an editor checks the file against, named on its first line

    schema = os.path.relpath(SHIPPED / "baseline-targets.schema.json", to.parent.resolve())
    to.write_text(f"# yaml-language-server: $schema={schema}\n"
                  "# written by zobench targets; a suite names this file under baseline_targets:\n"
                  + yaml.safe_dump(document, sort_keys=False))
    return found

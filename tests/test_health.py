"""Numerical-health flags (zobench.health): a loss grown far past its start and a step estimate stuck
at zero are flagged at the step they began, and a target counts only before its flag."""

import math
import re

import pytest
import torch

from zobench import health, optimizers, targets
from zobench.harness import execute
from zobench.optimizers.noise import step_seed
from zobench.store import ResultStore
from zobench.suite import load_suite


def log(losses, evaluations=None):
    """A step log: step 0 with dev, then one entry per loss (with the step's evaluations if given)."""
    entries = [{"step": 0, "forward_passes": 0, "dev": {"loss": losses[0]}}]
    for step, loss in enumerate(losses, start=1):
        entry = {"step": step, "forward_passes": 2 * step, "loss": loss, "dev": {"loss": loss}}
        if evaluations is not None:
            entry["record"] = {"seed": step, "evaluations": evaluations(step)}
        entries.append(entry)
    return entries


def test_growth_is_flagged_where_the_loss_passed_a_hundred_times_its_start():
    losses = [2.0, 1.5, 3.0, 150.0, 201.0, 1e24]
    assert health.flags(log(losses)) == {"growth": {"step": 5, "loss": 201.0, "start": 2.0, "factor": 100.0}}
    assert health.flags(log([-0.5, -3.0, -90.0])) == {}  # a negated metric has no "start" to grow from


def test_collapse_is_twenty_flat_steps_in_a_row():
    steady = [0.6931] * 30
    flat_from_5 = log(steady, lambda step: [0.7, 0.69] if step < 5 else [0.6931, 0.6931])
    assert health.flags(flat_from_5) == {"collapse": {"step": 5, "window": 20}}
    nineteen = log(steady[:23], lambda step: [0.7, 0.69] if step < 5 else [0.6931, 0.6931])
    assert health.flags(nineteen) == {}
    # without step records (first order): the loss repeating bit for bit
    assert health.flags(log([1.0, 0.9] + [0.5] * 21)) == {"collapse": {"step": 4, "window": 20}}


def test_a_target_counts_only_before_the_flag():
    history = log([1.0, 0.5, 0.1, 0.05, 0.01])
    reached = targets.absolute(history, [0.1], "loss", higher=False)
    assert reached[0]["step"] == 3
    assert targets.absolute(history, [0.1], "loss", higher=False, flagged_at=3)[0]["reached"] is False
    assert targets.absolute(history, [0.1], "loss", higher=False, flagged_at=4)[0]["step"] == 3


GROWS = """name: grows
problems: [quadratic-d1000-r8]
optimizers:
  - {name: zo-sgd, label: MeZO, lr: 5.0}
seeds: [0]
budget: {steps: 40, eval_every: 10}
targets: [1.0e+30]
"""


def test_a_blown_up_run_is_flagged_and_reaches_no_target(tmp_path):
    """MeZO at a rate far too large on a quadratic: the loss grows by orders of magnitude without
    turning NaN, so the run 'finishes'; the record flags it and its lax target does not count."""
    (tmp_path / "grows.yaml").write_text(GROWS)
    suite = load_suite(tmp_path / "grows.yaml")
    store = ResultStore(tmp_path / "out")
    assert execute(suite, store, quiet=True) == []
    (record,) = store.records()
    assert record["status"] == "finished" and "growth" in record["health"]
    grown_at = record["health"]["growth"]["step"]
    assert [e["loss"] for e in store.read_log(record["key"]) if e["step"] == grown_at][0] > 100 * \
        store.read_log(record["key"])[1]["loss"]
    assert record["targets"][0]["step"] == 0  # reached at the start, before the flag: it counts
    # once the loss is large enough, float32 may round both probes' losses alike (ĝ = 0): a collapse
    # after the growth, which a CPU's last bits decide (it happens on some machines, not others)
    assert set(record["health"]) <= {"growth", "collapse"}
    assert record["health"].get("collapse", {"step": math.inf})["step"] > grown_at
    from zobench.results import load

    (flags,) = load(tmp_path / "out")["flags"].tolist()
    assert f"growth from step {grown_at}" in flags.split(", ")


def test_drift_is_flagged_where_a_cycle_left_more_than_the_limit():
    history = log([1.0, 0.9, 0.8, 0.7])
    history[2]["drift"], history[4]["drift"] = 1.1, 37.0
    assert health.flags(history) == {"drift": {"step": 4, "drift": 37.0, "limit": health.DRIFT_LIMIT}}
    history[4]["drift"] = health.DRIFT_LIMIT
    assert health.flags(history) == {}


def _cycle_drift(dtype, eps, scale):
    """restore_drift of MeZO on one tensor of N(0, scale²) entries, and the tensor before and after."""
    torch.manual_seed(0)
    param = torch.nn.Parameter((torch.randn(4096, dtype=torch.float64) * scale).to(dtype))
    before = param.detach().clone()
    drift = optimizers.create("zo-sgd", [param], lr=0.1, eps=eps).restore_drift()
    assert torch.equal(param.detach(), before), "the audit puts θ back bit for bit"
    return drift


def test_restore_drift_matches_an_independent_cycle_and_leaves_theta_alone():
    """A sound fp16 or bf16 cycle drifts about one unit roundoff; a probe far larger than θ (ε = 1 on
    weights of 0.01) loses θ's bits, tens of units. fp32 is measured the same way."""
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        u = torch.finfo(dtype).eps / 2
        sound, swamped = _cycle_drift(dtype, 1e-3, 0.05), _cycle_drift(dtype, 1.0, 0.01)
        assert 0.3 < sound < health.DRIFT_LIMIT < swamped
        # the same cycle restated: the optimizer's first probe is its stream's first draw for step 1
        torch.manual_seed(0)
        theta = (torch.randn(4096, dtype=torch.float64) * 0.01).to(dtype)
        z = torch.randn(4096, generator=torch.Generator().manual_seed(step_seed(0, 1)), dtype=dtype)
        cycled = theta.clone().add_(z, alpha=1.0).add_(z, alpha=-2.0).add_(z, alpha=1.0)
        expected = float((cycled.double() - theta.double()).norm() / theta.double().norm()) / u
        assert swamped == pytest.approx(expected, rel=1e-12)


DRIFTS = """name: drifts
problems: [quadratic-d1000-r8]
optimizers:
  - {name: zo-sgd, label: MeZO, lr: 1.0e-3, eps: 1.0}
seeds: [0]
dtype: float16
budget: {steps: 20, eval_every: 10}
targets: [1.0e+30]
"""


def test_an_fp16_run_whose_probe_swamps_theta_is_flagged(tmp_path):
    """fp16 MeZO with ε = 1 on a quadratic whose entries are far smaller: the log carries the drift at each
    evaluation, the record flags it from the first, and the target (met at step 0) still counts."""
    (tmp_path / "drifts.yaml").write_text(DRIFTS)
    store = ResultStore(tmp_path / "out")
    assert execute(load_suite(tmp_path / "drifts.yaml"), store, quiet=True) == []
    (record,) = store.records()
    drifts = [e["drift"] for e in store.read_log(record["key"]) if "drift" in e]
    assert len(drifts) == 2 and min(drifts) > health.DRIFT_LIMIT
    assert record["health"]["drift"]["step"] == 10
    sound = DRIFTS.replace("eps: 1.0", "eps: 1.0e-3").replace("name: drifts", "name: sound")
    (tmp_path / "sound.yaml").write_text(sound)
    store = ResultStore(tmp_path / "sound")
    assert execute(load_suite(tmp_path / "sound.yaml"), store, quiet=True) == []
    (record,) = store.records()
    assert "drift" not in record["health"]
    assert all(e["drift"] < health.DRIFT_LIMIT for e in store.read_log(record["key"]) if "drift" in e)


def test_a_report_flags_a_record_written_before_its_flag_existed(tmp_path):
    """A record from before the health flags (``health`` empty) is flagged by its report all the same:
    the flags are read from the log."""
    import json

    from zobench.report import write_report

    (tmp_path / "grows.yaml").write_text(GROWS)
    suite = load_suite(tmp_path / "grows.yaml")
    store = ResultStore(tmp_path / "out")
    assert execute(suite, store, quiet=True) == []
    (record,) = store.records()
    grown_at = record["health"]["growth"]["step"]
    path = store.root / "runs" / f"{record['key']}.json"
    old = json.loads(path.read_text()) | {"health": {}}
    path.write_text(json.dumps(old))
    index = write_report(suite, store).read_text()
    flagged = re.search(r"zo-sgd on quadratic-d1000-r8, seed 0 \(([^)]*)\)", index.replace("MeZO", "zo-sgd"))
    assert flagged and f"growth from step {grown_at}" in flagged.group(1).split(", "), index

"""Learning-rate schedules: the factors against Hugging Face's and torch's schedulers, bad declarations
refused in one line, ZO and first-order optimizers stepping with them as their stock counterparts do,
and a suite that declares and tunes them."""

import copy
import textwrap

import pytest
import torch
import transformers

from zobench import harness, optimizers, tuning
from zobench.optimizers.lr_schedules import learning_rate_schedule
from zobench.store import ResultStore
from zobench.suite import SuiteError, load_suite

TOTAL, WARMUP = 37, 6


def _lrs(scheduler, steps: int = TOTAL + 3) -> list[float]:
    """The learning rate a torch scheduler gives each step k = 0, 1, … (base rate 1)."""
    rates = []
    for _ in range(steps):
        rates.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return rates


def _optimizer():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)


HUGGING_FACE = [
    ({"name": "constant", "warmup": WARMUP},
     lambda o: transformers.get_constant_schedule_with_warmup(o, WARMUP)),
    ({"name": "linear", "warmup": WARMUP}, lambda o: transformers.get_linear_schedule_with_warmup(o, WARMUP, TOTAL)),
    ({"name": "cosine", "warmup": WARMUP}, lambda o: transformers.get_cosine_schedule_with_warmup(o, WARMUP, TOTAL)),
    ({"name": "cosine"}, lambda o: transformers.get_cosine_schedule_with_warmup(o, 0, TOTAL)),
    ({"name": "cosine", "warmup": WARMUP, "final": 0.1},
     lambda o: transformers.get_cosine_with_min_lr_schedule_with_warmup(o, WARMUP, TOTAL, min_lr_rate=0.1)),
]


@pytest.mark.parametrize("declared, reference", HUGGING_FACE, ids=["constant", "linear", "cosine", "cosine-0",
                                                                   "cosine-final"])
def test_factors_are_hugging_faces(declared, reference):
    """The same formulas in the same order: equal to the last bit, over warm-up, decay and beyond T."""
    schedule = learning_rate_schedule(declared, TOTAL)
    assert [schedule.factor(k) for k in range(TOTAL + 3)] == _lrs(reference(_optimizer()))


def test_step_decay_is_torchs_step_lr_after_the_warm_up():
    schedule = learning_rate_schedule({"name": "step", "every": 5, "gamma": 0.5}, None)
    expected = _lrs(torch.optim.lr_scheduler.StepLR(_optimizer(), step_size=5, gamma=0.5))
    # torch multiplies by γ at each boundary, we raise γ to a power: equal to rounding (0.5 is exact)
    assert [schedule.factor(k) for k in range(TOTAL + 3)] == expected
    warm = learning_rate_schedule({"name": "step", "every": 5, "gamma": 0.5, "warmup": 4}, None)
    assert [warm.factor(k) for k in range(4)] == [0.0, 0.25, 0.5, 0.75]
    assert [warm.factor(k) for k in range(4, 15)] == [schedule.factor(k) for k in range(11)]


@pytest.mark.parametrize("declared, message", [
    ({"name": "cosin"}, "lr_schedule: name: 'cosin' is not one of constant, linear, cosine, step"),
    ({"name": "cosine", "warmup": -1}, "lr_schedule: warmup: must be >= 0"),
    ({"name": "cosine", "wramup": 10}, "lr_schedule: wramup: unknown key; allowed: name, warmup, total"),
    ({"name": "step"}, "lr_schedule: every: a step schedule needs it"),
    ({"name": "cosine", "every": 3, "total": 9}, "only a step schedule takes it"),
    ({"name": "linear"}, "lr_schedule: a linear decay needs the steps it spans: give total"),
    ({"name": "cosine", "final": 2}, "lr_schedule: final: must be <= 1"),
    ("cosine", "lr_schedule must be a mapping such as {name: cosine, warmup: 100}"),
])
def test_a_bad_schedule_is_one_line_naming_the_key(declared, message):
    with pytest.raises(ValueError) as error:
        learning_rate_schedule(declared, None)
    assert message in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(ValueError, match="lr_schedule"):  # and through any optimizer that takes one
        optimizers.create("zo-sgd", [torch.nn.Parameter(torch.zeros(2))], lr=0.1, lr_schedule=declared)


def _regression(dtype=torch.float64):
    generator = torch.Generator().manual_seed(5)
    inputs, weights = torch.randn(16, 4, generator=generator, dtype=dtype), torch.randn(4, 1, generator=generator,
                                                                                       dtype=dtype)
    torch.manual_seed(0)  # the same initial weights for every twin
    model = torch.nn.Linear(4, 1).to(dtype)
    return model, lambda: ((model(inputs) - inputs @ weights) ** 2).mean()


@pytest.mark.parametrize("name", ["zo-sgd", "zo-adam@g", "zo-adamu@delta", "zo-sgd-cons"])
def test_a_zo_schedule_steps_as_setting_the_groups_rate_by_hand(name):
    """An independent route to the same rates: a constant-rate optimizer whose group lr is set to
    η f(k) before each step; bitwise equal, the conservative step's trial points included."""
    declared = {"name": "cosine", "warmup": 3}
    context = {"total_steps": 12, "T1": 2} if "T1" in optimizers.get(name).hyperparameters() else {"total_steps": 12}
    model, loss = _regression()
    scheduled = optimizers.create(name, model.parameters(), lr=0.05, lr_schedule=declared, **context)
    twin, twin_loss = _regression()
    by_hand = optimizers.create(name, twin.parameters(), lr=0.05, **context)
    factor = learning_rate_schedule(declared, 12).factor
    for k in range(12):
        scheduled.step(loss)
        by_hand.param_groups[0]["lr"] = 0.05 * factor(k)
        by_hand.step(twin_loss)
        assert all(torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters())), k


def test_a_first_order_schedule_is_hugging_faces_scheduler_on_torchs_optimizer():
    model, loss = _regression()
    ours = optimizers.create("fo-adam", model.parameters(), lr=0.05, lr_schedule={"name": "cosine", "warmup": 3},
                             total_steps=12)
    twin, twin_loss = _regression()
    adam = torch.optim.Adam(twin.parameters(), lr=0.05)
    scheduler = transformers.get_cosine_schedule_with_warmup(adam, 3, 12)
    for _ in range(6):
        ours.step(loss)
        adam.zero_grad()
        twin_loss().backward()
        adam.step()
        scheduler.step()
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters()))
    resumed_model, resumed_loss = _regression()
    resumed_model.load_state_dict(model.state_dict())
    resumed = optimizers.create("fo-adam", resumed_model.parameters(), lr=0.05,
                                lr_schedule={"name": "cosine", "warmup": 3}, total_steps=12)
    resumed.load_state_dict(copy.deepcopy(ours.state_dict()))  # torch hands out its own tensors
    for _ in range(4):  # a reloaded state_dict carries the scheduler's step: it goes on where it was
        ours.step(loss)
        resumed.step(resumed_loss)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), resumed_model.parameters()))
    assert resumed.param_groups[0]["lr"] == ours.param_groups[0]["lr"] != 0.05


SCHEDULED = """
name: scheduled
problems: [a]
tune:
  sampler: grid
  trials: 4
  budget: {steps: 30}
  space:
    lr: [0.01, 0.05]
    lr_schedule: [{name: constant}, {name: cosine, warmup: 5}]
optimizers:
  - {name: zo-sgd, label: MeZO}
  - {name: zo-adam@g, label: Adam cosine, lr: 0.01, lr_schedule: {name: cosine, warmup: 10}}
seeds: [0]
budget: {steps: 40, eval_every: 10}
"""


def test_a_suite_declares_a_schedule_and_tunes_one(tmp_path):
    path = tmp_path / "scheduled.yaml"
    path.write_text(textwrap.dedent(SCHEDULED))
    suite = load_suite(path)
    [study] = suite.studies
    assert study.space["lr_schedule"] == [{"name": "constant"}, {"name": "cosine", "warmup": 5}]
    [fixed] = suite.runs
    assert fixed.hyperparameters["lr_schedule"] == {"name": "cosine", "warmup": 10}
    store = ResultStore(tmp_path / "out" / suite.name)
    assert harness.execute(suite, store, quiet=True) == []
    trials = [r["spec"]["hyperparameters"] for r in store.records() if r["spec"]["label"] == "MeZO (tuning)"]
    assert sorted((t["lr"], t["lr_schedule"]["name"]) for t in trials) == [
        (0.01, "constant"), (0.01, "cosine"), (0.05, "constant"), (0.05, "cosine")]
    _, chosen, _ = tuning.progress(store.root, study)
    [final] = [r for r in tuning.resolved(suite, store.root).runs if r.label == "MeZO"]
    assert store.record(final.key)["spec"]["hyperparameters"]["lr_schedule"] == chosen["lr_schedule"]


def test_a_misspelt_schedule_in_a_suite_fails_at_load_naming_the_entry(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent(SCHEDULED).replace("{name: cosine, warmup: 10}", "{name: cosine, wramup: 10}"))
    with pytest.raises(SuiteError) as error:
        load_suite(path)
    assert "optimizers[1]" in str(error.value) and "wramup: unknown key" in str(error.value)

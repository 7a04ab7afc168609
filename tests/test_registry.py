"""The registry: lookup, metadata, close-match errors and entry-point plugins."""

from pathlib import Path

import pytest
import torch

from zobench import optimizers
from zobench.optimizers import Registry, UnknownOptimizerError

TABLE3 = [f"zo-{s}@{p}" for s in ("adamu", "adam", "adamw", "adamax", "adamm") for p in ("delta", "g")]


def test_every_table3_cell_and_baseline_is_registered():
    for name in TABLE3 + ["zo-sgd", "zo-adamu", "fo-sgd", "fo-adam", "fo-adamw", "fo-adamax"]:
        info = optimizers.get(name)
        assert info.name == name and info.description
        assert (info.family, info.forward_passes) == (("zo", 2) if name.startswith("zo") else ("fo", 3))


def test_metadata_declares_buffers():
    assert optimizers.get("zo-sgd").state_buffers == 0
    assert optimizers.get("zo-adamu").state_buffers == 1
    assert optimizers.get("zo-adamm@g").state_buffers == 3


def test_unknown_name_is_one_line_naming_the_closest():
    with pytest.raises(UnknownOptimizerError) as error:
        optimizers.get("zo-adm@delta")
    message = str(error.value)
    assert "\n" not in message
    assert "'zo-adm@delta'" in message and "zo-adam@delta" in message


def test_double_registration_is_refused():
    registry = Registry(entry_point_group="zobench.none")
    registry.register("x", family="zo", forward_passes=2, state_buffers=0, description="x")(lambda p: p)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("x", family="zo", forward_passes=2, state_buffers=0, description="x")(lambda p: p)


def test_entry_point_plugin_is_loaded_lazily(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "plugin"))
    registry = Registry()
    assert registry._entries == {}  # nothing is loaded before the first lookup
    info = registry.get("example-zo-signsgd")
    assert (info.family, info.forward_passes, info.state_buffers) == ("zo", 2, 0)
    assert "example-zo-signsgd" in registry.names()

    point = torch.nn.Parameter(torch.tensor([2.0, -1.0]))
    optimizer = info.create([point], lr=0.05)
    for _ in range(150):
        optimizer.step(lambda: point.square().sum())
    assert point.detach().square().sum() < 0.2 * 5.0  # it optimises (from a loss of 5)


def test_context_reaches_only_factories_that_declare_it():
    point = torch.nn.Parameter(torch.zeros(2))
    adamu = optimizers.get("zo-adamu").create([point], context={"total_steps": 500, "seed": 3}, lr=0.1, T1=10)
    assert adamu.seed == 3 and adamu.sampler is not None
    adam = optimizers.get("fo-adam").create([point], context={"total_steps": 500, "seed": 3}, lr=0.1)
    assert isinstance(adam, torch.optim.Adam)


def test_zo_adamu_without_a_horizon_says_what_is_missing():
    with pytest.raises(ValueError, match="T3"):
        optimizers.create("zo-adamu", [torch.nn.Parameter(torch.zeros(2))], lr=0.1)

"""The registry: lookup, metadata, close-match errors and entry-point plugins."""

from pathlib import Path

import pytest
import torch

from zobench import optimizers
from zobench.optimizers import Registry, UnknownOptimizerError

TABLE3 = [f"zo-{s}@{p}" for s in ("adamu", "adam", "adamw", "adamax", "adamm") for p in ("delta", "g")]


def test_every_table3_cell_and_baseline_is_registered():
    for name in TABLE3 + ["zo-sgd", "zo-adamu", "fo-sgd", "fo-adam", "fo-adamw", "fo-adamax"]:  # the paper's
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
    registry.register("x", description="x")(lambda p: p)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("x", description="x")(lambda p: p)


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


def test_docs_table_of_methods_is_the_registry(capsys):
    """docs/optimizers.md lists every built-in optimizer with the fields the registry declares."""
    from zobench.cli import main

    main(["list", "optimizers", "--markdown"])
    generated = [line for line in capsys.readouterr().out.splitlines() if "| zobench |" in line]
    text = (Path(__file__).parents[1] / "docs" / "optimizers.md").read_text()
    block = text.split("<!-- zobench:optimizers -->")[1].split("<!-- /zobench:optimizers -->")[0]
    documented = [line for line in block.splitlines() if line.startswith("| `")]
    assert documented == generated, "regenerate the table with `zobench list optimizers --markdown`"
    assert len(generated) == len([n for n in optimizers.names() if optimizers.get(n).distribution is None])


def test_zo_bench_methods_declare_their_costs():
    declared = {name: (optimizers.get(name).family, optimizers.get(name).forward_passes,
                       optimizers.get(name).state_buffers, optimizers.get(name).estimator)
                for name in ("zo-sgd", "zo-sgd-sign", "zo-sgd-mmt", "zo-sgd-cons", "zo-adam", "forward-grad")}
    assert declared == {"zo-sgd": ("zo", 2, 0, "central"), "zo-sgd-sign": ("zo", 2, 0, "sign(central)"),
                        "zo-sgd-mmt": ("zo", 2, 1, "central"), "zo-sgd-cons": ("zo", 5, 0, "conservative(central)"),
                        "zo-adam": ("zo", 2, 2, "central"), "forward-grad": ("fg", 3, 0, "forward-jvp")}
    assert optimizers.get("zo-adam").factory is optimizers.get("zo-adam@g").factory  # the same rule, two names
    assert optimizers.get("forward-grad").buffers_per_parameter == 1  # the tangents, during the pass


def test_an_optimizer_that_cannot_describe_itself_is_named_in_one_line():
    registry = Registry(entry_point_group="zobench.none")
    registry.register("opaque", description="x")(lambda params, *, lr: torch.optim.SGD(params, lr=lr))
    with pytest.raises(TypeError, match="opaque: its optimizer has no describe()"):
        registry.get("opaque").family


def test_what_the_registry_shows_is_read_from_the_built_optimizer():
    """The axes follow the hyperparameters: FZOO's passes from its probes, a direction's sampler."""
    fzoo, adamu = optimizers.get("fzoo"), optimizers.get("zo-adamu")
    assert (fzoo.forward_passes, fzoo.describe(probes=16)["forward_passes"]) == (9, 17)
    assert adamu.describe(direction="table")["sampler"] == "uncertain-table"
    assert optimizers.get("sparse-mezo").describe(direction="rademacher")["sampler"] == "magnitude-masked rademacher"
    assert optimizers.get("fo-sgd").describe(momentum=0.9)["state_buffers"] == 1
    assert optimizers.get("zo-sgd").describe(lr_schedule={"name": "cosine"})["lr_schedule"] == "cosine"

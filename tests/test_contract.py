"""The optimizer contract (zobench.optimizers.contract), run over every registered optimizer: the
built-ins and the example plugin (tests/plugin, on the path from conftest) alike, with no edit here
when one is added. A broken optimizer fails in one line per property, naming it."""

import pytest
import torch

from zobench import optimizers
from zobench.cli import main
from zobench.optimizers import Registry, ZerothOrder
from zobench.optimizers.contract import violations
from zobench.optimizers.noise import gaussian
from zobench.optimizers.transforms import scale_by_estimate


def test_the_example_plugin_is_among_the_registered():
    assert "example-zo-signsgd" in optimizers.names()


@pytest.mark.parametrize("name", optimizers.names())
def test_every_registered_optimizer_keeps_the_contract(name):
    assert violations(optimizers.get(name)) == []


class Careless(ZerothOrder):
    """Breaks four properties: an extra closure call, an undeclared buffer, a move a replay cannot see and
    that even a zero learning rate makes."""

    def step(self, closure):
        closure()
        loss = super().step(closure)
        with torch.no_grad():
            for group in self.param_groups:
                for param in group["params"]:
                    self.state[param]["shadow"] = param.detach().clone()
                    param.add_(1e-3)  # taken outside the logged (seed, ĝ)
        return loss


def test_a_broken_optimizer_fails_one_line_per_property_naming_it():
    registry = Registry(entry_point_group="zobench.none")

    @registry.register("careless", description="breaks things")
    def careless(params, *, lr, seed=0):
        return Careless(params, chain=(scale_by_estimate(),), sampler=gaussian, lr=lr, seed=seed)

    found = violations(registry.get("careless"))
    properties = sorted(line.split(": ")[1] for line in found)
    assert properties == ["buffers", "forward_passes", "replay", "restores"]
    assert all(line.startswith("careless: ") and "\n" not in line for line in found)


def test_verify_command_reports_ok_or_the_violations(capsys):
    assert main(["verify", "zo-sgd", "fo-adam"]) == 0
    assert capsys.readouterr().out.splitlines() == ["zo-sgd: keeps the contract", "fo-adam: keeps the contract"]

"""docs/optimizers.md's "Writing a method" block, run as written: each method is a few lines, keeps the
optimizer contract, steps as a dense restatement of its rule, and works as a suite's
``module:function`` reference through ``zobench verify``."""

import math
import re
from pathlib import Path

import pytest
import torch

from zobench import harness
from zobench.cli import main
from zobench.optimizers import REGISTRY, Registry, method
from zobench.optimizers.contract import violations
from zobench.optimizers.lr_schedules import learning_rate_schedule
from zobench.optimizers.noise import step_seed
from zobench.store import ResultStore
from zobench.suite import SuiteError, load_suite

DOCS = Path(__file__).parents[1] / "docs" / "optimizers.md"


def example() -> str:
    block = DOCS.read_text().split("<!-- zobench:method-example -->")[1].split("<!-- /zobench:method-example -->")[0]
    return block.split("```python\n")[1].split("```")[0]


@pytest.fixture
def documented(monkeypatch):
    """The block's methods, registered in a registry of their own (the shared one stays as it was)."""
    registry = Registry(entry_point_group="zobench.none")
    monkeypatch.setattr(method, "REGISTRY", registry)
    namespace = {}
    exec(compile(example(), str(DOCS), "exec"), namespace)
    return registry, namespace


def test_each_documented_method_is_under_ten_lines():
    """A method is its decorated function and the transform it defines, blank lines aside."""
    pieces = re.split(r"\n(?=def |@)", example().split("\n\n\n", 1)[1])
    lengths = [len([line for line in piece.splitlines() if line.strip()]) for piece in pieces]
    nesterov = lengths[0] + lengths[1]  # its transform, then its registration
    assert nesterov < 10 and lengths[2] < 10, lengths


@pytest.mark.parametrize("name", ["zo-sgd-nesterov", "mezo-q4-cosine"])
def test_documented_methods_keep_the_contract(documented, name):
    registry, _ = documented
    assert violations(registry.get(name)) == []


def _loss(theta):
    return ((theta - 0.5) ** 2 * torch.arange(1.0, 7.0, dtype=torch.float64).view(2, 3)).sum() + theta.prod()


def _gaussian(seed):
    return torch.randn((2, 3), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_nesterov_steps_as_its_restatement(documented):
    registry, _ = documented
    start = torch.linspace(-1.0, 1.0, 6, dtype=torch.float64).view(2, 3)
    point = torch.nn.Parameter(start.clone())
    optimizer = registry.get("zo-sgd-nesterov").create([point], lr=0.02, eps=1e-3, weight_decay=0.1, seed=3)
    theta, b = start.clone(), torch.zeros_like(start)
    for t in range(1, 6):
        optimizer.step(lambda: _loss(point))
        z = _gaussian(step_seed(3, t))
        g = (float(_loss(theta + 1e-3 * z)) - float(_loss(theta - 1e-3 * z))) / 2e-3
        x = g * z + 0.1 * theta  # coupled L2, as the chain places the decay before the transform
        b = 0.9 * b + x
        theta = theta - 0.02 * (x + 0.9 * b)
    torch.testing.assert_close(point.detach(), theta, rtol=0, atol=1e-12)


def test_q4_cosine_steps_as_its_restatement(documented):
    registry, _ = documented
    start = torch.linspace(-1.0, 1.0, 6, dtype=torch.float64).view(2, 3)
    point = torch.nn.Parameter(start.clone())
    optimizer = registry.get("mezo-q4-cosine").create([point], lr=0.02, eps=1e-3, seed=3, total_steps=6)
    factor = learning_rate_schedule({"name": "cosine"}, 6).factor
    theta = start.clone()
    for t in range(1, 7):
        optimizer.step(lambda: _loss(point))
        seed = step_seed(3, t)
        probes = [_gaussian(seed if i == 0 else step_seed(seed, i)) for i in range(4)]
        grads = [(float(_loss(theta + 1e-3 * z)) - float(_loss(theta - 1e-3 * z))) / 2e-3 for z in probes]
        theta = theta - 0.02 * factor(t - 1) * sum(g * z for g, z in zip(grads, probes)) / 4
    assert factor(5) == pytest.approx(0.5 * (1 + math.cos(math.pi * 5 / 6)))
    torch.testing.assert_close(point.detach(), theta, rtol=0, atol=1e-12)


def test_a_module_function_reference_is_verified(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_methods.py").write_text(example())
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(method, "REGISTRY", Registry(entry_point_group="zobench.none"))
    monkeypatch.setattr(REGISTRY, "_entries", dict(REGISTRY._entries))  # the reference is forgotten afterwards
    assert main(["verify", "my_methods:zo_sgd_nesterov", "my_methods:mezo_q4_cosine"]) == 0
    assert capsys.readouterr().out.splitlines() == ["my_methods:zo_sgd_nesterov: keeps the contract",
                                                    "my_methods:mezo_q4_cosine: keeps the contract"]


REFERENCED = """
name: referenced
problems: [a]
optimizers:
  - {name: "my_methods:zo_sgd_nesterov", label: Nesterov, lr: 0.01}
  - {name: "my_methods:mezo_q4_cosine", label: q4 cosine, lr: 0.01}
seeds: [0]
budget: {steps: 20, eval_every: 10}
"""

BROKEN = '''
from zobench.optimizers import Method, transforms


def careless(momentum=0.9):
    """Momentum whose value is never checked."""
    return Method(chain=(transforms.scale_by_estimate(), transforms.momentum(momentum)))
'''


def test_a_suite_runs_a_method_by_reference_from_its_folder(tmp_path, monkeypatch):
    (tmp_path / "my_methods.py").write_text(example())
    (tmp_path / "referenced.yaml").write_text(REFERENCED)
    monkeypatch.setattr(method, "REGISTRY", Registry(entry_point_group="zobench.none"))
    monkeypatch.setattr(REGISTRY, "_entries", dict(REGISTRY._entries))
    monkeypatch.setattr("sys.path", list(__import__("sys").path))  # the suite's folder is added for its import
    suite = load_suite(tmp_path / "referenced.yaml")
    store = ResultStore(tmp_path / "out" / suite.name)
    assert harness.execute(suite, store, quiet=True) == []
    records = store.records()
    assert sorted(r["spec"]["optimizer"] for r in records) == ["my_methods:mezo_q4_cosine", "my_methods:zo_sgd_nesterov"]
    assert all(r["steps_done"] == 20 and r["final"]["dev"]["distance"] < r["initial"]["dev"]["distance"]
               for r in records)


@pytest.mark.parametrize("module, message", [
    (BROKEN, "optimizers[0].name: careless_methods:careless breaks the optimizer contract: careless_methods:careless: "
             "validates: momentum=1.5 is accepted"),
    (None, "optimizers[0].name: optimizer 'missing_methods:careless' does not import (ModuleNotFoundError"),
])
def test_a_referenced_method_that_breaks_the_contract_or_does_not_import_fails_at_load(tmp_path, monkeypatch, module,
                                                                                      message):
    name = "careless_methods" if module else "missing_methods"
    if module:
        (tmp_path / f"{name}.py").write_text(module)
    (tmp_path / "careless.yaml").write_text(REFERENCED.split("optimizers:")[0] + "optimizers:\n"
                                            f'  - {{name: "{name}:careless", lr: 0.01}}\n'
                                            "seeds: [0]\nbudget: {steps: 20}\n")
    monkeypatch.setattr(REGISTRY, "_entries", dict(REGISTRY._entries))
    monkeypatch.setattr("sys.path", list(__import__("sys").path))
    with pytest.raises(SuiteError) as error:
        load_suite(tmp_path / "careless.yaml")
    assert message in str(error.value) and "\n" not in str(error.value)

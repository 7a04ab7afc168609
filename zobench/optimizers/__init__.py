"""Optimizers by name: ``create("zo-adamu", params, lr=1e-4)``; ``names()`` lists them all.

A new method is a :class:`Method` (a chain of :mod:`.transforms`, an :mod:`.estimators` estimator, a
sampler of :mod:`.noise`) registered with :func:`register_method` (docs/optimizers.md, "Writing a method").
"""

from .registry import BACKWARD_IN_FORWARDS, REGISTRY, OptimizerInfo, Registry, UnknownOptimizerError, register
from .zeroth_order import NonFiniteLossError, ZerothOrder, decay_groups
from . import catalog  # noqa: F401  (registers the built-in optimizers)
from . import estimators, noise, transforms
from .method import Method, register_method

get = REGISTRY.get
names = REGISTRY.names


def create(name: str, params, **hyperparameters):
    """Build the registered optimizer ``name`` over ``params``."""
    return REGISTRY.get(name).create(params, **hyperparameters)


__all__ = ["BACKWARD_IN_FORWARDS", "REGISTRY", "OptimizerInfo", "Registry", "UnknownOptimizerError", "register", "get",
           "names", "create", "ZerothOrder", "NonFiniteLossError", "decay_groups", "Method", "register_method",
           "estimators", "noise", "transforms"]

"""The optimizer registry: names -> factories with the metadata a benchmark needs.

Built-in optimizers register with the :func:`register` decorator. Third-party packages register
through the entry-point group ``zobench.optimizers``: each entry point names a callable that is
called once with the registry (and calls ``registry.register``), or a module whose import runs
``@zobench.optimizers.register`` decorators. Entry points are loaded lazily, the first time a name
is not found or the full list is asked for, so a plugin never slows down ``import zobench``; a plugin
that fails to load is reported once, in one line naming its distribution, and the others go on.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import sys
from dataclasses import dataclass, replace
from importlib import metadata
from typing import Callable

ENTRY_POINT_GROUP = "zobench.optimizers"
# A backward pass costs about two forward passes (it multiplies by the weights and by the activations:
# twice a forward's matrix work), so a first-order step counts as three forward passes on every
# forward-pass axis, and ZO and first-order runs share that axis honestly. A forward pass with
# tangents costs the same: each linear layer computes W·x and, for the tangent, Ẇ·x + W·ẋ.
BACKWARD_IN_FORWARDS = 2


class UnknownOptimizerError(ValueError):
    """An optimizer name that is not registered; the message names the closest registered ones."""


DESCRIBE_STEPS = 5000  # the horizon an optimizer is described at, unless a run's steps are given


@dataclass(frozen=True)
class OptimizerInfo:
    """A registered optimizer: its factory, and what the harness and ``zobench list`` read from it.

    The ablation axes and costs (family, sampler, estimator, schedule, placement, forward passes,
    buffers, replay) are not declared: they are read from an optimizer the factory builds, through its
    ``describe()``, so they cannot disagree with it. :meth:`describe` reads them for any hyperparameters;
    the properties give those of the defaults.
    """

    name: str
    factory: Callable
    description: str
    distribution: str | None = None  # the plugin's distribution; None for zobench's own
    revision: int = 1  # bumped by the author when the maths changes: a run's key includes it (fingerprint.py)

    def describe(self, steps: int | None = None, **hyperparameters) -> dict:
        """The built optimizer's ``describe()`` for ``hyperparameters`` (``lr`` defaults to 1e-3) in a run
        of ``steps`` steps (default 5000), on a two-tensor problem."""
        return _describe(self, tuple(sorted((k, _hashable(v)) for k, v in hyperparameters.items())), steps)

    @property
    def described(self) -> dict:
        return self.describe()

    family = property(lambda self: self.described["family"])  # zo, fo (backpropagation), fg (forward-mode AD)
    forward_passes = property(lambda self: self.described["forward_passes"])  # a backward or tangents count two
    state_buffers = property(lambda self: self.described["state_buffers"])  # parameter-sized tensors kept
    schedule = property(lambda self: self.described["schedule"])  # the momentum schedule (sgd, adam, adamu, …)
    placement = property(lambda self: self.described["placement"])  # δ, g, or - (first-order)
    sampler = property(lambda self: self.described["sampler"])
    estimator = property(lambda self: self.described["estimator"])
    replayable = property(lambda self: self.described["replayable"])  # resumes by replaying step records
    closure_cost = property(lambda self: self.described["closure_cost"])  # forward passes per closure call

    @property
    def buffers_per_parameter(self) -> int:
        """Parameter-sized tensors a step keeps per trainable parameter: a gradient (first-order) or the
        tangents (forward-mode), and the optimizer's state; memory bounds count them on top of the weights."""
        return (self.family != "zo") + self.state_buffers

    def hyperparameters(self) -> dict:
        """The factory's hyperparameters and their defaults (``inspect.Parameter.empty``: required)."""
        return {name: p.default for name, p in inspect.signature(self.factory).parameters.items()
                if p.kind is p.KEYWORD_ONLY}

    def create(self, params, *, context: dict | None = None, **hyperparameters):
        """Build the optimizer.

        ``context`` is what the harness knows about the run (``total_steps``, ``seed``); each entry
        reaches the factory only if the factory declares it and the hyperparameters do not set it.
        """
        accepted = inspect.signature(self.factory).parameters
        for key, value in (context or {}).items():
            if key in accepted:
                hyperparameters.setdefault(key, value)
        return self.factory(params, **hyperparameters)


def _hashable(value):
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return tuple(value) if isinstance(value, list) else value


def _unhashable(value):
    return dict((k, _unhashable(v)) for k, v in value) if isinstance(value, tuple) and value and all(
        isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str) for item in value) else value


@functools.lru_cache(maxsize=1024)
def _describe(info: OptimizerInfo, hyperparameters: tuple, steps: int | None) -> dict:
    import torch

    generator = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(4, 3, generator=generator)), torch.nn.Parameter(torch.zeros(5))]
    optimizer = info.create(params, context={"total_steps": steps or DESCRIBE_STEPS, "seed": 0},
                            **{"lr": 1e-3, **{k: _unhashable(v) for k, v in hyperparameters}})
    if not hasattr(optimizer, "describe"):
        raise TypeError(f"{info.name}: its optimizer has no describe(); build it from zobench's parts, or give it "
                        f"one returning family, forward_passes, closure_cost, state_buffers, sampler, estimator, "
                        f"schedule, placement and replayable")
    return optimizer.describe()


def _reference(name: str) -> OptimizerInfo:
    """``module:function`` as an optimizer: ``function(**own) -> Method`` (a composition, which gets the
    common options) or a factory ``function(params, *, lr, ...)``; the module is imported from
    ``sys.path`` (a suite's folder is put on it), so a method needs no installed package."""
    from .method import MethodBuilder

    module_name, _, attribute = name.partition(":")
    try:
        target = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise UnknownOptimizerError(f"optimizer {name!r} does not import ({type(error).__name__}: {error}); put "
                                    f"{module_name}.py beside the suite, or install the package that has it") from None
    factory = target if "params" in inspect.signature(target).parameters else MethodBuilder(name, target, {})
    summary = (inspect.getdoc(target) or name).splitlines()[0]
    return OptimizerInfo(name, factory, summary, module_name)


class Registry:
    """A name -> :class:`OptimizerInfo` map with lazy entry-point plugins and ``module:function`` references."""

    def __init__(self, entry_point_group: str = ENTRY_POINT_GROUP):
        self._entries: dict[str, OptimizerInfo] = {}
        self._group = entry_point_group
        self._plugins_loaded = False
        self._loading: str | None = None  # the distribution whose plugin is being loaded

    def register(self, name: str, *, description: str, revision: int = 1) -> Callable:
        """Decorator: register ``build(params, *, lr, **hyperparameters)`` under ``name``. What a suite,
        a report or a test needs to know of it is read from what it builds (``describe()``), never
        declared or parsed from names; ``revision`` counts changes of its maths (bump it and earlier runs
        are not reused)."""
        if not isinstance(revision, int) or isinstance(revision, bool) or revision < 1:
            raise ValueError(f"revision must be a whole number >= 1, not {revision!r}")

        def decorator(factory: Callable) -> Callable:
            if name in self._entries:
                raise ValueError(f"optimizer {name!r} is already registered")
            self._entries[name] = OptimizerInfo(name, factory, description, self._loading, revision)
            return factory

        return decorator

    def alias(self, name: str, target: str, description: str) -> None:
        """Registers ``name`` as another name of ``target`` (the same factory and declared fields)."""
        if name in self._entries:
            raise ValueError(f"optimizer {name!r} is already registered")
        self._entries[name] = replace(self.get(target), name=name, description=description,
                                      distribution=self._loading)

    def get(self, name: str) -> OptimizerInfo:
        if name not in self._entries and ":" in name:
            self._entries[name] = _reference(name)
        if name not in self._entries:
            self.load_plugins()
        if name not in self._entries:
            close = difflib.get_close_matches(name, self._entries, n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise UnknownOptimizerError(
                f"unknown optimizer {name!r}; {hint}(`zobench list` shows every registered name)")
        return self._entries[name]

    def names(self) -> list[str]:
        self.load_plugins()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        try:
            self.get(name)
        except UnknownOptimizerError:
            return False
        return True

    def load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for entry_point in metadata.entry_points(group=self._group):
            distribution = entry_point.dist.name if entry_point.dist else "an unknown distribution"
            self._loading = distribution
            try:
                target = entry_point.load()
                if callable(target):
                    target(self)
            except Exception as error:  # a third party's bug must not take zobench down
                print(f"zobench: plugin {entry_point.name!r} of {distribution} failed to load and is skipped "
                      f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                      f"fix or uninstall {distribution}", file=sys.stderr)
            finally:
                self._loading = None


REGISTRY = Registry()
register = REGISTRY.register

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
import inspect
import sys
from dataclasses import dataclass, replace
from importlib import metadata
from typing import Callable

ENTRY_POINT_GROUP = "zobench.optimizers"
# zo: forward passes only; fo: backpropagation; fg: forward-mode AD (one forward pass with tangents)
FAMILIES = ("zo", "fo", "fg")
# A backward pass costs about two forward passes (it multiplies by the weights and by the activations:
# twice a forward's matrix work), so a first-order step counts as three forward passes on every
# forward-pass axis, and ZO and first-order runs share that axis honestly. A forward pass with
# tangents costs the same: each linear layer computes W·x and, for the tangent, Ẇ·x + W·ẋ.
BACKWARD_IN_FORWARDS = 2
PLACEMENT_SYMBOLS = ("δ", "g", "-")


class UnknownOptimizerError(ValueError):
    """An optimizer name that is not registered; the message names the closest registered ones."""


@dataclass(frozen=True)
class OptimizerInfo:
    """What the harness and ``zobench list`` know about a registered optimizer."""

    name: str
    factory: Callable
    family: str  # "zo" (forward passes only), "fo" (backpropagation), "fg" (forward-mode AD)
    forward_passes: int | tuple[int, int]  # per step, or (fewest, most); a backward or tangent pass counts two
    state_buffers: int  # parameter-sized tensors kept per parameter between steps
    description: str
    distribution: str | None = None  # the plugin's distribution; None for zobench's own
    schedule: str = ""  # the momentum schedule, an ablation axis (sgd, adam, adamu, …)
    placement: str = "-"  # where the schedule acts: "δ" (the perturbation), "g" (the estimate), "-" neither
    sampler: str = "-"  # the probe directions' distribution (gaussian, rademacher, …), "-" for none
    estimator: str = "-"  # how losses become a gradient estimate (central, conservative, backprop, …)
    replayable: bool = False  # replay(record) rebuilds a step bitwise from its ``last_record``: resumable
    closure_cost: int = 1  # forward passes one closure call counts for (backprop or tangents: 3)
    revision: int = 1  # bumped by the author when the maths changes: a run's key includes it (fingerprint.py)

    @property
    def passes_range(self) -> tuple[int, int]:
        """(fewest, most) forward passes per step."""
        passes = self.forward_passes
        return tuple(passes) if isinstance(passes, (tuple, list)) else (passes, passes)

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


class Registry:
    """A name -> :class:`OptimizerInfo` map with lazy entry-point plugins."""

    def __init__(self, entry_point_group: str = ENTRY_POINT_GROUP):
        self._entries: dict[str, OptimizerInfo] = {}
        self._group = entry_point_group
        self._plugins_loaded = False
        self._loading: str | None = None  # the distribution whose plugin is being loaded

    def register(self, name: str, *, family: str, forward_passes: int | tuple[int, int], state_buffers: int,
                 description: str, schedule: str = "", placement: str = "-", sampler: str = "-",
                 estimator: str = "-", replayable: bool = False, closure_cost: int = 1, revision: int = 1) -> Callable:
        """Decorator: register ``factory(params, **hyperparameters)`` under ``name``, with the
        ablation axes suites, reports and tests read (sampler, estimator, schedule, placement), never
        parsed from names; ``replayable`` lets the harness resume a run from its step records;
        ``revision`` counts changes of its maths (bump it and earlier runs are not reused)."""
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, not {family!r}")
        if placement not in PLACEMENT_SYMBOLS:
            raise ValueError(f"placement must be one of {PLACEMENT_SYMBOLS}, not {placement!r}")
        passes = forward_passes if isinstance(forward_passes, (tuple, list)) else (forward_passes,)
        if not all(isinstance(p, int) and p >= 1 for p in passes) or len(passes) > 2 or sorted(passes) != list(passes):
            raise ValueError(f"forward_passes must be a count >= 1 or a (fewest, most) pair, not {forward_passes!r}")
        if not isinstance(revision, int) or isinstance(revision, bool) or revision < 1:
            raise ValueError(f"revision must be a whole number >= 1, not {revision!r}")

        def decorator(factory: Callable) -> Callable:
            if name in self._entries:
                raise ValueError(f"optimizer {name!r} is already registered")
            self._entries[name] = OptimizerInfo(
                name, factory, family, forward_passes, state_buffers, description, self._loading,
                schedule or name, placement, sampler, estimator, replayable, closure_cost, revision)
            return factory

        return decorator

    def alias(self, name: str, target: str, description: str) -> None:
        """Registers ``name`` as another name of ``target`` (the same factory and declared fields)."""
        if name in self._entries:
            raise ValueError(f"optimizer {name!r} is already registered")
        self._entries[name] = replace(self.get(target), name=name, description=description,
                                      distribution=self._loading)

    def get(self, name: str) -> OptimizerInfo:
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

"""A zeroth-order method is the parts it chooses; the options every method shares are added once.

A method is a function of its own hyperparameters that returns a :class:`Method` — its chain of
transforms, its estimator, and its sampler if it has its own — registered with :func:`register_method`::

    @register_method("zo-sgd-mmt", description="ZO-SGD-MMT: heavy-ball momentum on ĝz")
    def zo_sgd_mmt(momentum=0.9):
        return Method(chain=(scale_by_estimate(), add_decayed_weights(), transforms.momentum(momentum)))

The registered builder takes ``lr`` and the common options of :data:`COMMON` (ε, weight decay,
seed, fused, cache_noise, direction, lr_schedule) besides the method's own, so no method re-plumbs
them. An option that makes no sense for a method is refused in one line that says why, and is not
among the hyperparameters a suite may set: ``direction`` where the method draws its own probes
(LOZO, SubZero, FZOO, ZO-Muon), ``eps`` and ``fused`` for an exact forward-mode derivative, and
whatever the method lists in ``refuses``. A method that needs a common option's value declares it
(HiZOO's curvature divides by ε²) and receives it too. A method whose sampler transforms the chosen direction
(Sparse-MeZO's mask, ZO-AdaMU's uncertainty) gives ``sampler`` as a function of that direction.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Callable, Mapping

from . import estimators, noise
from .layers import LayerChoice
from .projection import DriftProjection
from .lr_schedules import learning_rate_schedule
from .registry import DESCRIBE_STEPS, REGISTRY
from .transforms import scale_by_estimate
from .zeroth_order import ZerothOrder

# ``direction``: Gaussian draws (MeZO's), the same drawn in parallel blocks, packed-bit signs, or windows
# of the shared Gaussian table
SAMPLERS = {"gaussian": noise.gaussian, "gaussian-blocks": noise.gaussian_blocks, "rademacher": noise.rademacher,
            "table": noise.noise_table()}
COMMON = {"eps": 1e-3, "weight_decay": 0.0, "seed": 0, "fused": True, "cache_noise": False,
          "direction": "gaussian", "lr_schedule": None}
CONTEXT = ("total_steps",)  # what the harness knows of a run, passed to a method that declares it


@dataclass(frozen=True)
class Method:
    """What a zeroth-order method chooses on each axis of the ablation."""

    chain: tuple = (scale_by_estimate(),)  # the transforms after the estimate (see transforms.py)
    estimator: estimators.Estimator = field(default_factory=estimators.central)
    # None: the ``direction`` option's sampler; a Sampler: the method's own (``direction`` is refused);
    # a function of the chosen direction's sampler: a change of it (a mask, an uncertainty)
    sampler: noise.Sampler | Callable[[noise.Sampler], noise.Sampler] | None = None
    refuses: Mapping[str, str] = field(default_factory=dict)  # common option -> why it does not apply
    layers: LayerChoice | None = None  # the layers a step perturbs (LeZO); None: every layer
    after: DriftProjection | None = None  # a change of θ after the update (DiZO's drift projection)

    def refusals(self) -> dict[str, str]:
        """Every common option this method refuses, with the reason."""
        reasons = dict(self.refuses)
        if isinstance(self.sampler, noise.Sampler):
            reasons["direction"] = f"it draws its own probes ({self.sampler.name})"
        if self.estimator.forward_mode:
            reasons["eps"] = "its derivative is exact, no finite difference"
            reasons["fused"] = "it never moves θ to probe, so there is no restore to fuse"
        return reasons

    def build(self, params, *, lr, direction: str = "gaussian", lr_schedule=None, total_steps=None, **options):
        if direction not in SAMPLERS:
            raise ValueError(f"direction must be one of {', '.join(sorted(SAMPLERS))}, not {direction!r}")
        sampler = self.sampler
        if sampler is None or not isinstance(sampler, noise.Sampler):
            sampler = SAMPLERS[direction] if sampler is None else sampler(SAMPLERS[direction])
        return ZerothOrder(params, chain=self.chain, sampler=sampler, estimator=self.estimator, lr=lr,
                           lr_schedule=learning_rate_schedule(lr_schedule, total_steps), layers=self.layers,
                           after=self.after, **options)


class MethodBuilder:
    """``build(params, *, lr, **options)`` for a registered :class:`Method`; its signature lists what a
    suite may set: ``lr``, the common options the method takes (with its defaults), its own."""

    def __init__(self, name: str, recipe: Callable[..., Method], defaults: Mapping):
        self.name, self.recipe, self.defaults = name, recipe, {**COMMON, **defaults}
        functools.update_wrapper(self, recipe)

    @functools.cached_property
    def own(self) -> dict[str, inspect.Parameter]:
        return dict(inspect.signature(self.recipe).parameters)

    @functools.cached_property
    def refusals(self) -> dict[str, str]:
        """The common options the method refuses, read from a build at its defaults."""
        defaults = {name: self.defaults[name] if name in COMMON else p.default for name, p in self.own.items()
                    if p.default is not inspect.Parameter.empty and name not in CONTEXT}
        context = {"total_steps": DESCRIBE_STEPS} if "total_steps" in self.own else {}
        return self.recipe(**defaults, **context).refusals()

    @property
    def __signature__(self) -> inspect.Signature:
        keyword = inspect.Parameter.KEYWORD_ONLY
        parameters = [inspect.Parameter("params", inspect.Parameter.POSITIONAL_OR_KEYWORD),
                      inspect.Parameter("lr", keyword)]
        parameters += [inspect.Parameter(name, keyword, default=default) for name, default in self.defaults.items()
                       if name not in self.refusals]
        parameters += [p.replace(kind=keyword) for name, p in self.own.items() if name not in COMMON]
        if "total_steps" not in self.own:  # the learning-rate schedule's horizon, from the harness
            parameters.append(inspect.Parameter("total_steps", keyword, default=None))
        return inspect.Signature(parameters)

    def __call__(self, params, *, lr, **hyperparameters):
        for name in hyperparameters:
            if name in self.refusals:
                raise ValueError(f"{self.name} takes no {name}: {self.refusals[name]}")
        total_steps = hyperparameters.pop("total_steps", None)
        own = {name: hyperparameters.pop(name) for name in list(hyperparameters)
               if name in self.own and name not in COMMON}
        if "total_steps" in self.own:
            own["total_steps"] = total_steps
        unknown = sorted(set(hyperparameters) - set(self.defaults))
        if unknown:
            allowed = ", ".join(p for p in self.__signature__.parameters if p != "params")
            raise ValueError(f"{self.name} has no hyperparameter {unknown[0]!r}; it takes {allowed}")
        options = {name: value for name, value in {**self.defaults, **hyperparameters}.items()
                   if name not in self.refusals}
        own.update({name: options[name] for name in self.own if name in COMMON})
        return self.recipe(**own).build(params, lr=lr, total_steps=total_steps, **options)


def register_method(name: str, *, description: str, revision: int = 1, registry=None, **defaults):
    """Decorator: registers ``recipe(**own) -> Method`` under ``name`` (``defaults`` overrides a common
    option's default, e.g. ``weight_decay=0.01`` for AdamW)."""
    def decorator(recipe):
        (registry or REGISTRY).register(name, description=description, revision=revision)(
            MethodBuilder(name, recipe, defaults))
        return recipe
    return decorator

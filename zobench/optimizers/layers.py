"""Which layers a step perturbs: a step of LeZO touches a random subset of the model's layers only.

A *layer* is a unit of parameters named from the parameter names: the module path up to its first
numbered component (``encoder.layer.3``: a transformer block, every tensor in it), or, for a module
outside the numbered blocks, the module itself (``embeddings.word_embeddings``, ``classifier``). Param
groups carry the names' layers under ``"layers"`` (:func:`~zobench.optimizers.decay_groups` and the
Hugging Face trainer add them); without them every tensor is its own layer.

The choice is a function of the step's seed, so a replayed step chooses the same layers, and the
optimizer skips every tensor of an unchosen layer in every pass: no draw, no add. That, and not the
forward passes, is what LeZO saves.
"""

from __future__ import annotations

import hashlib
from typing import Callable, NamedTuple

import torch


def layer_of(name: str) -> str:
    """The layer of the parameter called ``name`` (``encoder.layer.3.attention.self.query.weight`` ->
    ``encoder.layer.3``; ``classifier.weight`` -> ``classifier``)."""
    parts = name.split(".")
    for index, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[:index + 1])
    return ".".join(parts[:-1]) or name


class LayerChoice(NamedTuple):
    """A named ``choose(step_seed, layers) -> the indices of the layers the step perturbs``."""

    name: str
    choose: Callable[[int, int], list[int]]


def layer_seed(seed: int) -> int:
    """The seed of a step's per-layer draws (LeZO's choice, DiZO's projection probe): a hash of the step's
    seed in its own domain, never a step's or a probe's seed."""
    digest = hashlib.blake2b(str(seed).encode(), digest_size=8, person=b"zobench-layers").digest()
    return int.from_bytes(digest, "little") >> 1


def random_layers(keep: float) -> LayerChoice:
    """LeZO's choice: round(keep × layers) of them (at least one), uniformly without replacement."""

    def choose(seed: int, layers: int) -> list[int]:
        count = max(1, round(keep * layers))
        generator = torch.Generator().manual_seed(layer_seed(seed))
        return sorted(torch.randperm(layers, generator=generator)[:count].tolist())

    return LayerChoice(f"random layers ({keep:g})", choose)

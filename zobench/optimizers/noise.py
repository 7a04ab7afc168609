"""Direction samplers: the random probe directions of a zeroth-order step, regenerated from seeds.

No parameter-sized noise is ever stored. Every pass over the parameters (perturb, perturb back,
update) re-seeds a :class:`NoiseStream` with the step's seed and draws the same tensors again, in
parameter order, one tensor at a time. The stream owns one ``torch.Generator`` per device, so
zobench's noise never touches (or depends on) the global RNG that data loaders and dropout use.
"""

from __future__ import annotations

import hashlib
from typing import Callable, NamedTuple

import torch

from .anneal import AnnealSchedule


def step_seed(base_seed: int, step: int) -> int:
    """The seed of step ``step``: a hash of ``(base_seed, step)``.

    A pure function, so any step's noise can be regenerated without replaying earlier steps (the
    harness's seed-log resume relies on it), and nearby steps get unrelated streams.
    """
    digest = hashlib.blake2b(f"{base_seed}:{step}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class NoiseStream:
    """Seeded per-device generators that replay the same draws after every :meth:`restart`."""

    def __init__(self):
        self._generators: dict[torch.device, torch.Generator] = {}
        self._seed = 0
        self.restarts = 0  # how many times the step's noise was (re)generated; tests count passes

    def restart(self, seed: int) -> None:
        self._seed = seed
        self.restarts += 1
        for generator in self._generators.values():
            generator.manual_seed(seed)

    def _generator(self, device: torch.device) -> torch.Generator:
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self._seed)
        return self._generators[device]

    def normal(self, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(like.shape, generator=self._generator(like.device), dtype=like.dtype,
                           device=like.device)


class Sample(NamedTuple):
    """What a sampler draws for one parameter tensor.

    ``fresh`` is the new random direction. ``jitter`` is optional extra noise that a schedule adds
    around its own first moment (ZO-AdaMU's momentum-centred Gaussian); ``None`` for plain samplers.
    """

    fresh: torch.Tensor
    jitter: torch.Tensor | None = None


Sampler = Callable[[NoiseStream, torch.Tensor, int], Sample]


def gaussian(stream: NoiseStream, param: torch.Tensor, t: int) -> Sample:
    """z ~ N(0, I), MeZO's probe."""
    return Sample(stream.normal(param))


def rademacher(stream: NoiseStream, param: torch.Tensor, t: int) -> Sample:
    """z with independent ±1 entries (the sign of a Gaussian draw)."""
    return Sample(torch.sign(stream.normal(param)))


def uncertain_gaussian(anneal: AnnealSchedule) -> Sampler:
    r"""ZO-AdaMU's two-part perturbation (Eq. 4): :math:`\dot z \sim \mathcal N(0, \alpha_t I)` as
    ``fresh`` and the zero-mean part :math:`\sqrt{1-\alpha_t}\,\xi` of
    :math:`\ddot z \sim \mathcal N(m_{t-1}, (1-\alpha_t) I)` as ``jitter`` (the schedule adds
    :math:`m_{t-1}`). :math:`\sqrt{\alpha}` is read as the standard deviation, as in the released code.
    """

    def sample(stream: NoiseStream, param: torch.Tensor, t: int) -> Sample:
        alpha = anneal(t).alpha
        fresh = stream.normal(param).mul_(alpha ** 0.5)
        jitter = stream.normal(param).mul_((1.0 - alpha) ** 0.5)
        return Sample(fresh, jitter)

    return sample

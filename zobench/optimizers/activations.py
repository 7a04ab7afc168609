r"""AGZO's activation subspaces: the first probes that read the data.

The gradient of a linear layer :math:`y = xW^\top` is :math:`\sum_k \delta_k x_k^\top`, so its rows lie in
the span of the layer's inputs :math:`x_k` (Lin et al., "AGZO: Activation-Guided Zeroth-Order
Optimization for LLM Fine-Tuning", ICML 2026, arXiv 2601.17261). AGZO perturbs each linear weight only
inside a small subspace of that span: :math:`\Delta = R A^\top` with R Gaussian (out × r) and A an
orthonormal basis (in × r) of the dominant directions of the layer's inputs H (tokens × in), found by a
few steps of power iteration on :math:`H^\top H`.

:class:`ActivationBases` finds those bases while the step's unperturbed forward pass runs: a global
forward hook (``torch.nn.modules.module.register_module_forward_hook``) sees every ``nn.Linear`` whose
weight the optimizer trains, runs the power iteration on the inputs it was called with, and keeps only
A. So the optimizer needs no handle on the model, any closure works (zobench's problems, a user's loop,
the Hugging Face trainer), and no activation outlives its layer's call. The power iteration starts from
a Gaussian seeded by the step's seed and the weight's position among the trained tensors, so a step's
bases are a function of θ, the batch and the seed.

Choices (the paper's values were not retrieved): r = 8 (capped at the layer's input width) and two
power steps. A layer called more than once in a pass (tied weights) keeps the basis of its last call.
Other tensors (biases, norms, embeddings, non-``Linear`` layers) take a Gaussian probe, as the paper's
non-linear layers do, or the ``direction`` option's (the shared table makes the embeddings' probe, half
of MiniLM's parameters, a view instead of a draw).
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager

import torch

from .noise import NoiseStream, Sample, Sampler, gaussian, orthonormal


def basis_seed(step_seed: int, position: int) -> int:
    """The seed of the power iteration's start for the trained tensor at ``position`` (its own hash domain)."""
    digest = hashlib.blake2b(f"{step_seed}:{position}".encode(), digest_size=8, person=b"zobench-agzo").digest()
    return int.from_bytes(digest, "little") >> 1


def dominant_subspace(inputs: torch.Tensor, rank: int, power_steps: int, seed: int) -> torch.Tensor:
    """An orthonormal basis (in × r, r = min(rank, in)) of the top directions of the rows of ``inputs``
    (tokens × in): Q ← QR(Hᵀ(H Q)) ``power_steps`` times from a seeded Gaussian Q, in at least float32."""
    work = inputs.to(torch.promote_types(inputs.dtype, torch.float32))
    width = work.shape[1]
    generator = torch.Generator(device=work.device).manual_seed(seed)
    basis = torch.randn((width, min(rank, width)), generator=generator, dtype=work.dtype, device=work.device)
    for _ in range(power_steps):
        basis = orthonormal(work.T @ (work @ basis))
    return basis


class ActivationBases:
    """Per step, the activation basis of each trained linear weight (see the module docstring)."""

    def __init__(self, rank: int, power_steps: int):
        self.rank, self.power_steps = rank, power_steps
        self.bases: dict[torch.Tensor, torch.Tensor] = {}  # weight -> its basis A at the current step

    @contextmanager
    def reading(self, params: list[torch.Tensor], step_seed: int):
        """While active, each ``nn.Linear`` call whose weight is in ``params`` sets that weight's basis."""
        self.bases = {}
        position = {id(param): index for index, param in enumerate(params)}

        def hook(module, args, output):
            weight = getattr(module, "weight", None)
            if isinstance(module, torch.nn.Linear) and id(weight) in position and args:
                inputs = args[0].detach().reshape(-1, weight.shape[1])
                basis = dominant_subspace(inputs, self.rank, self.power_steps,
                                          basis_seed(step_seed, position[id(weight)]))
                self.bases[weight] = basis.to(weight.dtype)

        handle = torch.nn.modules.module.register_module_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()

    def sampler(self, other: Sampler = gaussian) -> Sampler:
        """Probes R Aᵀ (R Gaussian) for the weights with a basis this step, ``other``'s for every other
        tensor: Gaussian by default, the paper's; with the shared table the embeddings' probe is a view."""

        def draw(stream: NoiseStream, param: torch.Tensor, t: int) -> Sample:
            basis = self.bases.get(param)
            if basis is None:
                return other(stream, param, t)
            coefficients = stream.normal(param, (param.shape[0], basis.shape[1]))
            return Sample(factors=(coefficients, basis), kept=1, shape=param.shape)

        return Sampler(f"activation-guided {other.name}", draw, reads=self)

"""Direction samplers: the random probe directions of a zeroth-order step, regenerated from seeds.

A step's own draws are never stored (a shared noise table, :func:`noise_table`, is one fixed table
whatever the model): every pass over the parameters (perturb, perturb back, update) re-seeds a
:class:`NoiseStream` with the step's seed and draws the same tensors again, in parameter order, one
tensor at a time. Only draws shared by a block of steps or probes (a kept subspace; GRZO's Flipout
base, one parameter copy) are held while the block lasts (:class:`KeptDraws`). The stream owns one ``torch.Generator`` per device, so
zobench's noise never touches (or depends on) the global RNG that data loaders and dropout use.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, NamedTuple

import torch

BLOCK = 1 << 20  # entries of one separately seeded block of a blocked draw: fixed, so no value depends on threads


def step_seed(base_seed: int, step: int) -> int:
    """The seed of step ``step``: a hash of ``(base_seed, step)``.

    A pure function, so any step's noise can be regenerated without replaying earlier steps (the
    harness's seed-log resume relies on it), and nearby steps get unrelated streams.
    """
    digest = hashlib.blake2b(f"{base_seed}:{step}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class NoiseStream:
    """Seeded per-device generators that replay the same draws after every :meth:`restart`.

    Besides the step's draws (:meth:`normal`), a stream gives *lazy* draws (:meth:`lazy_normal`) that
    stay the same for every step of a block of steps — a subspace kept for ν steps (LOZO, SubZero) —
    seeded by the run's seed and the block. An optimizer's streams share a :class:`KeptDraws`, which
    keeps them for the block, so its passes compute them once; a stream without one regenerates them.
    """

    def __init__(self, kept: KeptDraws | None = None):
        self._generators: dict[torch.device, torch.Generator] = {}
        self._offsets = random.Random(0)  # table windows: host-side, so a GPU never syncs for an offset
        self._lazy: dict[torch.device, torch.Generator] = {}
        self._seed, self._run_seed, self._block, self._block_seed = 0, 0, None, 0
        self._kept, self._lazy_draws = kept, 0  # the shared kept draws; lazy draws asked for since the restart
        self._blocked_draws = 0  # blocked draws since the restart: the index in each block's seed
        self._block_generators: dict[torch.device, torch.Generator] = {}
        self.restarts = 0  # how many times the step's noise was (re)generated; tests count passes

    def restart(self, seed: int, run_seed: int = 0) -> None:
        """Replays the draws of step seed ``seed``; ``run_seed`` seeds the lazy draws' blocks."""
        self._seed, self._run_seed, self._block, self._blocked_draws = seed, run_seed, None, 0
        self._lazy_draws = 0
        self.restarts += 1
        self._offsets.seed(seed)
        for generator in self._generators.values():
            generator.manual_seed(seed)

    def _generator(self, device: torch.device) -> torch.Generator:
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self._seed)
        return self._generators[device]

    def normal(self, like: torch.Tensor, shape: tuple[int, ...] | None = None) -> torch.Tensor:
        """Standard normals shaped like ``like`` (or ``shape``), with its dtype and device."""
        return torch.randn(like.shape if shape is None else shape, generator=self._generator(like.device),
                           dtype=like.dtype, device=like.device)

    def blocked_normal(self, like: torch.Tensor) -> torch.Tensor:
        """Standard normals shaped like ``like``, drawn as blocks of :data:`BLOCK` entries. Block b of the
        k-th blocked draw since the restart comes from its own generator, seeded by a hash of (step
        seed, k, b), so the blocks can be drawn in parallel: on a CPU, whose ``randn`` runs on one
        thread, by a pool of ``torch.get_num_threads()`` threads. Every value is torch's own standard
        normal, and the same whatever the number of threads or the device's speed."""
        draw, self._blocked_draws = self._blocked_draws, self._blocked_draws + 1
        out = torch.empty(like.shape, dtype=like.dtype, device=like.device)
        flat = out.view(-1)
        blocks = [(flat[start:start + BLOCK], _block_seed(self._seed, draw, index))
                  for index, start in enumerate(range(0, flat.numel(), BLOCK))]
        if like.device.type == "cpu" and len(blocks) > 1:
            list(_block_pool().map(_fill_block, blocks))
        else:
            if like.device not in self._block_generators:
                self._block_generators[like.device] = torch.Generator(device=like.device)
            for block, seed in blocks:
                block.normal_(generator=self._block_generators[like.device].manual_seed(seed))
        return out

    def signs(self, like: torch.Tensor, shape: tuple[int, ...] | None = None) -> torch.Tensor:
        """Independent ±1 shaped like ``like`` (or ``shape``): 64 signs per 64-bit draw, unpacked a byte
        at a time through a 256-row table of the 8 signs each byte spells (one gather, no per-bit passes)."""
        shape = like.shape if shape is None else torch.Size(shape)
        count = shape.numel()
        words = torch.randint(-2 ** 63, 2 ** 63 - 1, ((count + 63) // 64,), generator=self._generator(like.device),
                              dtype=torch.int64, device=like.device)
        spelled = _byte_signs(like.dtype, like.device)
        return spelled.index_select(0, words.view(torch.uint8).long()).view(-1)[:count].view(shape)

    def offset(self, high: int) -> int:
        """A window's start in ``[0, high)``, the next of the step's offsets (host-side, seeded by restart)."""
        return self._offsets.randrange(high)

    def lazy_normal(self, shape: tuple[int, ...], like: torch.Tensor, block: int,
                    then: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """Standard normals of ``shape`` that every pass of every step of ``block`` draws alike
        (in parameter order, after each :meth:`restart`), passed through ``then`` if given (a QR, say).
        With :class:`KeptDraws`, the first pass of the block computes each and the others read it."""
        if self._block != block:
            # negative "steps": disjoint from the step seeds
            self._block, self._block_seed = block, step_seed(self._run_seed, -1 - block)
            for generator in self._lazy.values():
                generator.manual_seed(self._block_seed)
        draw, self._lazy_draws = self._lazy_draws, self._lazy_draws + 1
        if self._kept is None:
            return self._lazy_draw(shape, like, then)
        signature = (tuple(shape), like.dtype, like.device, then)
        entries = self._kept.entries_of((self._run_seed, block))
        if draw < len(entries) and entries[draw][0] == signature:
            return entries[draw][1]
        # not kept (the block's first pass, or another draw): the generator as the device's last kept draw left it
        previous = next((i for i in range(draw - 1, -1, -1) if entries[i][0][2] == like.device), None)
        generator = self._lazy_generator(like.device)
        if previous is None:
            generator.manual_seed(self._block_seed)
        else:
            generator.set_state(entries[previous][2])
        value = self._lazy_draw(shape, like, then)
        del entries[draw:]
        entries.append((signature, value, generator.get_state()))
        return value

    def _lazy_generator(self, device: torch.device) -> torch.Generator:
        if device not in self._lazy:
            self._lazy[device] = torch.Generator(device=device).manual_seed(self._block_seed)
        return self._lazy[device]

    def _lazy_draw(self, shape, like: torch.Tensor, then) -> torch.Tensor:
        value = torch.randn(shape, generator=self._lazy_generator(like.device), dtype=like.dtype, device=like.device)
        return value if then is None else then(value)


class KeptDraws:
    """Lazy draws kept while their block lasts, shared by the noise streams of one optimizer.

    Every pass of every probe of a block asks for the same lazy draws in the same order, so regenerating
    them is pure cost: GRZO's Flipout base U is a parameter-sized Gaussian that its 2B + 1 moves of a step
    would otherwise draw 2B + 1 times, and ZO-Muon's and SubZero's bases repeat a QR in every pass. The
    first pass computes each draw (after its ``then``) and keeps it; the others read it. Exact: each entry
    also keeps its generator's state after the draw, so a draw that differs from the kept one (another
    shape) comes from the very position regeneration would have reached, and the values are bitwise
    those of regeneration. Memory: the block's lazy draws (one parameter copy for Flipout's U, the
    thin bases otherwise), dropped when the next block starts.
    """

    def __init__(self):
        self._block, self._entries = None, []

    def entries_of(self, block) -> list:
        """The kept (signature, value, generator state) of ``block``; a new block drops the old one's."""
        if block != self._block:
            self._block, self._entries = block, []
        return self._entries


def _block_seed(seed: int, draw: int, block: int) -> int:
    """The seed of one block of a blocked draw (its own hash domain: never a step's or a probe's seed)."""
    digest = hashlib.blake2b(f"{seed}:{draw}:{block}".encode(), digest_size=8, person=b"zobench-blocks").digest()
    return int.from_bytes(digest, "little") >> 1


_THREAD = threading.local()  # each pool thread's CPU generator
_POOLS: dict[int, ThreadPoolExecutor] = {}  # per process: a forked worker must not inherit its parent's pool


def _block_pool() -> ThreadPoolExecutor:
    pid = os.getpid()
    if pid not in _POOLS:
        _POOLS[pid] = ThreadPoolExecutor(max_workers=torch.get_num_threads(), thread_name_prefix="zobench-noise")
    return _POOLS[pid]


def _fill_block(job: tuple[torch.Tensor, int]) -> None:
    block, seed = job
    if not hasattr(_THREAD, "generator"):
        _THREAD.generator = torch.Generator()
    block.normal_(generator=_THREAD.generator.manual_seed(seed))


@functools.lru_cache(maxsize=8)
def _byte_signs(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Row b holds the signs of byte b's bits, least significant first: +1 for a set bit, -1 for a clear one."""
    bits = (torch.arange(256).unsqueeze(1) >> torch.arange(8)) & 1
    return (2 * bits - 1).to(dtype=dtype, device=device)


@functools.lru_cache(maxsize=4)
def gaussian_table(size: int, seed: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The shared noise table: ``size`` standard normals drawn once on the CPU from ``seed`` (the same
    values on every device), kept for the life of the process."""
    values = torch.randn(size, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
    return values.to(device=device, dtype=dtype)


class Sample:
    """What a sampler draws for one parameter tensor.

    ``fresh`` is the new random direction. ``jitter`` is optional extra unit noise that a schedule scales
    and adds around its own first moment (ZO-AdaMU's momentum-centred Gaussian); ``None`` for plain samplers.
    ``factors`` is ``(left, right)`` where the direction is the low-rank product ``left @ right.T`` of the
    parameter viewed as a matrix, trailing dimensions flattened (LOZO's U and V, ZO-Muon's P and Ψᵀ). Such
    a sample is made from its factors and the parameter's ``shape``, moves θ by them (:meth:`add_to`)
    and forms ``fresh`` only if something reads it (a transform that does not work in factored form).
    ``kept`` names the factor that stays the same over a block of steps (0: the left, ZO-Muon's P; 1: the
    right, LOZO's V): ĝ is folded into the other one.
    """

    __slots__ = ("_fresh", "jitter", "factors", "kept", "shape")

    def __init__(self, fresh: torch.Tensor | None = None, jitter: torch.Tensor | None = None,
                 factors: tuple[torch.Tensor, torch.Tensor] | None = None, kept: int = 0, shape=None):
        if fresh is None and (factors is None or shape is None):
            raise ValueError("a sample needs its direction, or its factors and the parameter's shape")
        self._fresh, self.jitter, self.factors, self.kept = fresh, jitter, factors, kept
        self.shape = fresh.shape if fresh is not None else torch.Size(shape)

    @property
    def fresh(self) -> torch.Tensor:
        """The direction as a tensor of the parameter's shape (a factored sample's product, formed once)."""
        if self._fresh is None:
            left, right = self.factors
            self._fresh = (left @ right.T).view(self.shape)
        return self._fresh

    def add_to(self, target: torch.Tensor, alpha: float) -> None:
        """``target += alpha · fresh``. A factored sample adds straight from its factors (one ``addmm_``),
        whether or not its product was formed, so the result never depends on what read the sample:
        no parameter-sized temporary, and one pass over ``target`` instead of two. A non-contiguous
        target, which has no matrix view (never a parameter zobench moves), takes the formed product."""
        if self.factors is not None and target.is_contiguous():
            left, right = self.factors
            target.view(left.shape[0], right.shape[0]).addmm_(left, right.T, alpha=alpha)
        else:
            target.add_(self.fresh, alpha=alpha)


class Sampler(NamedTuple):
    """A named ``draw(stream, param, t) -> Sample``; the name is the ablation axis reports show. ``reads``:
    what a sampler that reads the forward pass uses to do so (AGZO's
    :class:`~zobench.optimizers.activations.ActivationBases`); None for samplers that only draw."""

    name: str
    draw: Callable[[NoiseStream, torch.Tensor, int], Sample]
    reads: object | None = None

    def __call__(self, stream: NoiseStream, param: torch.Tensor, t: int) -> Sample:
        return self.draw(stream, param, t)


def sampler(name: str):
    """Decorator: a draw function as a :class:`Sampler` called ``name``."""
    return lambda draw: Sampler(name, draw)


@sampler("gaussian")
def gaussian(stream: NoiseStream, param: torch.Tensor, t: int) -> Sample:
    """z ~ N(0, I), MeZO's probe."""
    return Sample(stream.normal(param))


@sampler("gaussian-blocks")
def gaussian_blocks(stream: NoiseStream, param: torch.Tensor, t: int) -> Sample:
    """z ~ N(0, I) as ``gaussian``, drawn in separately seeded blocks in parallel
    (:meth:`NoiseStream.blocked_normal`): the same distribution, other values for the same seed, and on a
    CPU several times faster. Not the default: every Gaussian run's numbers would change, and on a GPU,
    whose ``randn`` is already parallel, it launches one kernel per block."""
    return Sample(stream.blocked_normal(param))


@sampler("rademacher")
def rademacher(stream: NoiseStream, param: torch.Tensor, t: int) -> Sample:
    """z with independent ±1 entries, from packed random bits (:meth:`NoiseStream.signs`)."""
    return Sample(stream.signs(param))


TABLE_SIZE = 2 ** 25  # 32 Mi values: 128 MiB in float32, more than any single tensor of MiniLM or OPT-13B


def noise_table(size: int = TABLE_SIZE, seed: int = 0) -> Sampler:
    r"""z as a window of one shared table of Gaussian samples (Salimans et al. 2017): each tensor's
    noise at a step is ``table[o : o + n]`` (a view: nothing is drawn or allocated), its start o drawn
    uniformly from the step's seed, tensor after tensor.

    Statistics: every entry of z is a table value, so :math:`E[z_i^2]` is the table's mean square
    (1 up to :math:`O(1/\sqrt{N})`); two entries are the same value only where their windows overlap at
    that shift, with probability about n/N for a pair of tensors, and otherwise as uncorrelated as
    the table's own values (:math:`O(1/\sqrt{N})`). So ĝ stays unbiased on a quadratic up to
    :math:`O(1/\sqrt{N})`; ``tests/test_noise.py`` measures both. Limit: a tensor of more than ``size``
    entries is refused (raise ``size``); tensors near ``size`` get few distinct windows, so keep
    ``size`` well above the largest tensor. Memory: the table, once per process, whatever the model.
    """

    @sampler("table")
    def sample(stream: NoiseStream, param: torch.Tensor, t: int) -> Sample:
        count = param.numel()
        if count > size:
            raise ValueError(f"a tensor of {count:,} entries does not fit a noise table of {size:,} entries; "
                             f"build a larger one with noise_table(size=...)")
        start = stream.offset(size - count + 1)
        return Sample(gaussian_table(size, seed, param.dtype, param.device)[start:start + count].view(param.shape))

    return sample


def uncertain(base: Sampler = gaussian) -> Sampler:
    r"""ZO-AdaMU's two-part perturbation (Eq. 4), as two unit draws per tensor, one after the other from
    ``base`` (Gaussian by default, the paper's; any fast sampler, with the table both are views): z as
    ``fresh`` and ξ as ``jitter``. The AdaMU transform (:func:`~zobench.optimizers.transforms.adamu`)
    scales them by its anneal, :math:`\dot z = \sqrt{\alpha_t}\,z \sim \mathcal N(0, \alpha_t I)` and
    :math:`\ddot z = m_{t-1} + \sqrt{1-\alpha_t}\,\xi \sim \mathcal N(m_{t-1}, (1-\alpha_t) I)`
    (:math:`\sqrt{\alpha}` read as the standard deviation, as in the released code): scaled there, slice by
    slice, the draws cost no parameter-sized temporary.
    """

    @sampler(f"uncertain-{base.name}")
    def sample(stream: NoiseStream, param: torch.Tensor, t: int) -> Sample:
        return Sample(base(stream, param, t).fresh, base(stream, param, t).fresh)

    return sample


@sampler("flipout")
def flipout(stream: NoiseStream, param: torch.Tensor, t: int) -> Sample:
    r"""GRZO's per-example probes (Tan et al., arXiv 2606.02857), Flipout's sign factorisation
    (Wen et al., ICLR 2018): probe i of step t is :math:`z_i = U \odot r_i s_i^\top` for a weight matrix
    (trailing dimensions flattened) and :math:`U \odot r_i` for a vector, with one standard normal base
    U shared by every probe of the step and Rademacher signs :math:`r_i, s_i` of the probe's own. The
    probes are pseudo-independent: :math:`E[z_i z_j^\top] = 0` for i ≠ j (the signs), each entry has
    unit variance, and B of them cost B sign vectors, not B Gaussian tensors. U is the step's shared
    draw (:meth:`NoiseStream.lazy_normal` with a block of one step, so it depends on the run's seed and
    t alone), computed by the step's first move and kept for its other 2B moves (:class:`KeptDraws`: one
    parameter-sized tensor; regenerating it was about 70 % of GRZO's CPU step); the signs come from the
    probe's stream."""
    base = stream.lazy_normal(param.shape, param, t - 1)
    shape = _as_matrix(param)
    if shape is None:
        return Sample(base * stream.signs(param))
    rows, columns = stream.signs(param, (shape[0], 1)), stream.signs(param, (1, shape[1]))
    return Sample((base.view(shape) * rows).mul_(columns).view_as(param))  # one temporary, not two


def _as_matrix(param: torch.Tensor) -> tuple[int, int] | None:
    """(rows, columns) of a weight matrix, trailing dimensions flattened; None for vectors and scalars."""
    return (param.shape[0], param.numel() // param.shape[0]) if param.dim() >= 2 else None


def orthonormal(matrix: torch.Tensor) -> torch.Tensor:
    """The Q of a QR decomposition, in at least float32 (QR has no half-precision kernel)."""
    work = torch.promote_types(matrix.dtype, torch.float32)
    return torch.linalg.qr(matrix.to(work))[0].to(matrix.dtype)


def low_rank(rank: int, period: int) -> Sampler:
    r"""LOZO's perturbation (Chen et al., ICLR 2025): for each weight matrix :math:`z = U V^\top` with
    :math:`U \in \mathbb R^{m\times r}` fresh every step and :math:`V \in \mathbb R^{n\times r}` kept
    for ``period`` steps (ν, "lazy sampling"), both standard normal; vectors get a Gaussian z.
    LOZO's code draws V from the step's generator at the block's first step and keeps it in memory;
    here V is regenerated from the run's seed and the block, the same distribution with no state.
    """

    @sampler("low-rank")
    def sample(stream: NoiseStream, param: torch.Tensor, t: int) -> Sample:
        shape = _as_matrix(param)
        if shape is None:
            return Sample(stream.normal(param))
        v = stream.lazy_normal((shape[1], rank), param, (t - 1) // period)
        u = stream.normal(param, (shape[0], rank))
        return Sample(factors=(u, v), kept=1, shape=param.shape)

    return sample


SUBSPACE_SCALES = ("paper", "released")


def subspace(rank: int, period: int, scale: str = "paper") -> Sampler:
    r"""SubZero's perturbation (Yu et al., ICCV 2025): for each weight matrix :math:`z = U Z V^\top` with
    column-orthonormal :math:`U, V` (QR of Gaussian matrices) kept for ``period`` steps and a fresh
    :math:`r\times r` Gaussian core Z every step (r capped at the matrix's smaller side);
    vectors get a Gaussian z. U and V come from the run's seed and the block (a QR of an m×r matrix,
    cheap for small r), kept from the block's first pass (:class:`KeptDraws`). The sample carries
    :math:`(UZ, V)` as its factors, so no m×n product is formed.

    ``scale``: ``"paper"`` (the default) perturbs with :math:`UZV^\top` as the paper writes it, whose
    entries have variance about :math:`r^2/(mn)`; ``"released"`` multiplies it by :math:`\sqrt{mn}/r` as
    SubZero's released code does, which brings them to about 1, a Gaussian probe's scale (so ε and η mean
    what they mean for MeZO).
    """
    if scale not in SUBSPACE_SCALES:
        raise ValueError(f"scale must be one of {', '.join(SUBSPACE_SCALES)}, not {scale!r}")

    @sampler("subspace")
    def sample(stream: NoiseStream, param: torch.Tensor, t: int) -> Sample:
        shape = _as_matrix(param)
        if shape is None:
            return Sample(stream.normal(param))
        block, r = (t - 1) // period, min(rank, *shape)
        u, v = (stream.lazy_normal((n, r), param, block, then=orthonormal) for n in shape)
        left = u @ stream.normal(param, (r, r))  # U Z: Z fresh each step, U and V kept
        if scale == "released":
            left.mul_(math.sqrt(shape[0] * shape[1]) / r)
        return Sample(factors=(left, v), kept=1, shape=param.shape)

    return sample


def projected(rank: int, period: int) -> Sampler:
    r"""ZO-Muon's perturbation (Lang et al. 2026): for each weight matrix :math:`z = P\Psi` with a
    column-orthonormal :math:`P \in \mathbb R^{m\times r}` (QR of a Gaussian matrix) kept for ``period``
    steps and a fresh Gaussian :math:`\Psi \in \mathbb R^{r\times n}` every step (r capped at m): SubZero's
    subspace on the left side only. Vectors get a Gaussian z. P comes from the run's seed and the
    block, as SubZero's U and V. The sample carries the factors :math:`(P, \Psi^\top)`, so the step
    moves θ by them and orthogonalises in the subspace.
    """

    @sampler("projected")
    def sample(stream: NoiseStream, param: torch.Tensor, t: int) -> Sample:
        shape = _as_matrix(param)
        if shape is None:
            return Sample(stream.normal(param))
        r = min(rank, shape[0])
        basis = stream.lazy_normal((shape[0], r), param, (t - 1) // period, then=orthonormal)
        coordinates = stream.normal(param, (r, shape[1]))
        return Sample(factors=(basis, coordinates.T), shape=param.shape)

    return sample


HISTOGRAM_FROM = 1 << 16  # entries from which a CPU tensor's threshold is found through a histogram
BITS = {2: torch.int16, 4: torch.int32, 8: torch.int64}


def kth_smallest(values: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th smallest of the non-negative floats ``values`` (1-based): exactly
    ``values.flatten().kthvalue(k).values``, found on a CPU in a fraction of its time.

    A non-negative float's bits, read as an integer, order as the float does. So the top 16 bits
    bucket the values in order; one ``bincount`` and its cumulative sum name the bucket holding the
    k-th, and ``kthvalue`` runs only inside that bucket (on MiniLM-L6's 22.7M weights: about 80 ms
    against 420 ms for one ``kthvalue`` of the largest tensors' worth). On a GPU ``kthvalue`` is kept,
    since naming the bucket would synchronise the device."""
    flat = values.flatten()
    if flat.device.type != "cpu" or flat.numel() < HISTOGRAM_FROM or not flat.is_floating_point():
        return flat.kthvalue(k).values
    width = 8 * flat.element_size()
    buckets = flat.view(BITS[flat.element_size()]) >> (width - 16)
    if width == 16:
        buckets = buckets.int()  # bincount takes no 16-bit integers
    cumulative = torch.bincount(buckets, minlength=1 << 15).cumsum(0)
    bucket = int(torch.searchsorted(cumulative, k))  # the first whose cumulative count reaches k
    below = int(cumulative[bucket - 1]) if bucket else 0
    return flat[buckets == bucket].kthvalue(k - below).values


def smallest_magnitudes(param: torch.Tensor, sparsity: float) -> torch.Tensor:
    """True at the ``1 - sparsity`` fraction (at least one entry) of ``param`` with the smallest |θ|;
    entries tied with the threshold are kept too."""
    magnitudes = param.detach().abs()
    kept = max(1, math.ceil((1.0 - sparsity) * magnitudes.numel()))
    return magnitudes <= kth_smallest(magnitudes, kept)


def magnitude_masked(inner: Sampler, sparsity: float) -> Sampler:
    r"""Sparse-MeZO's perturbation (Liu et al. 2024): ``inner``'s z times a mask that keeps, in each
    tensor, the ``1 - sparsity`` fraction of entries with the smallest magnitude |θ|, so only those are
    perturbed and (since the update reuses z) updated.

    The mask is computed once per step, from θ before the step's first perturbation, and held until
    the next step (one byte per parameter): a mask recomputed from the perturbed θ of a later pass
    could differ, and the restore would then not undo the perturbation. Replay and resume recompute it
    from the same θ, so they stay bitwise. The threshold is each tensor's own quantile at that step
    (Sparse-MeZO thresholds per layer; recomputing it each step needs no state).
    """
    masks: dict[torch.Tensor, tuple[int, torch.Tensor]] = {}  # param -> (step, mask)

    @sampler(f"magnitude-masked {inner.name}")
    def sample(stream: NoiseStream, param: torch.Tensor, t: int) -> Sample:
        if param not in masks or masks[param][0] != t:
            masks[param] = (t, smallest_magnitudes(param, sparsity))  # the step's first pass: θ unperturbed
        return Sample(inner(stream, param, t).fresh * masks[param][1])  # the draw may be a shared view

    return sample

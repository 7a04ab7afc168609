"""The cheap samplers of the shared noise table and packed-bit signs: their statistics, that a step never
writes into the shared table, and that replay stays bitwise with them (every optimizer that takes a
``direction``, from the registry)."""

import copy

import pytest
import torch
from conftest import TinyRegression, registered

from zobench import optimizers
from zobench.optimizers import noise
from zobench.optimizers.noise import NoiseStream, gaussian_blocks, gaussian_table, noise_table, rademacher

WITH_DIRECTION = [name for name in optimizers.names() if "direction" in optimizers.get(name).hyperparameters()]


def _horizon(name: str) -> dict:
    """A 100-step run: the anneal of ZO-AdaMU starts within it."""
    return {"T1": 10} if "T1" in optimizers.get(name).hyperparameters() else {}


def _probes(sampler, shape, count, dtype=torch.float64):
    stream, like = NoiseStream(), torch.zeros(shape, dtype=dtype)
    rows = []
    for step in range(count):
        stream.restart(1000 + step)
        rows.append(sampler(stream, like, step).fresh.flatten())
    return torch.stack(rows)


@pytest.mark.parametrize("sampler", [noise_table(2 ** 16), rademacher, gaussian_blocks],
                         ids=["table", "packed-signs", "gaussian-blocks"])
def test_probe_covariance_is_the_identity(sampler):
    z = _probes(sampler, (4, 8), 4000)
    covariance = z.T @ z / len(z)
    # 4000 samples: each entry within about 4 standard errors (1/sqrt(4000) ≈ 0.016; the diagonal of
    # ±1 signs is exactly 1)
    torch.testing.assert_close(covariance, torch.eye(32, dtype=z.dtype), rtol=0, atol=0.08)
    assert abs(float(z.mean())) < 0.01


def test_packed_signs_are_the_bits_of_the_draws():
    stream = NoiseStream()
    stream.restart(3)
    z = rademacher(stream, torch.zeros(130), 1).fresh
    generator = torch.Generator().manual_seed(3)
    words = torch.randint(-2 ** 63, 2 ** 63 - 1, (3,), generator=generator, dtype=torch.int64).tolist()
    bits = [(word >> k) & 1 for word in words for k in range(64)][:130]
    assert z.tolist() == [2.0 * bit - 1 for bit in bits]


def blocks_by_hand(seed: int, draw: int, count: int, block: int) -> torch.Tensor:
    """The blocked draw restated: block b is torch's randn from the blake2b hash of "seed:draw:b"."""
    import hashlib

    parts = []
    for index, start in enumerate(range(0, count, block)):
        digest = hashlib.blake2b(f"{seed}:{draw}:{index}".encode(), digest_size=8, person=b"zobench-blocks").digest()
        generator = torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)
        parts.append(torch.randn(min(block, count - start), generator=generator, dtype=torch.float64))
    return torch.cat(parts)


@pytest.mark.parametrize("threads", [1, 3])
def test_blocked_draws_are_torchs_normals_whatever_the_threads(threads, monkeypatch):
    monkeypatch.setattr(noise, "BLOCK", 64)
    monkeypatch.setattr(noise, "_POOLS", {})
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)  # the pool's size
    stream, like = NoiseStream(), torch.zeros(10, 30, dtype=torch.float64)  # 300 entries: 4 full blocks and 44
    stream.restart(7)
    first, second = stream.blocked_normal(like), stream.blocked_normal(like)
    assert torch.equal(first.flatten(), blocks_by_hand(7, 0, 300, 64))
    assert torch.equal(second.flatten(), blocks_by_hand(7, 1, 300, 64))
    stream.restart(7)
    assert torch.equal(stream.blocked_normal(like), first)  # every pass of the step draws the same


def test_blocked_draws_are_standard_normal_and_blocks_independent(monkeypatch):
    """200k entries in 4096-entry blocks: mean and variance within 4 standard errors of N(0, 1), and
    neighbouring blocks uncorrelated within 5/√4096, the 5-sigma band for 48 pairs (a repeated seed
    would give correlation 1)."""
    monkeypatch.setattr(noise, "BLOCK", 4096)
    stream = NoiseStream()
    stream.restart(11)
    z = stream.blocked_normal(torch.zeros(200_704, dtype=torch.float64))
    n = len(z)
    assert abs(float(z.mean())) < 4 / n ** 0.5
    assert abs(float(z.var()) - 1) < 4 * (2 / n) ** 0.5
    blocks = z.view(-1, 4096)
    correlations = (blocks[1:] * blocks[:-1]).mean(1) / (blocks[1:].std(1) * blocks[:-1].std(1))
    assert correlations.abs().max() < 5 / 4096 ** 0.5


def test_table_estimate_is_unbiased_on_a_quadratic():
    """E[ĝz] = ∇f for f(θ) = ½θᵀAθ: the mean of 6000 single-probe estimates, within sampling error."""
    d = 6
    a = torch.diag(torch.arange(1.0, d + 1, dtype=torch.float64))
    theta = torch.linspace(-1, 1, d, dtype=torch.float64)
    z = _probes(noise_table(2 ** 16), (d,), 6000)
    eps = 1e-3
    f = lambda x: 0.5 * x @ a @ x  # noqa: E731
    g = torch.stack([(f(theta + eps * zi) - f(theta - eps * zi)) / (2 * eps) * zi for zi in z])
    error = (g.mean(0) - a @ theta).abs() / (g.std(0) / len(g) ** 0.5)
    assert error.max() < 4.5, f"mean estimate off by {error.max():.1f} standard errors"


def test_a_tensor_larger_than_the_table_is_refused():
    with pytest.raises(ValueError, match="does not fit a noise table of 64 entries|raise table_size"):
        noise_table(64)(NoiseStream(), torch.zeros(65), 1)


@pytest.fixture(scope="module")
def pristine_table():
    return torch.randn(2 ** 25, generator=torch.Generator().manual_seed(0), dtype=torch.float32).double()


def _tiny_float64():
    torch.manual_seed(0)
    model = TinyRegression().double()
    model.inputs, model.targets = model.inputs.double(), model.targets.double()
    return model


@pytest.mark.parametrize("name", WITH_DIRECTION)
def test_steps_never_write_into_the_shared_table(name, pristine_table):
    model = _tiny_float64()
    optimizer = optimizers.get(name).create(model.parameters(), context={"total_steps": 100}, lr=1e-2,
                                            direction="table", **_horizon(name))
    for _ in range(3):
        optimizer.step(model)
    assert torch.equal(gaussian_table(2 ** 25, 0, torch.float64, torch.device("cpu")), pristine_table)


@pytest.mark.parametrize("direction", ["table", "rademacher", "gaussian-blocks"])
@pytest.mark.parametrize("name", [name for name in WITH_DIRECTION if optimizers.get(name).replayable])
def test_replay_is_bitwise_with_the_cheap_samplers(name, direction):
    info = optimizers.get(name)

    def build():
        model = _tiny_float64()
        return model, info.create(model.parameters(), context={"total_steps": 100}, lr=1e-2, seed=4,
                                  direction=direction, **_horizon(name))

    model, optimizer = build()
    records = []
    for _ in range(4):
        optimizer.step(model)
        records.append(copy.deepcopy(optimizer.last_record))
    resumed_model, resumed = build()
    for record in records[:2]:
        resumed.replay(record)
    for _ in range(2):
        resumed.step(resumed_model)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), resumed_model.parameters()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_the_histogram_threshold_is_kthvalue_exactly(dtype):
    """Sparse-MeZO's threshold through the bit histogram equals torch's kthvalue, ties and zeros included."""
    from zobench.optimizers.noise import HISTOGRAM_FROM, kth_smallest

    generator = torch.Generator().manual_seed(1)
    n = HISTOGRAM_FROM + 4_321
    for values in (torch.randn(n, generator=generator).to(dtype).abs(),
                   torch.randint(0, 5, (n,), generator=generator).to(dtype), torch.zeros(n, dtype=dtype)):
        for k in (1, 2, n // 4, n // 2 + 1, n - 1, n):
            assert torch.equal(kth_smallest(values, k), values.kthvalue(k).values), (k, values[:3])


@pytest.mark.parametrize("name", registered(family="zo"))
def test_kept_lazy_draws_take_bitwise_the_regenerated_steps(name):
    """A block's lazy draws (Flipout's U, LOZO's V, the QR'd bases of SubZero and ZO-Muon) are computed by
    its first pass and read by the rest: the steps must be bitwise those of streams that regenerate them.
    Period 2 where declared, so the five steps cross blocks."""
    declared = optimizers.get(name).hyperparameters()
    options = {key: value for key, value in {"period": 2, "T1": 2, "T3": 10}.items() if key in declared}
    runs = []
    for kept in (True, False):
        torch.manual_seed(0)
        model = TinyRegression()
        optimizer = optimizers.create(name, model.parameters(), lr=1e-2, **options)
        if not kept:
            optimizer.streams = [NoiseStream() for _ in optimizer.streams]
        for _ in range(5):
            optimizer.step(model)
        runs.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*runs)), name


def test_a_kept_draw_asked_for_in_another_shape_is_the_regenerated_one():
    """A pass that asks for other lazy draws than the kept ones (a tensor skipped, another shape) must get
    what regeneration gives: the generator stands where the kept draws before it left it."""
    def lazy(stream, shapes):
        stream.restart(7, run_seed=3)
        return [stream.lazy_normal(shape, torch.zeros((), dtype=torch.float64), 0, then=then)
                for shape, then in shapes]

    first = [((3, 2), None), ((4, 2), noise.orthonormal), ((5,), None)]
    second = [((3, 2), None), ((6, 2), noise.orthonormal), ((5,), None)]  # the second draw differs
    kept = noise.KeptDraws()
    for shapes in (first, second, first):
        got = lazy(NoiseStream(kept), shapes)
        expected = lazy(NoiseStream(), shapes)
        assert all(torch.equal(a, b) for a, b in zip(got, expected))
    assert lazy(NoiseStream(kept), first)[0] is lazy(NoiseStream(kept), first)[0]  # read back, not drawn again


def test_a_factored_sample_moves_a_tensor_by_its_factors_without_forming_their_product():
    """LOZO's, SubZero's and ZO-Muon's probes move θ by ``addmm_`` from their factors: the dense move's
    value (fp64), and the m × n product is formed only when something reads ``fresh``."""
    generator = torch.Generator().manual_seed(0)
    left, right = (torch.randn(shape, generator=generator, dtype=torch.float64) for shape in [(6, 2), (12, 2)])
    target = torch.randn((6, 3, 4), generator=generator, dtype=torch.float64)  # trailing dimensions flattened
    expected = target + 0.5 * (left @ right.T).view(6, 3, 4)
    sample = noise.Sample(factors=(left, right), shape=target.shape)
    sample.add_to(target, 0.5)
    torch.testing.assert_close(target, expected, rtol=1e-14, atol=1e-14)
    assert sample._fresh is None, "the move formed the product"
    assert torch.equal(sample.fresh, (left @ right.T).view(6, 3, 4))
    with pytest.raises(ValueError, match="its factors and the parameter's shape"):
        noise.Sample(factors=(left, right))

"""What the 2025–26 methods claim of themselves, beyond their dense restatements
(tests/test_dense_reference.py): each property follows from the method's rule."""

import pytest
import torch
from conftest import TinyRegression, sst2_head_suite
from frontier_maths import frontier_reference

from zobench import optimizers


def _trained(name, scale=1.0, steps=12, **hyperparameters):
    torch.manual_seed(0)
    model = TinyRegression().double()
    model.inputs, model.targets = model.inputs.double(), model.targets.double()
    optimizer = optimizers.create(name, list(model.parameters()), lr=1e-2, eps=1e-3, seed=3, **hyperparameters)
    for _ in range(steps):
        optimizer.step(lambda: scale * model())
    return model, optimizer


def restated(method, **hyperparameters):
    """The dense restatement of ``method`` over the 12 steps :func:`_trained` takes (lr 1e-2, ε 1e-3, seed 3)."""
    torch.manual_seed(0)
    start = TinyRegression().double()
    start.inputs, start.targets = start.inputs.double(), start.targets.double()
    names = [n for n, _ in start.named_parameters()]

    def loss_of(values):
        return torch.func.functional_call(start, dict(zip(names, values)))

    return frontier_reference(method, loss_of, [p.detach().clone() for p in start.parameters()], [0.0] * len(names),
                              12, 1e-2, 1e-3, 3, **hyperparameters)


def test_meazo_steps_do_not_depend_on_the_scale_of_the_loss():
    """ĝ and √v̂ scale alike, so a loss 1000 times larger takes the same steps (up to ζ and rounding),
    where ZO-SGD's steps grow 1000-fold."""
    same, _ = _trained("meazo")
    scaled, _ = _trained("meazo", scale=1000.0)
    for a, b in zip(same.parameters(), scaled.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-9)
    sgd, sgd_scaled = _trained("zo-sgd", steps=1), _trained("zo-sgd", scale=1000.0, steps=1)
    assert not torch.allclose(sgd[0].out.weight, sgd_scaled[0].out.weight, atol=1e-6)


def test_meazo_keeps_one_scalar_and_averages_q_probes():
    """Two probes: the scalar moment is of the mean ĝ, and the step averages ĝᵢzᵢ (the restatement)."""
    model, optimizer = _trained("meazo", probes=2)
    assert set(optimizer.memory) == {"second_moment"} and all(not s for s in optimizer.state.values())
    expected = restated("meazo", probes=2)
    for got, want in zip(model.parameters(), expected):
        torch.testing.assert_close(got.detach(), want, rtol=0, atol=1e-12)


def test_zo_mopi_with_one_probe_matches_its_restatement():
    """One probe: ĝ folds into the fresh factor Ψ, never into the kept basis A, so the momentum stays in
    A's frame and is carried into each new A (ν = 3 here: four blocks in 12 steps)."""
    model, optimizer = _trained("zo-mopi", probes=1, period=3)
    expected = restated("zo-mopi", probes=1, period=3)
    for got, want in zip(model.parameters(), expected):
        torch.testing.assert_close(got.detach(), want, rtol=0, atol=1e-12)


def test_lezo_moves_only_the_layers_its_step_chose():
    """A tiny BERT: 4 blocks, embeddings and pooler modules, 9 layers; at ρ = 0.75 a step chooses
    round(9/4) = 2 of them, and every tensor outside them stays bitwise where it was (no draw, no decay)."""
    from transformers import BertConfig, BertModel

    from zobench.optimizers.layers import layer_of, random_layers
    from zobench.optimizers.noise import step_seed

    torch.manual_seed(0)
    model = BertModel(BertConfig(hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=24,
                                 vocab_size=40, max_position_embeddings=16))
    groups = optimizers.decay_groups(model, weight_decay=0.1)
    order = list(dict.fromkeys(label for group in groups for label in group["layers"]))
    assert order[:4] == ["embeddings.word_embeddings", "embeddings.position_embeddings",
                         "embeddings.token_type_embeddings", "encoder.layer.0"] and len(order) == 9
    optimizer = optimizers.create("lezo", groups, lr=1e-2, seed=4)
    assert optimizer.describe()["sampler"] == "gaussian on random layers (0.25)"
    tokens = torch.randint(0, 40, (2, 6))
    for step in (1, 2, 3):
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        optimizer.step(lambda: model(tokens).last_hidden_state.pow(2).mean())
        chosen = {order[i] for i in random_layers(0.25).choose(step_seed(4, step), 9)}
        assert len(chosen) == 2
        for name, p in model.named_parameters():
            assert torch.equal(p, before[name]) != (layer_of(name) in chosen), (step, name)


def test_adamezo_keeps_scalars_only_and_rebuilds_its_moments_over_the_horizon():
    """Horizon 3 over 12 steps: no tensor in the state, the last two steps' (step, ĝ) in memory, and the
    parameters those of Adam's sums truncated to three steps (the restatement keeps the ĝz whole)."""
    model, optimizer = _trained("adamezo", horizon=3)
    assert all(not s for s in optimizer.state.values())
    assert [step for step, _ in optimizer.memory["history"]] == [12, 11]
    expected = restated("adamezo", horizon=3)
    for got, want in zip(model.parameters(), expected):
        torch.testing.assert_close(got.detach(), want, rtol=0, atol=1e-12)


def test_dizo_rescales_each_tensors_drift_from_the_start_within_the_clip():
    """Three steps with κ = 3 against κ = 1000 (no projection yet): the same MeZO steps, then each
    tensor's drift from θ₀ (kept as the ``anchor`` buffer) scaled by its own factor in [1 − τ, 1 + τ]."""
    projected, optimizer = _trained("dizo", steps=3, interval=3, projection_lr=50.0)
    plain, _ = _trained("dizo", steps=3, interval=1000)
    torch.manual_seed(0)
    start = TinyRegression().double()
    factors = []
    for p, q, p0 in zip(projected.parameters(), plain.parameters(), start.parameters()):
        assert torch.equal(optimizer.state[p]["anchor"], p0.detach())
        drift, moved = (q - p0).detach(), (p - p0).detach()
        factor = float((moved * drift).sum() / (drift * drift).sum())
        torch.testing.assert_close(moved, factor * drift, rtol=0, atol=1e-12)
        factors.append(factor)
    assert all(0.8 - 1e-12 <= f <= 1.2 + 1e-12 for f in factors) and len({round(f, 9) for f in factors}) > 1
    assert len(optimizer.last_record["evaluations"]) == 4  # the projection's two losses join the record




def test_mezo_svrg_snapshots_take_the_whole_training_set_and_count_its_batches(shared_data, tmp_path):
    """Through the harness on SST-2's head (64 training examples, batches of 16): the whole-set loss is
    the mean cross-entropy over every training example, and a snapshot step costs its 2 × 4 batches."""
    import torch.nn.functional as F

    from zobench.harness import execute
    from zobench.problems import build_problem
    from zobench.store import ResultStore
    from zobench.suite import load_suite

    path = tmp_path / "svrg.yaml"
    path.write_text(sst2_head_suite("svrg", "{name: mezo-svrg, lr: 0.01, period: 2}", 3, 3))
    suite = load_suite(path)
    problem = build_problem(suite.runs[0])
    whole, batches = problem.whole_train_closure()
    examples = problem.splits.train
    labels = torch.tensor([g[0] for g in problem.gold["train"]])
    with torch.no_grad():
        expected = F.cross_entropy(problem.scorer.scores(examples), labels)
        assert batches == 4 and float(whole()) == pytest.approx(float(expected), rel=1e-6)
    store = ResultStore(tmp_path / "out")
    assert execute(suite, store, quiet=True) == []
    log = store.read_log(suite.runs[0].key)
    assert [e["forward_passes"] for e in log[1:]] == [8, 12, 20]  # snapshot, between (4), snapshot
    assert [len(e["record"]["evaluations"]) for e in log[1:]] == [2, 4, 2]


def test_flipout_probes_share_their_base_and_are_uncorrelated():
    """Every probe of a step is the one base U with a rank-one sign pattern r sᵀ of its own (U ⊙ r for a
    vector), so |z_i| = |U| exactly; over steps, two probes' entrywise product U²(r_i r_j)(s_i s_j) has
    mean 0 and variance E[U⁴] = 3 per entry, so its mean over N entries is within 5·√(3/N) of 0."""
    from zobench.optimizers.noise import NoiseStream, flipout, step_seed

    matrix, vector = torch.zeros(6, 5, dtype=torch.float64), torch.zeros(7, dtype=torch.float64)
    products = []
    for t in range(1, 401):
        probes = []
        for i in range(2):
            stream = NoiseStream()
            stream.restart(step_seed(step_seed(9, t), i), 9)
            probes.append([flipout(stream, p, t).fresh for p in (matrix, vector)])
        (z_matrix, z_vector), (w_matrix, w_vector) = probes
        assert torch.equal(z_matrix.abs(), w_matrix.abs()) and torch.equal(z_vector.abs(), w_vector.abs())
        signs = torch.sign(z_matrix * w_matrix)  # (r_i r_j)(s_i s_j)ᵀ: rank one
        assert torch.linalg.matrix_rank(signs) == 1
        products.append(torch.cat([(z_matrix * w_matrix).flatten(), z_vector * w_vector]))
    cross = torch.cat(products)
    assert abs(float(cross.mean())) < 5 * (3 / cross.numel()) ** 0.5
    assert float(torch.cat([p.abs() for p in products]).mean()) > 0.5  # E|U²| = 1: the probes are not zero


def test_grzo_takes_each_example_of_a_task_batch_alone(shared_data, tmp_path):
    """Through the harness on SST-2's head (batches of 16): the 16 one-example slices' losses average to the
    batch's loss, a GRZO step evaluates each slice twice and counts two forward passes, and more groups
    than examples is refused in one line that names the fix."""
    from zobench.harness import execute
    from zobench.problems import build_problem
    from zobench.store import ResultStore
    from zobench.suite import load_suite

    path = tmp_path / "grzo.yaml"
    path.write_text(sst2_head_suite("grzo", "{name: grzo, lr: 1.0e-5}", 2, 2))
    suite = load_suite(path)
    closure = build_problem(suite.runs[0]).loss_closure(1)
    with torch.no_grad():
        slices = [float(closure.part(i, 16)) for i in range(16)]
        assert closure.examples == 16 and sum(slices) / 16 == pytest.approx(float(closure()), rel=1e-5)
        assert len(set(slices)) > 1  # the examples differ
        with pytest.raises(ValueError, match=r"17 batch slices .* exceed the batch's 16 examples; use at most 16"):
            closure.part(0, 17)
    store = ResultStore(tmp_path / "out")
    assert execute(suite, store, quiet=True) == []
    log = store.read_log(suite.runs[0].key)
    assert [e["forward_passes"] for e in log[1:]] == [2, 4]
    assert [len(e["record"]["evaluations"]) for e in log[1:]] == [32, 32]


def test_grzo_steps_do_not_depend_on_the_scale_of_the_loss():
    """δ_i and their spread s scale alike, so a loss 1000 times larger takes the same steps up to the 1e-8
    floor, where ZO-SGD's steps grow 1000-fold. Here s is about 1e-3 (2ε times a directional derivative
    of order 1), so the floor changes each step by about 1e-5 of itself: bound 1e-4 of the distance."""
    def trained(scale):
        torch.manual_seed(0)
        model = TinyRegression().double()
        model.inputs, model.targets = model.inputs.double(), model.targets.double()
        optimizer = optimizers.create("grzo", list(model.parameters()), lr=1e-5, eps=1e-3, seed=3)

        def closure():
            return scale * model()
        closure.part = lambda part, parts: scale * model.part(part, parts)
        for _ in range(12):
            optimizer.step(closure)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    torch.manual_seed(0)
    start = torch.cat([p.detach().double().flatten() for p in TinyRegression().parameters()])
    same, scaled = trained(1.0), trained(1000.0)
    moved, differ = float((same - start).abs().max()), float((same - scaled).abs().max())
    assert moved > 1e-3 and differ < 1e-4 * moved


def test_agzo_probes_each_linear_weight_inside_the_span_of_its_inputs():
    """With the first layer's inputs in a 2-D subspace of R⁵ and rank 2, every step changes that layer's
    weight only along the subspace: ΔW v = 0 (to rounding) for v orthogonal to it, while a Gaussian probe
    (MeZO) moves W along v too. The forward hook is gone after each step, and the method refuses ranks."""
    from zobench.distributed import DataParallel

    def trained(name, **hyperparameters):
        torch.manual_seed(0)
        model = TinyRegression().double()
        generator = torch.Generator().manual_seed(5)
        model.inputs = torch.randn(16, 2, generator=generator, dtype=torch.float64) @ torch.randn(
            2, 5, generator=generator, dtype=torch.float64)
        model.targets = model.targets.double()
        start = model.hidden.weight.detach().clone()
        optimizer = optimizers.create(name, list(model.parameters()), lr=1e-2, eps=1e-3, seed=3, **hyperparameters)
        for _ in range(6):
            optimizer.step(model)
            assert not torch.nn.modules.module._global_forward_hooks
        orthogonal = torch.linalg.svd(model.inputs, full_matrices=True)[2][2:].T  # 5 × 3, ⊥ the inputs' rows
        return float(((model.hidden.weight.detach() - start) @ orthogonal).abs().max()), optimizer

    confined, agzo = trained("agzo", rank=2)
    leaked, _ = trained("zo-sgd")
    assert confined < 1e-12 and leaked > 1e-4
    with pytest.raises(ValueError, match="read each step's activations, which differ between ranks; run this method"):
        agzo.distribute(DataParallel(2))


@pytest.mark.parametrize("examples,parts", [(16, 16), (16, 5), (10, 4), (7, 1)])
def test_batch_slices_cut_the_batch_as_tensor_split_does(examples, parts):
    from zobench.problems.base import batch_slice

    rows = torch.arange(examples)
    expected = [chunk.tolist() for chunk in torch.tensor_split(rows, parts)]
    assert [rows[batch_slice(examples, i, parts)].tolist() for i in range(parts)] == expected

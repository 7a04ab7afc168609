"""The memory study: parameter counts, the fitted model against hand computations, and real probes."""

import itertools

import numpy as np
import pytest

from zobench.memory.fit import FEATURES, MemoryModel, features, known_elements
from zobench.memory.probe import Point, Shape, run
from zobench.memory.study import MemoryStudyError, fit_models, load_study, measure_all, write_report
from zobench.models import OPT_SHAPES


@pytest.mark.parametrize("shape", [Shape(64, 2, 4, 256), Shape(96, 3, 3, 200, vocab=1000, positions=128)])
def test_parameter_count_equals_the_built_model(shape):
    from transformers import OPTConfig, OPTForCausalLM

    model = OPTForCausalLM(OPTConfig(hidden_size=shape.hidden, num_hidden_layers=shape.layers,
                                     num_attention_heads=shape.heads, ffn_dim=shape.ffn, vocab_size=shape.vocab,
                                     word_embed_proj_dim=shape.hidden, max_position_embeddings=shape.positions))
    assert shape.parameters() == sum(p.numel() for p in model.parameters())


def test_parameter_counts_of_the_named_opt_sizes_are_the_published_ones():
    counts = {name: Shape(*OPT_SHAPES[name]).parameters() / 1e9 for name in ("opt-1.3b", "opt-13b", "opt-175b")}
    assert counts["opt-1.3b"] == pytest.approx(1.3, rel=0.05)
    assert counts["opt-13b"] == pytest.approx(12.9, rel=0.03)
    assert counts["opt-175b"] == pytest.approx(175, rel=0.03)


def _best_nonnegative_residual(design, target) -> float:
    """The smallest residual over every subset of columns whose least-squares solution is >= 0: the
    non-negative optimum, found by exhaustion (an independent reference for scipy's Lawson–Hanson)."""
    best = np.linalg.norm(target)
    for k in range(1, design.shape[1] + 1):
        for subset in itertools.combinations(range(design.shape[1]), k):
            solution = np.linalg.lstsq(design[:, list(subset)], target, rcond=None)[0]
            if (solution >= 0).all():
                best = min(best, np.linalg.norm(design[:, list(subset)] @ solution - target))
    return best


def test_fit_finds_the_nonnegative_optimum_on_random_problems():
    rng = np.random.default_rng(0)
    for _ in range(200):  # 12 measurements × 5 features, as a small study has
        rows = [(rng.uniform(0, 1e6, size=len(FEATURES)), 0.0, float(rng.normal(0, 1e6))) for _ in range(12)]
        model = MemoryModel.fit("m", rows, "float32")
        solution = np.array([*model.coefficients.values(), model.overhead_bytes])
        design = np.column_stack([np.stack([f for f, _, _ in rows]) * 4, np.ones(12)])
        target = np.array([peak for _, _, peak in rows])
        assert (solution >= 0).all()
        assert np.linalg.norm(design @ solution - target) == pytest.approx(
            _best_nonnegative_residual(design, target), rel=1e-6)


def test_fit_recovers_known_element_counts_and_predicts_at_another_dtype():
    shapes = [Shape(h, l, 4, 4 * h, vocab=v) for h, l, v in [(128, 2, 50272), (256, 4, 50272), (512, 4, 8192),
                                                              (256, 8, 4096)]]
    truth = {"parameters": 1.0, "largest tensor": 1.5, "activations": 10.0, "transients": 20.0, "logits": 2.0}
    rows = []
    for shape, length in itertools.product(shapes, (256, 1024)):
        f, known = features(shape, length, 1), known_elements(shape, shape.parameters(), 3)
        rows.append((f, known, 4 * (known + sum(truth[n] * v for n, v in zip(FEATURES, f))) + 3e8))
    model = MemoryModel.fit("m", rows, "float32")
    assert model.coefficients == pytest.approx(truth, rel=1e-6) and model.overhead_bytes == pytest.approx(3e8)
    big = Shape(*OPT_SHAPES["opt-13b"])
    f, known = features(big, 2048, 1), known_elements(big, 5000, 3)
    assert known == big.parameters() + 15000
    assert model.predict(f, known, "float16") == pytest.approx(
        2 * (known + sum(truth[n] * v for n, v in zip(FEATURES, f))))


def test_counted_buffers_follow_the_registry():
    from zobench.memory.study import Method

    assert [Method("m", o).buffers_per_trainable for o in (None, "zo-sgd", "zo-adamu", "fo-adam", "fo-sgd")] == \
        [0, 0, 1, 3, 1]


@pytest.fixture(scope="module")
def probes():
    shape = Shape(512, 8, 8, 1024)  # 51M parameters: the parameter-sized buffers dominate at length 32
    methods = {"inference": None, "Adam": "fo-adam", "MeZO": "zo-sgd", "ZO-AdaMU": "zo-adamu"}
    peaks = {m: run(Point(m, o, "none", shape, 32)) for m, o in methods.items()}
    return shape, {m: r["peak_bytes"] - r["baseline_bytes"] for m, r in peaks.items()}


def test_probes_see_adams_state_and_mezos_lack_of_it(probes):
    shape, peak = probes
    copy = 4 * shape.parameters()  # one fp32 parameter-sized buffer
    assert 0.8 * copy < peak["inference"] < 1.6 * copy
    assert peak["Adam"] - peak["inference"] > 2.5 * copy  # gradients and two moments
    assert peak["MeZO"] - peak["inference"] < 0.75 * copy  # at most one tensor's noise at a time
    largest = 4 * shape.vocab * shape.hidden  # the embedding, 59 % of this model
    # its m buffer, plus the step's per-tensor temporaries (the mixed probe, v, the update direction)
    assert 0.75 * copy < peak["ZO-AdaMU"] - peak["MeZO"] < copy + 5 * largest


@pytest.mark.slow
def test_a_small_study_writes_its_validation_coefficients_figure_and_table5(tmp_path):
    study_file = tmp_path / "mem.yaml"
    study_file.write_text("""name: mem
methods: [{label: MeZO, optimizer: zo-sgd}, {label: FT (Adam), optimizer: fo-adam}]
fit: {shapes: [[64, 2, 4, 256], [128, 2, 4, 512], [128, 4, 4, 512]], sequence_lengths: [32, 128]}
validate: {models: [opt-125m], sequence_length: 64}
predict:
  dtype: float16
  sequence_length: 2048
  models: [opt-125m, opt-1.3b, opt-13b, opt-66b]
  hardware: {A100: {memory_gib: 80, gpus: [1, 2]}}
  table5: [MeZO, FT (Adam)]
  paper: {1×A100 (80GB): {MeZO: 30B}}
""")
    study = load_study(study_file)
    records = measure_all(study, tmp_path / "out", progress=lambda line: None, workers=2)  # probes at once
    assert len(records) == 2 * (3 * 2 + 1)
    assert measure_all(study, tmp_path / "out", progress=pytest.fail) == records  # resumed: nothing re-measured
    index = write_report(study, records, tmp_path / "out")
    folder = index.parent
    assert (folder / "figure3.png").stat().st_size > 10_000
    sizes = ["—", "125M", "1.3B", "13B", "66B"]
    rows = [line.split(" | ") for line in (folder / "table5.md").read_text().splitlines()[4:] if line.startswith("| ")]
    assert [row[0] for row in rows] == ["| 1×A100 (80GB)", "| 2×A100 (160GB)"]
    assert rows[0][1].endswith(" / 30B")
    mezo, adam = ([sizes.index(row[i].split(" / ")[0].strip(" |")) for row in rows] for i in (1, 2))
    models = fit_models(study, records)
    for label, column, buffers in (("MeZO", mezo, 0), ("FT (Adam)", adam, 3)):
        model = models[label]
        for gpus, cell in zip((1, 2), column):  # recomputed by hand: the largest size whose peak fits
            peaks = [2 * (Shape(*OPT_SHAPES[n]).parameters() * (1 + buffers) + sum(
                model.coefficients[f] * v for f, v in zip(FEATURES, features(Shape(*OPT_SHAPES[n]), 2048, 1))))
                for n in ("opt-125m", "opt-1.3b", "opt-13b", "opt-66b")]
            assert cell == sum(peak <= gpus * 80 * 2 ** 30 for peak in peaks)
    # Adam holds four copies of the weights and MeZO one: MeZO fits at least as large a model
    assert all(m >= a for m, a in zip(mezo, adam)), (mezo, adam)
    for name in ("validation", "coefficients"):
        lines = [line for line in (folder / f"{name}.md").read_text().splitlines() if line.startswith("| ")]
        assert [line.split(" | ")[0] for line in lines[1:]] == ["| MeZO", "| FT (Adam)"]


def test_a_misspelt_optimizer_in_a_study_is_one_line(tmp_path):
    study_file = tmp_path / "bad.yaml"
    study_file.write_text("name: bad\nmethods: [{label: M, optimizer: zo-sgdd}]\nfit: {shapes: [[8, 1, 1, 8]], "
                          "sequence_lengths: [8]}\nvalidate: {models: [opt-125m], sequence_length: 8}\npredict: "
                          "{dtype: float16, sequence_length: 8, hardware: {A: {memory_gib: 1, gpus: [1]}}, "
                          "table5: [M], models: [opt-125m]}\n")
    with pytest.raises(Exception, match="zo-sgd") as error:
        load_study(study_file)
    assert "\n" not in str(error.value)
    with pytest.raises(MemoryStudyError, match="methods: an empty list; give at least 1.*missing required key 'predict' \\(6 problems\\)"):
        (tmp_path / "short.yaml").write_text("name: s\nmethods: []\nfit: {}\nvalidate: {}\n")
        load_study(tmp_path / "short.yaml")
    with pytest.raises(MemoryStudyError, match="unknown OPT size 'opt-7b'"):
        text = study_file.read_text().replace("zo-sgdd", "zo-sgd")
        study_file.write_text(text.replace("models: [opt-125m]}", "models: [opt-7b]}"))
        load_study(study_file)
    with pytest.raises(MemoryStudyError, match="predict.table5: N is not a method label"):
        study_file.write_text(study_file.read_text().replace("opt-7b", "opt-125m").replace("[M]", "[N]"))
        load_study(study_file)

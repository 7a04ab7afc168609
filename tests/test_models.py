"""The packaged SmolLM2 (converted once from its GGUF, cached, a working causal scorer); fp16 warnings."""

import time

import pytest
import torch

from zobench.models import load_model
from zobench.scoring import CausalScorer
from zobench.tasks import load_task, local_examples


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZOBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))  # convert afresh, in a temp dir
        yield load_model("smollm2-135m")


def test_conversion_is_cached(smollm2):
    started = time.perf_counter()
    again = load_model("smollm2-135m")
    assert time.perf_counter() - started < 10  # the safetensors copy, not the GGUF again
    assert again.kind == "causal" and sum(p.numel() for p in again.model.parameters()) == 134_515_008


def test_scores_a_real_sst2_sentence(smollm2, shared_data):
    task = load_task("sst2")
    positive = local_examples(task, "test", shared_data)[0]  # "it 's a charming and often affecting journey ."
    with torch.no_grad():
        scores = CausalScorer(smollm2, task).scores([positive])
    assert scores.shape == (1, 2) and torch.isfinite(scores).all()
    assert scores[0, 1] > scores[0, 0]  # " great" over " terrible"


def test_fp16_weights_warn_and_the_record_flags_the_restore_drift():
    from zobench.measure import environment

    with pytest.warns(UserWarning, match="fp16 weights: a zeroth-order perturb/restore cycle drifts"):
        load_model("random:opt-125m", dtype="float16")
    assert environment(torch.device("cpu"), "float16")["fp16_restore_drift"] is True
    assert environment(torch.device("cpu"), "bfloat16")["fp16_restore_drift"] is False


def test_random_minilm_has_the_packaged_encoders_shape():
    packaged = load_model("minilm-l6").model
    random = load_model("random:minilm-l6")
    assert random.kind == "encoder"
    assert {n: p.shape for n, p in random.model.named_parameters()} == \
        {n: p.shape for n, p in packaged.named_parameters()}


def test_random_models_are_initialised_on_their_device():
    # on the meta device nothing is allocated: a model built on the CPU and moved would have CPU weights first
    loaded = load_model("random:opt-1.3b", device="meta")
    assert {p.device.type for p in loaded.model.parameters()} == {"meta"}

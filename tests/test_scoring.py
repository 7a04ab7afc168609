"""Candidate scoring against hand computations on tiny random models, and what PEFT makes trainable."""

import copy

import pytest
import torch
import torch.nn.functional as F
from tiny_lm import WORDS, option_log_probs, tiny_bert, tiny_llama, word_tokenizer

from zobench import optimizers
from zobench.models import LoadedModel
from zobench.problems.task_problem import apply_peft
from zobench.scoring import PROTOTYPE_SCALE, CausalScorer, HeadScorer, MaskedScorer, TopBlockScorer
from zobench.tasks import Task

EXAMPLES = [{"sentence": "a great movie", "label": "1"}, {"sentence": "a terrible terrible film .", "label": "0"}]


@pytest.fixture(scope="module")
def tokenizer():
    return word_tokenizer()


def test_causal_scores_are_mean_candidate_log_probs(tokenizer):
    task = Task(name="t", template="{sentence} it was", label="label",
                candidates={"0": " terrible", "1": " great movie ."})  # one- and three-token candidates
    model = tiny_llama()
    with torch.no_grad():
        scores = CausalScorer(LoadedModel(model, tokenizer, "causal", "tiny"), task).scores(EXAMPLES)
        for row, example in enumerate(EXAMPLES):
            for column, candidate in enumerate(task.continuations):
                expected = option_log_probs(model, tokenizer, task.prompt(example), candidate).mean()
                assert scores[row, column].item() == pytest.approx(expected.item(), abs=1e-5)


def test_masked_scores_are_label_word_logits_at_the_mask(tokenizer):
    task = Task(name="t", template="{sentence} it was {mask} .", label="label",
                candidates={"0": " terrible", "1": " great"})
    model = tiny_bert("masked")
    with torch.no_grad():
        scores = MaskedScorer(LoadedModel(model, tokenizer, "masked", "tiny"), task).scores(EXAMPLES)
        for row, example in enumerate(EXAMPLES):
            ids = tokenizer(task.render(example, mask="[MASK]"), return_tensors="pt")["input_ids"]
            logits = model(input_ids=ids).logits[0, ids[0].tolist().index(WORDS.index("[MASK]"))]
            expected = logits[[WORDS.index("terrible"), WORDS.index("great")]]
            torch.testing.assert_close(scores[row], expected, rtol=0, atol=1e-5)


def test_head_starts_as_prototype_cosines(tokenizer):
    task = Task(name="t", template="{sentence} it was", label="label", candidates={"0": " terrible", "1": " great"})
    model = tiny_bert("encoder")
    scorer = HeadScorer(LoadedModel(model, tokenizer, "encoder", "tiny-head-test"), task)

    def embed(text):
        batch = tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            return F.normalize(model(**batch).last_hidden_state[0].mean(0), dim=0)

    with torch.no_grad():
        scores = scorer.scores(EXAMPLES)
    for row, example in enumerate(EXAMPLES):
        for column, prototype in enumerate(["it was terrible", "it was great"]):
            expected = PROTOTYPE_SCALE * embed(task.prompt(example)) @ embed(prototype)
            assert scores[row, column].item() == pytest.approx(expected.item(), abs=1e-5)
    assert [p.numel() for p in scorer.trainable().parameters()] == [2 * 16, 2]


def test_top_block_trains_a_copy_of_the_last_block_over_cached_states(tokenizer):
    """Against the whole model run with the trained block in place: caching the states entering the
    block changes nothing, padding included (the two examples differ in length)."""
    task = Task(name="t", template="{sentence} it was", label="label", candidates={"0": " terrible", "1": " great"})
    model = tiny_bert("encoder")
    frozen = {n: p.detach().clone() for n, p in model.named_parameters()}
    loaded = LoadedModel(model, tokenizer, "encoder", "tiny-top-test")
    scorer = TopBlockScorer(loaded, task)
    with torch.no_grad():
        torch.testing.assert_close(scorer.scores(EXAMPLES), HeadScorer(loaded, task).scores(EXAMPLES), rtol=0, atol=1e-5)
    block = model.encoder.layer[-1]
    assert sum(p.numel() for p in scorer.trainable().parameters()) == sum(p.numel() for p in block.parameters()) + 2 * 16 + 2
    optimizer = optimizers.create("zo-sgd", optimizers.decay_groups(scorer.trainable()), lr=1e-1, eps=1e-2)
    for _ in range(3):
        optimizer.step(lambda: F.cross_entropy(scorer.scores(EXAMPLES), torch.tensor([1, 0])))
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters())
    assert not all(torch.equal(a, b) for a, b in zip(scorer.block.parameters(), block.parameters()))

    reference = copy.deepcopy(model)
    reference.encoder.layer[-1] = scorer.block
    for row, example in enumerate(EXAMPLES):
        batch = tokenizer(task.prompt(example), return_tensors="pt")
        with torch.no_grad():
            feature = F.normalize(reference(**batch).last_hidden_state[0].mean(0), dim=0)
            torch.testing.assert_close(scorer.scores([example])[0], scorer.head(feature), rtol=0, atol=1e-5)
            torch.testing.assert_close(scorer.scores(EXAMPLES)[row], scorer.head(feature), rtol=0, atol=1e-5)


def test_top_block_refuses_a_model_without_encoder_blocks(tokenizer):
    task = Task(name="t", template="{sentence} it was", label="label", candidates={"0": " terrible", "1": " great"})
    with pytest.raises(ValueError, match="peft: top trains the last block of an encoder .*use peft: lora or head"):
        TopBlockScorer(LoadedModel(tiny_llama(), tokenizer, "causal", "tiny"), task)


@pytest.mark.parametrize("mode, expected", [("lora", 2 * 2 * (8 * 16 + 16 * 8)), ("prefix", 5 * 2 * 2 * 16)])
def test_peft_perturbs_only_the_adapter(tokenizer, mode, expected):
    loaded = apply_peft(LoadedModel(tiny_llama(), tokenizer, "causal", "tiny"), mode)
    trainable = {n: p for n, p in loaded.model.named_parameters() if p.requires_grad}
    assert sum(p.numel() for p in trainable.values()) == expected
    frozen = {n: p.detach().clone() for n, p in loaded.model.named_parameters() if not p.requires_grad}
    before = {n: p.detach().clone() for n, p in trainable.items()}
    task = Task(name="t", template="{sentence} it was", label="label", candidates={"0": " terrible", "1": " great"})
    scorer = CausalScorer(loaded, task)
    labels = torch.tensor([1, 0])
    optimizer = optimizers.create("zo-sgd", optimizers.decay_groups(loaded.model), lr=1e-2, eps=1e-2)
    for _ in range(3):
        optimizer.step(lambda: F.cross_entropy(scorer.scores(EXAMPLES), labels))
    assert all(torch.equal(p, frozen[n]) for n, p in loaded.model.named_parameters() if not p.requires_grad)
    assert any(not torch.equal(p, before[n]) for n, p in trainable.items())


def test_surface_form_calibration_subtracts_the_surface_prompt_log_likelihood(tokenizer):
    task = Task(name="t", template="{sentence} it was", label="label",
                candidates={"0": " terrible", "1": " great movie ."})
    model = tiny_llama()

    def summed(prompt_text, candidate):
        return option_log_probs(model, tokenizer, prompt_text, candidate).sum()

    with torch.no_grad():
        scorer = CausalScorer(LoadedModel(model, tokenizer, "causal", "tiny"), task, calibrate=True)
        scores = scorer.scores(EXAMPLES)
        for row, example in enumerate(EXAMPLES):
            for column, candidate in enumerate(task.continuations):
                expected = summed(task.prompt(example), candidate) - summed(" it was", candidate)
                assert scores[row, column].item() == pytest.approx(expected.item(), abs=1e-4)

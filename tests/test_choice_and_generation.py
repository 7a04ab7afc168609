"""Multiple-choice and generation tasks: options per example, LM-style loss, greedy decoding, SQuAD F1."""

import pytest
import torch
from tiny_lm import option_log_probs, tiny_llama, word_tokenizer

from zobench.models import LoadedModel
from zobench.scoring import CausalScorer
from zobench.tasks import Task, TaskError, metrics

CHOICE = Task(name="mc", template="{premise}{question|connective}", maps={"connective": {"effect": " so"}},
              choices="options", continuation=" {choice} .", answers="answers")
CHOICE_EXAMPLES = [{"premise": "the dog ran", "question": "effect", "options": ["the cat ran", "a movie", "film"],
                    "answers": ["a movie"]},
                   {"premise": "the cat sat", "question": "effect", "options": ["the dog sat", "it was great"],
                    "answers": ["it was great", "the dog sat"]}]
GENERATION = Task(name="gen", template="who ran ? answer :", answers="answers", continuation=" {choice} .",
                  generate={"max_new_tokens": 6, "stop": "."})


@pytest.fixture(scope="module")
def scorer():
    return lambda task: CausalScorer(LoadedModel(tiny_llama(), word_tokenizer(), "causal", "tiny"), task)


def test_options_differ_per_example_and_the_rest_is_minus_infinity(scorer):
    score = scorer(CHOICE)
    with torch.no_grad():
        table = score.scores(CHOICE_EXAMPLES)
        assert table.shape == (2, 3) and table[1, 2].item() == float("-inf")
        for row, example in enumerate(CHOICE_EXAMPLES):
            for column, option in enumerate(CHOICE.options(example)):
                expected = option_log_probs(score.model, score.tokenizer, CHOICE.prompt(example), option).mean()
                assert table[row, column].item() == pytest.approx(expected.item(), abs=1e-5)
    assert CHOICE.options(CHOICE_EXAMPLES[0]) == [" the cat ran .", " a movie .", " film ."]
    assert CHOICE.gold(CHOICE_EXAMPLES[0]) == [1] and CHOICE.gold(CHOICE_EXAMPLES[1]) == [0, 1]


def test_lm_loss_is_the_token_mean_cross_entropy_of_the_gold_options(scorer):
    score = scorer(CHOICE)
    with torch.no_grad():
        loss = score.lm_loss(CHOICE_EXAMPLES)
        tokens = torch.cat([option_log_probs(score.model, score.tokenizer, CHOICE.prompt(e), CHOICE.target(e))
                            for e in CHOICE_EXAMPLES])
    assert CHOICE.target(CHOICE_EXAMPLES[1]) == " the dog sat ."  # the first correct choice
    assert loss.item() == pytest.approx(-tokens.mean().item(), abs=1e-5)


def test_greedy_generation_equals_an_argmax_loop_cut_at_the_stop(scorer):
    score = scorer(GENERATION)
    examples = [{"answers": ["the dog"]}, {"answers": ["a cat"]}]
    long_prompt = Task(name="gen2", template="the cat sat because the dog ran . who ran ? answer :",
                       answers="answers", generate=GENERATION.generate)
    expected = []
    for task in (GENERATION, long_prompt):
        ids = score.tokenizer(task.prompt(examples[0]))["input_ids"]
        for _ in range(6):
            with torch.no_grad():
                ids.append(int(score.model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
        text = score.tokenizer.decode(ids[-6:], skip_special_tokens=True)
        expected.append(text.split(".")[0].strip())
    mixed = CausalScorer(LoadedModel(score.model, score.tokenizer, "causal", "tiny"), GENERATION)
    assert mixed.generate(examples[:1]) == expected[:1]
    # a batch of prompts of different lengths is left-padded and decodes each as if alone
    batch = [CausalScorer(LoadedModel(score.model, score.tokenizer, "causal", "tiny"), t).task.prompt(examples[0])
             for t in (GENERATION, long_prompt)]
    assert len(set(map(len, batch))) == 2
    two = Task(name="two", template="{prompt}", answers="answers", generate=GENERATION.generate)
    both = CausalScorer(LoadedModel(score.model, score.tokenizer, "causal", "tiny"), two)
    assert both.generate([{"prompt": p, "answers": ["x"]} for p in batch]) == expected


@pytest.mark.parametrize("prediction, answers, f1, em", [
    ("Denver Broncos", ["Denver Broncos"], 1.0, 1.0),
    ("the Denver Broncos!", ["Denver Broncos"], 1.0, 1.0),  # articles and punctuation are dropped
    ("Denver", ["Denver Broncos"], 2 * (1.0 * 0.5) / 1.5, 0.0),
    ("Broncos of Denver", ["Denver Broncos", "Carolina"], 2 * (2 / 3 * 1.0) / (2 / 3 + 1.0), 0.0),
    ("Carolina Panthers", ["Denver Broncos", "Carolina Panthers"], 1.0, 1.0),  # the best gold answer counts
    ("", ["Denver"], 0.0, 0.0),
    ("two two three", ["two three three"], 2 * (2 / 3) * (2 / 3) / (4 / 3), 0.0),  # shared tokens with multiplicity
])
def test_squad_f1_and_exact_match_against_hand_values(prediction, answers, f1, em):
    assert metrics.f1(prediction, answers) == pytest.approx(f1)
    assert metrics.exact_match(prediction, answers) == em


def test_declarations_of_the_three_kinds_are_checked(tmp_path):
    def declare(body):
        path = tmp_path / "t.yaml"
        path.write_text("name: t\ntemplate: '{x}'\n" + body)
        return Task.from_yaml(path)

    assert declare("choices: [a, b]\nlabel: label\n").kind == "multiple_choice"
    assert declare("answers: a\ngenerate: {}\n").metric == "f1"
    with pytest.raises(TaskError, match="declare exactly one of candidates"):
        declare("candidates: {0: a}\nlabel: label\nchoices: [a]\n")
    with pytest.raises(TaskError, match="choices needs 'label or answers'"):
        declare("choices: [a, b]\n")
    with pytest.raises(TaskError, match="metric 'accuracy' does not fit a generation task"):
        declare("answers: a\ngenerate: {}\nmetric: accuracy\n")
    with pytest.raises(TaskError, match="needs a causal LM scored on its own"):
        declare("choices: [a, b]\nlabel: label\n").continuations


def _batch(problem, step):
    from zobench.optimizers.noise import step_seed

    order = torch.randperm(len(problem.splits.train), generator=torch.Generator().manual_seed(step_seed(0, step)))
    return [problem.splits.train[i] for i in order[:problem.batch_size].tolist()]


def test_copa_with_smollm2_scores_above_chance_and_trains_lm_style(shared_data):
    from zobench.problems.task_problem import TaskProblem

    problem = TaskProblem("copa", "smollm2-135m", data_dir=str(shared_data), num_train=32, num_dev=8,
                          num_test=100, batch_size=4, max_length=64)
    result = problem.evaluate("test")
    assert result["accuracy"] > 0.55  # 100 real COPA questions, two options each; chance is 0.5
    with torch.no_grad():
        assert problem.loss_closure(3)().item() == pytest.approx(problem.scorer.lm_loss(_batch(problem, 3)).item())


def test_f1_objective_is_the_negated_f1_of_greedy_answers_and_zo_steps_on_it(shared_data):
    from zobench import optimizers
    from zobench.problems.task_problem import TaskProblem

    problem = TaskProblem("squad", "smollm2-135m", peft="prefix", data_dir=str(shared_data), num_train=8,
                          num_dev=2, num_test=2, batch_size=2, max_length=384, objective="f1")
    value = problem.loss_closure(1)()
    batch = _batch(problem, 1)
    answers = problem.scorer.generate(batch)
    expected = sum(metrics.f1(a, e["answers"]) for a, e in zip(answers, batch)) / 2
    assert value.item() == pytest.approx(-expected) and not value.requires_grad
    evaluation = problem.evaluate("test")
    assert set(evaluation) == {"f1", "em", "loss"} and 0 <= evaluation["em"] <= evaluation["f1"] <= 1
    optimizer = optimizers.create("zo-sgd", problem.parameter_groups(), lr=1e-2, eps=1e-1)
    optimizer.step(problem.loss_closure(2))
    assert problem.trainable_parameters() < 200_000  # prefix tuning: only the virtual tokens are perturbed


def test_sharded_device_loads_through_device_map_and_trains(shared_data, monkeypatch):
    """device: sharded → device_map="auto" (over every visible GPU; here, with none, the CPU)."""
    import transformers

    from zobench import optimizers
    from zobench.problems import build_problem
    from zobench.suite import RunSpec

    spec = RunSpec(suite="s", problem="copa", optimizer="zo-sgd", label="MeZO", hyperparameters={"lr": 1e-6},
                   seed=0, steps=1, eval_every=1, targets=(), device="sharded", model="smollm2-135m",
                   data={"num_train": 8, "num_dev": 4, "num_test": 4, "batch_size": 2, "max_length": 64},
                   data_dir=str(shared_data))
    calls = []
    load = transformers.AutoModelForCausalLM.from_pretrained
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained",
                        lambda *args, **kwargs: calls.append(kwargs) or load(*args, **kwargs))
    problem = build_problem(spec, device="cpu")
    assert calls[0]["device_map"] == "auto"
    optimizer = optimizers.create("zo-sgd", problem.parameter_groups(), lr=1e-6, eps=1e-3)
    before = problem.evaluate("test")["loss"]
    optimizer.step(problem.loss_closure(0))
    assert problem.evaluate("test")["loss"] != before


def test_calibrated_choices_after_an_empty_surface_prompt_start_from_bos(scorer):
    task = Task(name="mc", template="{premise}", choices="options", continuation=" {choice}", label="label")
    score = CausalScorer(LoadedModel(tiny_llama(), word_tokenizer(), "causal", "tiny"), task, calibrate=True)
    score.tokenizer.bos_token = "[CLS]"
    example = {"premise": "the dog ran", "options": ["so the cat ran", "a movie"], "label": 0}
    assert task.surface_prompt() == ""
    with torch.no_grad():
        table = score.scores([example])
        for column, option in enumerate(task.options(example)):
            after_prompt = option_log_probs(score.model, score.tokenizer, "the dog ran", option).sum()
            after_bos = option_log_probs(score.model, score.tokenizer, "[CLS]", option).sum()
            assert table[0, column].item() == pytest.approx((after_prompt - after_bos).item(), abs=1e-4)


def test_generation_refuses_calibration():
    from zobench.scoring import make_scorer

    loaded = LoadedModel(tiny_llama(), word_tokenizer(), "causal", "tiny")
    with pytest.raises(ValueError, match="gen is a generation task: surface-form calibration scores options"):
        make_scorer(loaded, GENERATION, "causal", calibrate=True)

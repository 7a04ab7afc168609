"""Declared tasks on real data: rendered prompts, gold candidates, protocols, local loading, errors."""

import pytest

from zobench.tasks import TaskError, load_splits, load_task, local_examples, task_names

SPORT = "Dana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer at age 44, according to the Christopher Reeve Foundation."
# task -> (the task's rendering of the first test example, with "<mask>" at the mask, and its gold continuation)
EXPECTED = {
    "sst2": ("it 's a charming and often affecting journey . It was", " great"),
    "sst2-lmbff": ("it 's a charming and often affecting journey . It was <mask> .", " great"),
    "sst5": ("no movement , no yuks , not much of anything . It was <mask> .", " bad"),
    "trec": ("<mask> : How far is it from Denver to Aspen ?", " Number"),
    "snli": ("Two women are embracing while holding to go packages. ? <mask> , The sisters are hugging goodbye "
             "while holding to go packages after just eating lunch.", " Maybe"),
    "mnli": ("The new rights are nice enough ? <mask> , Everyone really likes the newest benefits", " Maybe"),
    "rte-lmbff": (f"{SPORT} ? <mask> , Christopher Reeve had an accident.", " No"),
    "rte": (f"{SPORT}\nDoes this mean that \"Christopher Reeve had an accident.\" is true? Yes or No?\n", "No"),
    "cb": ("Suppose Valence the void-brain, Valence the virtuous valet. Why couldn't the figger choose his own "
           "portion of titanic anatomy to shaft? Did he think he was helping? Can we infer that \"Valence was "
           "helping\"? Yes, No, or Maybe?\n", "No"),
    "wsc": ("Bernard , who had not told the government official that he was less than 21 when he filed for a "
            "homestead claim, did not consider that he had done anything dishonest. Still, anyone who knew that he "
            "was 19 years old could take his claim away from him .\nIn the previous sentence, does the pronoun "
            "\"him\" refer to anyone? Yes or No?\n", "No"),
    "copa": ("The man turned on the faucet so", " water flowed from the spout."),
    "wic": ("Does the word \"class\" have the same meaning in these two sentences? Yes, No?\nAn emerging "
            "professional class.\nApologizing for losing your temper, even though you were badly provoked, "
            "showed real class.\n", "No"),
}


# long passages: task -> (start of the prompt, its end, the gold continuation, how many options)
PASSAGES = {
    "multirc": ("What causes a change in motion? The application of a force.", "This requires only a very small "
                "force. \nQuestion: Would the mass of a baseball affect how much force you have to use to pick it up?"
                "\nI found this answer \"No\". Is that correct? Yes or No?\n", "No", 2),
    "record": ("Islamabad, Pakistan (CNN) -- The 24-year-old son of the late Benazir Bhutto", "- Thousands gathered "
               "near the home to mark the fifth anniversary of her death\n- ", "They will sew our lips, but we will "
               "chant, 'Long live Benazir Bhutto.'", 11),
    "squad": ("Title: Super_Bowl_50\nContext: Super Bowl 50 was an American football game", "\nQuestion: Which NFL "
              "team represented the AFC at Super Bowl 50?\nAnswer:", " Denver Broncos\n", 1),
}


def test_every_shipped_task_has_an_expected_rendering():
    assert set(task_names()) == set(EXPECTED) | set(PASSAGES) | {"boolq", "drop"}


@pytest.mark.parametrize("name", sorted(PASSAGES))
def test_long_passage_prompts_render_on_the_first_test_example(name, shared_data):
    task = load_task(name)
    example = local_examples(task, "test", shared_data)[0]
    start, end, gold, options = PASSAGES[name]
    assert task.prompt(example).startswith(start) and task.prompt(example).endswith(end)
    assert task.target(example) == gold and len(task.options(example)) == options


def test_record_accepts_every_gold_entity(shared_data):
    task = load_task("record")
    example = local_examples(task, "test", shared_data)[0]
    assert example["answers"] == ["Benazir Bhutto", "Bhutto"]
    assert [task.options(example)[i].rsplit(" ", 1)[-1] for i in task.gold(example)] == ["Bhutto.'", "Bhutto.'"]
    assert len(task.gold(example)) == 2


def test_drop_without_a_test_file_holds_its_test_examples_out_of_train(shared_data):
    task = load_task("drop")
    splits = load_splits(task, protocol="mezo", seed=0, num_train=1000, num_dev=500, num_test=1000,
                         data_dir=shared_data)
    assert splits.sizes == {"train": 1000, "dev": 500, "test": 1000}
    assert splits.source.endswith("(test held out of the train file)")
    assert not {task.prompt(e) for e in splits.test} & {task.prompt(e) for e in splits.train + splits.dev}
    example = splits.test[0]
    assert task.prompt(example).endswith("\nQuestion: Which season lasts longer in the peninsula, the rainy season "
                                         "or the dry season?\nAnswer:")
    assert task.gold_answers(example) == ["the dry season"] and task.target(example) == " the dry season\n"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_template_renders_the_first_test_example(name, shared_data):
    task = load_task(name)
    example = local_examples(task, "test", shared_data)[0]
    rendered, gold = EXPECTED[name]
    assert task.render(example, mask="<mask>") == rendered
    assert task.target(example) == gold
    assert task.prompt(example) == rendered.split("<mask>")[0]


def test_boolq_capitalises_the_question_and_adds_a_question_mark(shared_data):
    task = load_task("boolq")
    example = local_examples(task, "test", shared_data)[0]
    prompt = task.prompt(example)
    assert prompt.startswith("Ethanol fuel -- All biomass goes through at least some of these steps")
    assert prompt.endswith(" Does ethanol take more energy make that produces?\n")
    assert task.continuations[task.label_index(example)] == "No"


def test_mezo_protocol_sizes_and_disjoint_train_dev(shared_data):
    task = load_task("sst2")
    splits = load_splits(task, protocol="mezo", seed=0, num_train=1000, num_dev=500, num_test=1000,
                         data_dir=shared_data)
    assert splits.sizes == {"train": 1000, "dev": 500, "test": 872}  # the test split has only 872: all taken
    assert not {e["sentence"] for e in splits.train} & {e["sentence"] for e in splits.dev}
    again = load_splits(task, protocol="mezo", seed=0, data_dir=shared_data)
    assert [e["sentence"] for e in again.train] == [e["sentence"] for e in splits.train]
    other = load_splits(task, protocol="mezo", seed=1, data_dir=shared_data)
    assert [e["sentence"] for e in other.train] != [e["sentence"] for e in splits.train]


def test_small_train_split_gives_dev_100_as_mezo_does_for_cb_and_copa(shared_data):
    splits = load_splits(load_task("cb"), num_train=1000, num_dev=500, data_dir=shared_data)
    assert splits.sizes == {"train": 150, "dev": 100, "test": 56}
    splits = load_splits(load_task("copa"), num_train=1000, num_dev=500, data_dir=shared_data)
    assert splits.sizes == {"train": 300, "dev": 100, "test": 100}
    splits = load_splits(load_task("boolq"), num_train=1000, num_dev=500, data_dir=shared_data)
    assert splits.sizes["train"] == splits.sizes["dev"] == 16  # 32 offline rows: half each


def test_kshot_protocol_reads_the_lmbff_folder(shared_data):
    splits = load_splits(load_task("sst5"), protocol="kshot", seed=13, data_dir=shared_data)
    assert splits.sizes == {"train": 80, "dev": 80, "test": 2210}
    assert splits.source.endswith("SST-5/k-shot/16-13")


def test_data_directory_from_the_environment(shared_data, monkeypatch):
    monkeypatch.setenv("ZOBENCH_DATA", str(shared_data))
    assert load_splits(load_task("rte"), num_train=10, num_dev=5, num_test=7).sizes == {"train": 10, "dev": 5,
                                                                                      "test": 7}


def test_missing_data_names_the_task_the_sources_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TaskError) as error:
        load_splits(load_task("sst2"), data_dir=tmp_path)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("task sst2: no data; tried local file")
    assert "hub dataset glue/sst2" in message and "Set data_dir in the suite or ZOBENCH_DATA" in message


def test_a_user_task_file_needs_no_python(tmp_path, shared_data):
    path = tmp_path / "polarity.yaml"
    path.write_text('name: polarity\ntemplate: "Review: {sentence|strip}\\nSentiment:"\nlabel: label\n'
                    'candidates: {0: " negative", 1: " positive"}\n'
                    'local: {dir: SST-2, train: {file: glue/train.tsv, format: glue_tsv}, '
                    'test: {file: glue/dev.tsv, format: glue_tsv}}\n')
    task = load_task(str(path))
    example = local_examples(task, "test", shared_data)[0]
    assert task.prompt(example) == "Review: it 's a charming and often affecting journey .\nSentiment:"


def test_unknown_task_and_bad_declarations_are_named(tmp_path):
    with pytest.raises(TaskError, match="unknown task 'sst3'; did you mean sst5, sst2"):
        load_task("sst3")
    path = tmp_path / "bad.yaml"
    path.write_text('name: bad\ntemplate: "{sentence|shout}"\nlabel: label\ncandidates: {0: a}\n')
    with pytest.raises(TaskError, match="unknown template filter 'shout'"):
        load_task(str(path))


def test_in_context_prompts_carry_their_own_solved_demonstrations(shared_data):
    from zobench.tasks.demonstrations import SEPARATOR, WithDemonstrations

    task = load_task("sst2")
    splits = load_splits(task, num_train=200, num_dev=10, num_test=10, data_dir=shared_data)
    icl = WithDemonstrations(task, tuple(splits.train), k=4, seed=0)
    solved = {task.prompt(e) + task.continuations[task.label_index(e)] for e in splits.train}
    first, second = splits.test[0], splits.test[1]
    blocks = icl.prompt(first).split(SEPARATOR)
    assert len(blocks) == 5 and blocks[-1] == task.prompt(first)
    assert all(block in solved for block in blocks[:-1])
    assert icl.prompt(first) == icl.prompt(first)  # the same demonstrations every time
    assert icl.prompt(second).split(SEPARATOR)[:-1] != blocks[:-1]  # another example, another set
    assert icl.label_index(first) == task.label_index(first) and icl.continuations == task.continuations

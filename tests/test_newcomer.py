"""What a newcomer meets: data checked before any model loads, unreachable models and devices said
in --dry-run and reported once, and task files whose identity does not depend on where they lie."""

import shutil

import yaml

from zobench.cli import main
from zobench.suite import load_suite
from zobench.tasks import DEFINITIONS

from test_bad_input import refused


def task_file(folder, **changes):
    declaration = yaml.safe_load((DEFINITIONS / "sst2.yaml").read_text())
    declaration.update({"name": "my-sst2", **changes})
    path = folder / "my_task.yaml"
    path.write_text(yaml.safe_dump(declaration))
    return path


def suite(folder, shared_data, **changes):
    document = {"name": "newcomer", "tasks": ["my_task.yaml"], "models": ["random:opt-125m"],
                "data_dir": str(shared_data), "data": {"protocol": "mezo", "num_train": 16, "num_dev": 8,
                                                       "num_test": 8, "batch_size": 4},
                "optimizers": [{"name": "zo-sgd", "lr": 1e-6}], "budget": {"steps": 2}, **changes}
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_a_misspelt_format_is_refused_when_the_task_loads(tmp_path, shared_data, capsys):
    task_file(tmp_path, local={"dir": "SST-2", "train": {"file": "glue/train.tsv", "format": "csv"}})
    line = refused(capsys, ["run", str(suite(tmp_path, shared_data)), "--dry-run"], "local.train.format: 'csv'")
    assert "glue_tsv" in line  # the allowed formats are listed


def test_a_missing_data_directory_is_refused_before_running(tmp_path, shared_data, capsys):
    task_file(tmp_path)
    refused(capsys, ["run", str(suite(tmp_path, shared_data, data_dir=str(tmp_path / "nowhere"))), "--dry-run"],
            "is not a folder")


def test_a_wrong_kshot_seed_names_the_seeds_that_exist(tmp_path, shared_data, capsys):
    task_file(tmp_path)
    path = suite(tmp_path, shared_data, data={"protocol": "kshot"}, seeds=[0])
    refused(capsys, ["run", str(path), "--dry-run"], "exist for seeds 13, 21, 42, 87, 100: use those")


def test_a_missing_kshot_folder_is_refused_before_running(tmp_path, shared_data, capsys):
    task_file(tmp_path, kshot={"dir": "SST-2/k-shot/32-{seed}", "train": {"file": "train.tsv", "format": "glue_tsv"}})
    path = suite(tmp_path, shared_data, data={"protocol": "kshot"}, seeds=[13])
    refused(capsys, ["run", str(path), "--dry-run"], "exist for seeds none (wrong data_dir?)")


def test_labels_that_are_not_the_candidates_are_refused_on_raw_rows(tmp_path, shared_data, capsys):
    task_file(tmp_path, candidates={"negative": " terrible", "positive": " great"})
    line = refused(capsys, ["run", str(suite(tmp_path, shared_data)), "--dry-run"], "label_map")
    assert "['0', '1']" in line and "['negative', 'positive']" in line


def test_dry_run_names_unreachable_models_and_the_real_device(tmp_path, shared_data, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    task_file(tmp_path)
    path = suite(tmp_path, shared_data, models=["nobody/no-such-model"], device="auto", seeds=[0, 1])
    assert main(["run", str(path), "--dry-run"]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note: ")]
    assert any("model nobody/no-such-model cannot load here, so its 2 run(s) will fail" in n for n in notes)
    assert any("device auto: no GPU is visible, so these runs use the CPU" in n for n in notes)


def test_an_unreachable_model_is_reported_once_not_per_run(tmp_path, shared_data, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    task_file(tmp_path)
    path = suite(tmp_path, shared_data, models=["nobody/no-such-model"], seeds=[0, 1, 2])
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "no-such-model" in line]
    assert len(errors) == 1 and "3 run(s) skipped" in errors[0]


def test_a_task_file_is_labelled_by_its_name_and_keyed_by_its_content(tmp_path, shared_data):
    first, moved = tmp_path / "here", tmp_path / "elsewhere" / "deeper"
    first.mkdir()
    task_file(first)
    runs = load_suite(suite(first, shared_data)).runs
    shutil.copytree(first, moved)
    assert [run.key for run in load_suite(moved / "suite.yaml").runs] == [run.key for run in runs]
    assert {run.problem for run in runs} == {"my-sst2"}
    task_file(moved, template="{sentence} All in all, it was")  # a changed declaration is a new run
    assert load_suite(moved / "suite.yaml").runs[0].key != runs[0].key


def test_two_tasks_with_one_name_are_refused(tmp_path, shared_data, capsys):
    task_file(tmp_path, name="sst2")
    refused(capsys, ["run", str(suite(tmp_path, shared_data, tasks=["sst2", "my_task.yaml"])), "--dry-run"],
            "two problems are named 'sst2'")


def test_dry_run_bounds_memory_against_the_device(tmp_path, shared_data, capsys):
    from zobench.models import load_model

    task_file(tmp_path)
    path = suite(tmp_path, shared_data, models=["random:opt-13b"], dtype="float16",
                 optimizers=[{"name": "zo-sgd", "lr": 1e-6}, {"name": "zo-adamu", "lr": 1e-6, "T1": 1}], budget={"steps": 4})
    assert main(["run", str(path), "--dry-run"]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note: memory:")]
    parameters = sum(p.numel() for p in load_model("random:opt-13b", device="meta").model.parameters())
    for optimizer, copies in (("zo-sgd", 1), ("zo-adamu", 2)):  # weights, plus ZO-AdaMU's momentum
        gib = parameters * copies * 2 / 2 ** 30
        assert any(f"{optimizer} on random:opt-13b" in n and f"needs at least {gib:.0f} GiB" in n for n in notes)

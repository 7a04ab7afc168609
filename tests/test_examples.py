"""The examples of "Use the optimizers in your own training" run, and agree with the harness."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import hf_trainer  # noqa: E402
import own_loop  # noqa: E402

SMALL = ["--steps", "3", "--peft", "head", "--optimizer", "zo-adam@g", "--lr", "1e-2"]


@pytest.mark.slow
def test_hf_trainer_example_matches_the_harness(shared_data, tmp_path):
    """Same seeds, same batches, same head: the step losses agree to float32 rounding of the features
    (the harness caches them once, the trainer recomputes them with its own padding; a few 1e-7,
    amplified by ĝ's 1/ε over three steps), and so do the dev accuracies, up to one example."""
    result = hf_trainer.main(SMALL + ["--data-dir", str(shared_data), "--output-dir", str(tmp_path)])
    assert result["seeds_equal"]
    assert result["largest_difference"] < 1e-4
    assert result["dev"][0] == result["harness_dev"][0]
    assert abs(result["dev"][1] - result["harness_dev"][1]) <= 1 / 500
    assert len(result["records"]) == 3


@pytest.mark.slow
def test_own_loop_resumes_bitwise(shared_data, tmp_path):
    common = SMALL + ["--data-dir", str(shared_data), "--save-every", "2"]
    whole = own_loop.main(common + ["--checkpoint", str(tmp_path / "whole.pt")])
    assert own_loop.main(common + ["--checkpoint", str(tmp_path / "split.pt"), "--stop-after", "2"])["step"] == 2
    resumed = own_loop.main(common + ["--checkpoint", str(tmp_path / "split.pt")])
    assert torch.equal(resumed["trainable"], whole["trainable"])
    assert resumed["dev"] == whole["dev"]


def test_missing_data_is_one_line(tmp_path):
    with pytest.raises(SystemExit, match="no SST-2 data in .*: pass --data-dir"):
        own_loop.main(SMALL + ["--data-dir", str(tmp_path)])

"""Fine-tune the packaged MiniLM on SST-2 with any registered ZO method inside a Hugging Face Trainer,
then run the same method through zobench's harness and compare the two.

    python examples/hf_trainer.py                                   # ZO-Adam (g), 100 steps, ~2 min on 2 cores
    python examples/hf_trainer.py --optimizer zo-adamu --lr 1e-3 --optimizer-kwargs '{"T1": 20}'

The model is what a user writes: MiniLM's mean-pooled, normalised sentence embedding and a linear head,
with the encoder's last block trainable (``--peft top``, 1.8M parameters) or frozen (``--peft head``).
It is also what zobench's harness trains for ``peft: top`` / ``head``; to make the two runs comparable
step for step, the example takes three things from zobench: the task's prompts and data
(``../shared/data``, MeZO's protocol), the head's initial rows (the embeddings of the label words'
prompts, times 10) and the order of the training batches (step t's batch is drawn from the run's
seed and t, so it is laid out in that order for the trainer's sequential sampler).

The harness caches the frozen part of the model's output once; the trainer recomputes it in every
pass, with its own padding. So the two agree to float32 rounding, not bit for bit, and the comparison
printed at the end says by how much.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import TrainingArguments

from zobench.integrations.transformers import ZOTrainer
from zobench.models import load_model
from zobench.optimizers.noise import step_seed
from zobench.scoring import PROTOTYPE_SCALE
from zobench.tasks import load_splits, load_task

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MAX_LENGTH = 256


class SentenceClassifier(torch.nn.Module):
    """A sentence-transformers embedding (mean of the token states, normalised) and a linear head."""

    def __init__(self, encoder, head_rows: torch.Tensor, train_last_block: bool):
        super().__init__()
        self.encoder = encoder.requires_grad_(False)
        if train_last_block:
            self.encoder.encoder.layer[-1].requires_grad_(True)
        self.head = torch.nn.Linear(head_rows.shape[1], head_rows.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(head_rows)
            self.head.bias.zero_()

    def embed(self, input_ids, attention_mask, token_type_ids=None):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return F.normalize((hidden * weights).sum(1) / weights.sum(1), dim=-1)

    def forward(self, input_ids, attention_mask, labels, token_type_ids=None):
        logits = self.head(self.embed(input_ids, attention_mask, token_type_ids))
        return {"loss": F.cross_entropy(logits, labels), "logits": logits}


def step_batch(train: list[dict], step: int, batch_size: int, seed: int) -> list[dict]:
    """Step ``step``'s batch as the harness draws it: the first ``batch_size`` of a permutation drawn
    from the seed of (run seed, step), so it depends on the step alone."""
    generator = torch.Generator().manual_seed(step_seed(seed, step))
    return [train[i] for i in torch.randperm(len(train), generator=generator)[:batch_size].tolist()]


def step_ordered(train: list[dict], steps: int, batch_size: int, seed: int) -> list[dict]:
    """The training examples in the harness's order, step after step."""
    return [example for step in range(1, steps + 1) for example in step_batch(train, step, batch_size, seed)]


def harness_run(args, data_dir: Path) -> tuple[dict, list[dict]]:
    """The same method, data, seed and steps through zobench's harness: its record and step log."""
    from zobench.runner import run
    from zobench.store import ResultStore
    from zobench.suite import load_suite

    os.environ["TQDM_DISABLE"] = "1"  # the harness's caching bars
    folder = Path(tempfile.mkdtemp(prefix="zobench-hf-"))
    entry = {"name": args.optimizer, "lr": args.lr, "eps": args.eps, **args.optimizer_kwargs}
    suite = {"name": "hf-trainer-comparison", "tasks": ["sst2"], "models": ["minilm-l6"], "peft": args.peft,
             "data_dir": str(data_dir), "data": {"protocol": "mezo", "num_train": 1000, "num_dev": 500,
                                                 "num_test": 1000, "batch_size": args.batch_size},
             "optimizers": [entry], "seeds": [args.seed], "budget": {"steps": args.steps, "eval_every": args.steps}}
    (folder / "suite.json").write_text(json.dumps(suite))
    spec = load_suite(folder / "suite.json").runs[0]
    store = ResultStore(folder / "results")
    record = run(spec, store)
    return record, store.read_log(spec.key)


def sst2(data_dir: str | Path):
    """SST-2's task declaration and its splits under MeZO's protocol (1000 train, 500 dev), from the
    local folder that holds ``SST-2/``."""
    if not (Path(data_dir) / "SST-2").is_dir():
        sys.exit(f"no SST-2 data in {data_dir}: pass --data-dir, the folder that holds SST-2/")
    task = load_task("sst2")
    return task, load_splits(task, protocol="mezo", seed=0, num_train=1000, num_dev=500, num_test=1000, data_dir=data_dir)


def classifier(task, peft: str):
    """The packaged MiniLM as a :class:`SentenceClassifier` with the harness's initial head, and the
    collate function that turns examples into its inputs."""
    loaded = load_model("minilm-l6")

    def tokenized(texts):
        return loaded.tokenizer(texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")

    def collate(examples):
        batch = tokenized([task.prompt(e) for e in examples])
        batch["labels"] = torch.tensor([task.gold(e)[0] for e in examples])
        return batch

    prototypes = [task.surface_prompt().strip() + candidate for candidate in task.continuations]
    with torch.no_grad():
        rows = PROTOTYPE_SCALE * SentenceClassifier(loaded.model, torch.zeros(2, 1), False).embed(**tokenized(prototypes))
    return SentenceClassifier(loaded.model.eval(), rows, train_last_block=peft == "top"), collate


def parser_for(description: str) -> argparse.ArgumentParser:
    """The options both examples take."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--optimizer", default="zo-adam@g", help="any registered name (zobench list)")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--eps", type=float, default=1e-3)
    parser.add_argument("--optimizer-kwargs", type=json.loads, default={}, help="other hyperparameters, as JSON")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--peft", choices=["top", "head"], default="top")
    parser.add_argument("--data-dir", default=str(SHARED_DATA), help="folder holding SST-2/ (default ../shared/data)")
    return parser


def main(argv=None) -> dict:
    parser = parser_for(__doc__)
    parser.add_argument("--output-dir", default=None, help="the trainer's checkpoints (default: a temporary folder)")
    parser.add_argument("--no-compare", action="store_true", help="skip the harness run")
    args = parser.parse_args(argv)
    task, splits = sst2(args.data_dir)
    model, collate = classifier(task, args.peft)

    def accuracy(prediction):
        return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}

    training = TrainingArguments(
        output_dir=args.output_dir or tempfile.mkdtemp(prefix="zotrainer-"), max_steps=args.steps,
        per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=32, learning_rate=args.lr,
        lr_scheduler_type="constant", weight_decay=0.0, seed=args.seed, train_sampling_strategy="sequential",
        logging_steps=max(args.steps // 10, 1), save_strategy="no", report_to=[], use_cpu=True,
        remove_unused_columns=False, disable_tqdm=True)
    trainer = ZOTrainer(model=model, args=training, optimizer=args.optimizer,
                        optimizer_kwargs={"eps": args.eps, **args.optimizer_kwargs},
                        train_dataset=step_ordered(splits.train, args.steps, args.batch_size, args.seed),
                        eval_dataset=splits.dev, data_collator=collate, compute_metrics=accuracy)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"{args.optimizer} on SST-2, MiniLM-L6 peft {args.peft} ({trainable:,} trainable), {args.steps} steps")
    before = trainer.evaluate()["eval_accuracy"]
    trainer.train()
    after = trainer.evaluate()["eval_accuracy"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"trainer: dev accuracy {before:.3f} -> {after:.3f}; {trainer.forward_passes} forward passes; "
          f"process peak {peak:.0f} MiB")
    result = {"dev": [before, after], "records": trainer.zo_records}
    if args.no_compare:
        return result

    _, log = harness_run(args, Path(args.data_dir))
    steps = [entry["record"] for entry in log if "record" in entry]
    ours = torch.tensor([v for r in trainer.zo_records for v in r["evaluations"]], dtype=torch.float64)
    theirs = torch.tensor([v for r in steps for v in r["evaluations"]], dtype=torch.float64)
    result.update(harness_dev=[log[0]["dev"]["accuracy"], log[-1]["dev"]["accuracy"]],
                  seeds_equal=[r["seed"] for r in trainer.zo_records] == [r["seed"] for r in steps],
                  largest_difference=float(((ours - theirs).abs() / theirs.abs()).max()))
    print(f"harness: dev accuracy {result['harness_dev'][0]:.3f} -> {result['harness_dev'][1]:.3f}; "
          f"{log[-1]['forward_passes']} forward passes")
    print(f"step seeds {'the same' if result['seeds_equal'] else 'DIFFERENT'}; the {len(ours)} losses of the "
          f"{len(steps)} steps differ by at most {result['largest_difference']:.1e} (relative)")
    return result


if __name__ == "__main__":
    main()

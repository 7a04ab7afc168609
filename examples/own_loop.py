"""zobench's optimizers in your own training loop: data, evaluation, checkpoints and resume.

    python examples/own_loop.py --steps 60 --save-every 20 --checkpoint /tmp/own-loop.pt
    python examples/own_loop.py --steps 60 --save-every 20 --checkpoint /tmp/own-loop.pt   # again: resumes

Every zobench optimizer is a ``torch.optim.Optimizer`` stepped with a closure, ``loss =
optimizer.step(closure)``: the closure computes the current batch's loss with the parameters as they
are at that moment (perturbed, for a ZO method) and returns it; the optimizer calls it as often as
its estimator needs, under ``torch.no_grad()``, and never calls ``backward()``. A first-order name
(``fo-adam``) takes the same closure and backpropagates itself.

A checkpoint is the trainable weights, ``optimizer.state_dict()`` (its buffers and step count: the
noise of step t is regenerated from the seed and t) and the step; with batches drawn from (seed, step)
the resumed run ends bit for bit where an uninterrupted one does. With ``accelerate``, prepare the
model and the data loader; the optimizer may be prepared too (its wrapper passes the closure through).

The model and data are those of ``examples/hf_trainer.py`` (MiniLM on SST-2).
"""

from __future__ import annotations

from pathlib import Path

import torch

from hf_trainer import classifier, parser_for, sst2, step_batch
from zobench import optimizers


@torch.no_grad()
def dev_accuracy(model, collate, examples, batch_size=32) -> float:
    model.eval()
    hits = 0
    for start in range(0, len(examples), batch_size):
        batch = collate(examples[start:start + batch_size])
        hits += int((model(**batch)["logits"].argmax(-1) == batch["labels"]).sum())
    return hits / len(examples)


def main(argv=None) -> dict:
    parser = parser_for(__doc__)
    parser.add_argument("--save-every", type=int, default=0, help="steps between checkpoints (0: none)")
    parser.add_argument("--checkpoint", default=None, help="the checkpoint file; an existing one is resumed")
    parser.add_argument("--stop-after", type=int, default=None, help="end after this step, as a killed job would")
    args = parser.parse_args(argv)
    task, splits = sst2(args.data_dir)
    model, collate = classifier(task, args.peft)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = optimizers.create(args.optimizer, trainable, lr=args.lr, eps=args.eps, seed=args.seed,
                                  total_steps=args.steps, **args.optimizer_kwargs)
    checkpoint = Path(args.checkpoint) if args.checkpoint else None
    done = 0
    if checkpoint and checkpoint.is_file():
        saved = torch.load(checkpoint)
        for param, value in zip(trainable, saved["trainable"]):
            param.data.copy_(value)
        optimizer.load_state_dict(saved["optimizer"])
        done = saved["step"]
        print(f"resumed from {checkpoint} at step {done}")

    model.eval()  # no dropout: a probe's passes differ by the perturbation alone
    for step in range(done + 1, args.steps + 1):
        batch = collate(step_batch(splits.train, step, args.batch_size, args.seed))
        loss = optimizer.step(lambda: model(**batch)["loss"])
        if step % max(args.steps // 10, 1) == 0:
            print(f"step {step}: loss {loss:.4f}")
        if checkpoint and args.save_every and step % args.save_every == 0:
            torch.save({"trainable": [p.detach() for p in trainable], "optimizer": optimizer.state_dict(),
                        "step": step}, checkpoint)
        if step == args.stop_after:
            return {"step": step}
    accuracy = dev_accuracy(model, collate, splits.dev)
    print(f"dev accuracy after {args.steps} steps: {accuracy:.3f}")
    return {"step": args.steps, "dev": accuracy, "trainable": torch.cat([p.detach().flatten() for p in trainable])}


if __name__ == "__main__":
    main()

"""A Hugging Face ``Trainer`` that steps any registered zobench optimizer.

Every public ZO codebase forks ``Trainer`` and writes its one method into ``training_step``.
:class:`ZOTrainer` does it once, for the whole registry::

    trainer = ZOTrainer(model=model, args=args, train_dataset=train, optimizer="zo-adamu",
                        optimizer_kwargs={"eps": 1e-3})

What each part of the trainer means for a zeroth-order step:

* **The step.** ``training_step`` gathers the micro-batches of one optimizer step and, on the last of
  them, calls ``optimizer.step(closure)``. The closure is the trainer's own ``compute_loss``, summed
  over those micro-batches with the trainer's own scaling (by the token count or by the number of
  micro-batches), so ĝ is the directional derivative of exactly the loss a first-order step would
  backpropagate: gradient accumulation works for every method, as a larger batch. No backward pass
  runs; the trainer's later ``optimizer.step()``, made for gradients it expects, does nothing.
* **Dropout off.** The passes run in eval mode (MeZO's convention): the losses of one probe's passes
  must differ by the perturbation alone.
* **Learning rate.** ``TrainingArguments.learning_rate``, in the param groups that the trainer's
  scheduler drives (warm-up, decay). An optimizer's own ``lr_schedule`` is refused unless the
  trainer's is constant: two schedules would multiply. Weight decay is ``args.weight_decay`` on the
  trainer's decay groups. ``total_steps`` (ZO-AdaMU's anneal) and ``seed`` come from the trainer.
* **Checkpoints.** The optimizer's ``state_dict`` holds its buffers and step count (the noise of step
  t is regenerated from the seed and t), so ``resume_from_checkpoint`` resumes bit for bit. Beside it,
  ``zo_records.json`` keeps every step's record (seed, the closure's values, the learning rates):
  :func:`replay` rebuilds the weights from the initial ones without a forward pass.
* **Logs.** ``projected_grad`` (ĝ of the last step, averaged over its probes), ``forward_passes``
  (a backward or tangents count two, as in zobench's records) and ``zo_seed``; no ``grad_norm``.
* **Precision.** A half-precision model steps in its own dtype; with ``bf16``/``fp16`` the passes run
  under the trainer's autocast, and fp16's gradient scaler is switched off (no gradient to scale).
* **Placement.** A ``device_map`` model keeps its placement: each parameter's noise is drawn and
  applied on its own device, as in the harness's ``device: sharded`` runs.
* **First-order names** (``fo-adam``, …) build zobench's optimizer and keep the trainer's own
  backward step.
"""

from __future__ import annotations

import json
import os

import torch
from transformers import Trainer

from .. import optimizers
from ..optimizers.layers import layer_of

RECORDS_FILE = "zo_records.json"
FROM_TRAINER = {"lr": "TrainingArguments.learning_rate", "weight_decay": "TrainingArguments.weight_decay"}


class ZOTrainer(Trainer):
    """``Trainer`` with ``optimizer`` (a registered name) and ``optimizer_kwargs`` (its hyperparameters
    other than the learning rate and weight decay, which come from ``args``)."""

    def __init__(self, *args, optimizer: str, optimizer_kwargs: dict | None = None, **kwargs):
        self.zo_info = optimizers.get(optimizer)  # an unknown name: one line naming the closest ones
        if self.zo_info.described.get("whole_train"):
            raise ValueError(f"{optimizer} needs the loss over the whole training set at its snapshots, which a "
                             "Trainer's batches do not give; run it through zobench's harness or your own loop "
                             "(a closure with a whole() method)")
        if self.zo_info.described.get("batch_parts", 1) > 1:
            raise ValueError(f"{optimizer} needs the loss of each slice of the batch (per-example losses), which a "
                             "Trainer's compute_loss does not give; run it through zobench's harness or your own loop "
                             "(a closure with a part(i, parts) method)")
        self.optimizer_kwargs = dict(optimizer_kwargs or {})
        _check_kwargs(self.zo_info, self.optimizer_kwargs)
        if kwargs.get("optimizers", (None, None))[0] is not None:
            raise ValueError(f"ZOTrainer builds {optimizer} itself: pass optimizer= or optimizers=, not both")
        self.zeroth_order = self.zo_info.family != "fo"
        self.zo_records: list[dict] = []
        self.forward_passes = 0
        self._pending: list[tuple[dict, object]] = []
        self._total_steps: int | None = None
        super().__init__(*args, **kwargs)
        if (self.optimizer_kwargs.get("lr_schedule") not in (None, "constant")
                and self.args.lr_scheduler_type != "constant"):
            raise ValueError(f"{optimizer} has lr_schedule={self.optimizer_kwargs['lr_schedule']!r} and the trainer "
                             f"lr_scheduler_type={self.args.lr_scheduler_type!r}: keep one (set lr_scheduler_type="
                             "'constant' to use the optimizer's)")

    # -- building ----------------------------------------------------------------------------------

    def create_accelerator_and_postprocess(self) -> None:
        super().create_accelerator_and_postprocess()
        if self.zeroth_order:
            self.accelerator.scaler = None  # fp16's loss scaling guards gradients; a ZO step has none

    def create_optimizer_and_scheduler(self, num_training_steps: int) -> None:
        self._total_steps = num_training_steps
        super().create_optimizer_and_scheduler(num_training_steps)

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            model = self.model if model is None else model
            decay = set(self.get_decay_parameter_names(model))
            trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
            groups = [{"params": [p for n, p in trainable if (n in decay) == decayed],
                       "layers": [layer_of(n) for n, _ in trainable if (n in decay) == decayed],
                       "weight_decay": self.args.weight_decay if decayed else 0.0} for decayed in (True, False)]
            steps = self._total_steps or (self.args.max_steps if self.args.max_steps > 0 else None)
            built = self.zo_info.create([g for g in groups if g["params"]], lr=self.args.learning_rate,
                                        context={"total_steps": steps, "seed": self.args.seed},
                                        **self.optimizer_kwargs)
            self.optimizer = _StepTakenInTrainingStep(built) if self.zeroth_order else built
        return self.optimizer

    @property
    def zo_optimizer(self):
        """The zobench optimizer itself (``trainer.optimizer`` may be accelerate's wrapper around it)."""
        optimizer = self.optimizer
        while not isinstance(optimizer, _StepTakenInTrainingStep) and hasattr(optimizer, "optimizer"):
            optimizer = optimizer.optimizer
        return optimizer.zo if isinstance(optimizer, _StepTakenInTrainingStep) else optimizer

    # -- the step ----------------------------------------------------------------------------------

    def training_step(self, model, inputs, num_items_in_batch=None):
        if not self.zeroth_order:
            return super().training_step(model, inputs, num_items_in_batch)
        model.eval()
        self._pending.append((self._prepare_inputs(inputs), num_items_in_batch))
        if len(self._pending) < self.current_gradient_accumulation_steps:
            return torch.zeros((), device=self.args.device)  # the step's loss comes with its last micro-batch
        batches, self._pending = self._pending, []
        optimizer = self.zo_optimizer
        closure_cost = optimizer.describe()["closure_cost"]

        def closure():
            self.forward_passes += closure_cost
            total = 0.0
            with self.compute_loss_context_manager():
                for batch, items in batches:
                    loss = self.compute_loss(model, dict(batch), num_items_in_batch=items)  # it may pop labels
                    total = total + (loss if self._scaled_for_accumulation(items) else loss / len(batches))
            return total

        loss = optimizer.step(closure)
        self.zo_records.append({"step": self.state.global_step + 1, **optimizer.last_record,
                                "lr": [group["lr"] for group in optimizer.param_groups],
                                "forward_passes": self.forward_passes})
        return torch.tensor(float(loss), device=self.args.device)

    def _scaled_for_accumulation(self, num_items_in_batch) -> bool:
        """Whether ``compute_loss`` already divided by the step's token count (the trainer's own test)."""
        if self.loss_is_scaled_for_ga is not None:
            return self.loss_is_scaled_for_ga
        return (self.model_accepts_loss_kwargs and num_items_in_batch is not None) or self.compute_loss_func is not None

    # -- logs and checkpoints ----------------------------------------------------------------------

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.zeroth_order and "loss" in logs:
            logs.pop("grad_norm", None)  # no gradient exists: the trainer's norm of nothing is 0
            estimate = self.zo_optimizer.last_estimate
            if estimate is not None:
                logs["projected_grad"] = sum(estimate.grads) / len(estimate.grads)
            logs["forward_passes"] = self.forward_passes
            if self.zo_records:
                logs["zo_seed"] = self.zo_records[-1]["seed"]
        super().log(logs, start_time)

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        super()._save_optimizer_and_scheduler(output_dir)
        if self.zeroth_order and self.args.should_save:
            with open(os.path.join(output_dir, RECORDS_FILE), "w") as file:
                json.dump({"optimizer": self.zo_info.name, "records": self.zo_records}, file)

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        super()._load_optimizer_and_scheduler(checkpoint)
        path = None if checkpoint is None else os.path.join(checkpoint, RECORDS_FILE)
        if self.zeroth_order and path and os.path.isfile(path):
            with open(path) as file:
                self.zo_records = json.load(file)["records"]
            self.forward_passes = self.zo_records[-1]["forward_passes"] if self.zo_records else 0


class _StepTakenInTrainingStep(torch.optim.Optimizer):
    """What the trainer holds for a ZO optimizer: a ``step()`` that does nothing, since the trainer
    calls it after the backward it expects and :meth:`ZOTrainer.training_step` has already stepped.
    Its ``param_groups`` and ``state`` are the ZO optimizer's own attributes, read and written through,
    so the trainer's scheduler sets the rates the ZO step uses, even after a ``load_state_dict`` (which
    replaces the group dicts)."""

    param_groups = property(lambda self: self.zo.param_groups, lambda self, groups: setattr(self.zo, "param_groups", groups))
    state = property(lambda self: self.zo.state, lambda self, state: setattr(self.zo, "state", state))

    def __init__(self, zo: torch.optim.Optimizer):
        self.zo = zo
        groups, state = zo.param_groups, zo.state
        super().__init__(groups, zo.defaults)  # re-adds the same group dicts through the properties
        zo.state = state

    def step(self, closure=None):
        return None

    def state_dict(self):
        return self.zo.state_dict()

    def load_state_dict(self, state_dict):
        self.zo.load_state_dict(state_dict)


def replay(optimizer, records: list[dict]) -> None:
    """Re-applies a ZOTrainer run's step records (``trainer.zo_records`` or a checkpoint's
    ``zo_records.json``) to ``optimizer`` built over the initial weights: each record's learning rates
    are set, then the step replays without a forward pass, bit for bit."""
    for record in records:
        for group, lr in zip(optimizer.param_groups, record["lr"]):
            group["lr"] = lr
        optimizer.replay(record)


def _check_kwargs(info, kwargs: dict) -> None:
    for name in kwargs:
        if name in FROM_TRAINER:
            raise ValueError(f"{info.name}: {name} comes from the trainer; set {FROM_TRAINER[name]}, not optimizer_kwargs")
    unknown = sorted(set(kwargs) - set(info.hyperparameters()))
    if unknown:
        allowed = ", ".join(name for name in info.hyperparameters() if name not in FROM_TRAINER)
        raise ValueError(f"{info.name} has no hyperparameter {unknown[0]!r}; it takes {allowed}")

"""ZOTrainer (zobench.integrations.transformers): a Hugging Face Trainer stepping registered optimizers.

Every check over methods runs over the registry (plugins included): the trainer's steps are the
optimizer's own steps on the same batches, and a checkpoint resumes bit for bit."""

import json

import pytest
import torch
import torch.nn.functional as F
from transformers import Trainer, TrainerCallback, TrainingArguments, get_scheduler

from conftest import registered
from tiny_lm import tiny_llama
from zobench import optimizers
from zobench.integrations.transformers import RECORDS_FILE, ZOTrainer, replay
from zobench.optimizers.layers import layer_of

STEPS, BATCH = 4, 4
SHORT_ANNEAL = dict(T1=1, T2=3)  # ZO-AdaMU's three phases inside the 4 steps


def one_name_per_method(names):
    by_factory = {id(optimizers.get(name).factory): name for name in names}
    return sorted(by_factory.values())


FORWARD_ONLY = one_name_per_method([name for name in registered(family="zo") + registered(family="fg")
                                    if not optimizers.get(name).described.get("whole_train")
                                    and optimizers.get(name).described.get("batch_parts", 1) == 1])
WHOLE_TRAIN = [name for name in registered(family="zo") if optimizers.get(name).described.get("whole_train")]
SLICED = [name for name in registered(family="zo") if optimizers.get(name).described.get("batch_parts", 1) > 1]
WITH_STATE = [name for name in FORWARD_ONLY if optimizers.get(name).state_buffers]


class TinyClassifier(torch.nn.Module):
    """A user's own model as the Trainer takes it: a dict of tensors in, a dict with ``loss`` out."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.hidden = torch.nn.Linear(8, 16)
        self.norm = torch.nn.LayerNorm(16)
        self.out = torch.nn.Linear(16, 3)

    def forward(self, features, labels):
        logits = self.out(self.norm(torch.tanh(self.hidden(features))))
        return {"loss": F.cross_entropy(logits, labels), "logits": logits}


def classification_data(n=64):
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(n, 8, generator=generator)
    labels = torch.randint(0, 3, (n,), generator=generator)
    return [{"features": f, "labels": y} for f, y in zip(features, labels)]


def token_data(n=32, length=6):
    generator = torch.Generator().manual_seed(2)
    ids = torch.randint(5, 24, (n, length), generator=generator)
    return [{"input_ids": row, "labels": row.clone()} for row in ids]


def arguments(tmp_path, **overrides):
    settings = dict(output_dir=str(tmp_path), max_steps=STEPS, per_device_train_batch_size=BATCH, learning_rate=1e-2,
                    lr_scheduler_type="constant", logging_steps=1, save_strategy="no", report_to=[],
                    train_sampling_strategy="sequential", use_cpu=True, disable_tqdm=True, seed=42)
    return TrainingArguments(**{**settings, **overrides})


def short(name):
    """The hyperparameters a 4-step run needs (a short anneal), where the method declares them."""
    return {k: v for k, v in SHORT_ANNEAL.items() if k in optimizers.get(name).hyperparameters()}


class Interrupt(TrainerCallback):
    """Ends training after ``step`` steps, as a killed job would (the run's horizon stays the same)."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        control.should_training_stop = state.global_step >= self.step


def train(name, tmp_path, model=None, data=None, resume=None, callbacks=None, loss=None, **overrides):
    model = TinyClassifier() if model is None else model
    trainer = ZOTrainer(model=model, args=arguments(tmp_path, **overrides), optimizer=name, callbacks=callbacks,
                        compute_loss_func=loss,
                        train_dataset=classification_data() if data is None else data, optimizer_kwargs=short(name))
    trainer.train(resume_from_checkpoint=resume)
    return trainer, model


def flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def trainer_groups(model):
    """The trainer's param groups: the decayed weights, then biases and norms (its own rule), each tensor
    with its layer (LeZO chooses among them)."""
    decayed = {n for n, _ in model.named_parameters() if n.endswith("weight") and not n.startswith("norm")}
    return [{"params": [p for n, p in model.named_parameters() if (n in decayed) == kind],
             "layers": [layer_of(n) for n, _ in model.named_parameters() if (n in decayed) == kind],
             "weight_decay": 0.0} for kind in (True, False)]


@pytest.mark.parametrize("name", FORWARD_ONLY)
def test_trainer_steps_are_the_optimizers_own_steps(name, tmp_path):
    _, trained = train(name, tmp_path)
    model, data = TinyClassifier(), classification_data()
    optimizer = optimizers.get(name).create(trainer_groups(model), lr=1e-2, context={"total_steps": STEPS, "seed": 42},
                                            **short(name))
    model.eval()
    for step in range(STEPS):
        batch = data[step * BATCH:(step + 1) * BATCH]
        features, labels = torch.stack([e["features"] for e in batch]), torch.stack([e["labels"] for e in batch])
        optimizer.step(lambda: model(features, labels)["loss"])
    assert torch.equal(flat(trained), flat(model)), name


@pytest.mark.parametrize("name", WITH_STATE + ["zo-sgd"])
def test_checkpoint_resumes_bitwise(name, tmp_path):
    _, whole = train(name, tmp_path / "whole")
    train(name, tmp_path / "split", save_strategy="steps", save_steps=2, callbacks=[Interrupt(2)])
    checkpoint = tmp_path / "split" / "checkpoint-2"
    kept = json.loads((checkpoint / RECORDS_FILE).read_text())
    assert kept["optimizer"] == name and [r["step"] for r in kept["records"]] == [1, 2]
    resumed, model = train(name, tmp_path / "split", resume=str(checkpoint))
    assert torch.equal(flat(model), flat(whole)), name
    assert [r["step"] for r in resumed.zo_records] == [1, 2, 3, 4]
    assert resumed.forward_passes == STEPS * optimizers.get(name).forward_passes


def test_scheduler_drives_the_rate_and_records_replay_the_run(tmp_path):
    trainer, trained = train("zo-adam", tmp_path, lr_scheduler_type="linear", warmup_steps=2)
    probe = torch.optim.SGD([torch.zeros(1)], lr=1e-2)
    schedule = get_scheduler("linear", probe, num_warmup_steps=2, num_training_steps=STEPS)
    expected = []
    for _ in range(STEPS):
        expected.append(probe.param_groups[0]["lr"])
        probe.step()
        schedule.step()
    assert [r["lr"][0] for r in trainer.zo_records] == expected
    assert expected[0] == 0.0 and expected[1] == 5e-3  # warm-up: the rate really moved

    model = TinyClassifier()
    fresh = optimizers.get("zo-adam").create(trainer_groups(model), lr=1.0, context={"total_steps": STEPS, "seed": 42})
    replay(fresh, trainer.zo_records)
    assert torch.equal(flat(model), flat(trained))

    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert [entry["forward_passes"] for entry in logged] == [2, 4, 6, 8]
    assert all("grad_norm" not in entry for entry in logged)
    assert all(entry["zo_seed"] == r["seed"] for r, entry in zip(trainer.zo_records, logged))


def test_projected_grad_is_the_central_difference(tmp_path):
    trainer, _ = train("zo-sgd", tmp_path, max_steps=1)
    plus, minus = trainer.zo_records[0]["evaluations"]
    eps = optimizers.get("zo-sgd").hyperparameters()["eps"]
    logged = next(entry for entry in trainer.state.log_history if "loss" in entry)
    assert logged["projected_grad"] == pytest.approx((plus - minus) / (2 * eps), rel=1e-12)


def summed_token_loss(outputs, labels, num_items_in_batch):
    """Next-token cross-entropy summed over the micro-batch, over the step's token count (in the model's
    dtype: transformers' own causal loss computes in float32)."""
    logits, targets = outputs.logits[:, :-1], labels[:, 1:]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum") / num_items_in_batch


def test_gradient_accumulation_is_one_step_on_the_whole_batch(tmp_path):
    """Two micro-batches of 2 sequences: the closure sums the trainer's token-normalised losses, so the
    step is the 4-sequence batch's (fp64, equal to rounding)."""
    runs = []
    for accumulate in (1, 2):
        model = tiny_llama().double()
        train("zo-adam", tmp_path / str(accumulate), model=model, data=token_data(), max_steps=3, loss=summed_token_loss,
              per_device_train_batch_size=BATCH // accumulate, gradient_accumulation_steps=accumulate)
        runs.append(flat(model))
    assert (runs[0] - flat(tiny_llama().double())).abs().max() > 1e-6  # the steps moved the weights
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=1e-12)


def test_no_backward_runs_and_no_gradient_is_kept(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a backward pass ran")

    monkeypatch.setattr(torch.Tensor, "backward", refuse)
    monkeypatch.setattr(torch.autograd, "backward", refuse)
    _, model = train("zo-adamu", tmp_path)
    assert all(p.grad is None for p in model.parameters())


def test_a_first_order_name_keeps_the_trainers_backward_step(tmp_path):
    _, ours = train("fo-sgd", tmp_path / "ours")
    model = TinyClassifier()
    stock = Trainer(model=model, args=arguments(tmp_path / "stock"), train_dataset=classification_data(),
                    optimizers=(torch.optim.SGD(trainer_groups(model), lr=1e-2), None))
    stock.train()
    assert torch.equal(flat(ours), flat(model))
    assert not torch.equal(flat(model), flat(TinyClassifier()))


def test_lora_steps_only_the_adapters(tmp_path):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_llama(), LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer, _ = train("zo-sgd", tmp_path, model=model, data=token_data(), learning_rate=1e-1)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("lora_" in n for n in changed)
    assert {id(p) for g in trainer.zo_optimizer.param_groups for p in g["params"]} == {
        id(p) for p in model.parameters() if p.requires_grad}


@pytest.mark.parametrize("setting", [{"model_dtype": torch.bfloat16}, {"model_dtype": torch.float16}, {"bf16": True}, {"fp16": True}])
def test_half_precision_steps(setting, tmp_path):
    model = tiny_llama().to(setting.pop("model_dtype", torch.float32))
    before = flat(model).clone()
    trainer, _ = train("zo-sgd", tmp_path, model=model, data=token_data(), learning_rate=1e-1, **setting)
    assert flat(model).dtype == before.dtype and not torch.equal(flat(model), before)
    assert all(torch.isfinite(torch.tensor(e["loss"])) for e in trainer.state.log_history if "loss" in e)


@pytest.mark.parametrize("optimizer, kwargs, overrides, message", [
    ("zo-adamm", {}, {}, "unknown optimizer 'zo-adamm'"),
    ("zo-sgd", {"probes": 2}, {}, "zo-sgd has no hyperparameter 'probes'; it takes"),
    ("zo-sgd", {"lr": 1e-3}, {}, "set TrainingArguments.learning_rate"),
    ("zo-sgd", {"lr_schedule": "cosine"}, {"lr_scheduler_type": "linear"}, "keep one"),
    *[(name, {}, {}, "needs the loss over the whole training set") for name in WHOLE_TRAIN],
    *[(name, {}, {}, "needs the loss of each slice of the batch") for name in SLICED],
])
def test_bad_names_and_arguments_give_one_line(optimizer, kwargs, overrides, message, tmp_path):
    with pytest.raises(ValueError) as error:
        ZOTrainer(model=TinyClassifier(), args=arguments(tmp_path, **overrides), optimizer=optimizer,
                  optimizer_kwargs=kwargs, train_dataset=classification_data())
    assert message in str(error.value) and "\n" not in str(error.value)



@pytest.mark.parametrize("prepare_optimizer", [False, True])
def test_an_accelerate_loop_takes_the_same_steps(prepare_optimizer):
    """``accelerate`` users prepare the model and the loader (and may prepare the optimizer: its wrapper
    passes the closure through); the steps are the plain loop's."""
    from accelerate import Accelerator

    runs = []
    for accelerated in (False, True):
        model, data = TinyClassifier(), classification_data()
        loader = torch.utils.data.DataLoader(data, batch_size=BATCH)
        optimizer = optimizers.create("zo-adam", model.parameters(), lr=1e-2, seed=3)
        if accelerated:
            accelerator = Accelerator(cpu=True)
            model, loader = accelerator.prepare(model, loader)
            if prepare_optimizer:
                optimizer = accelerator.prepare(optimizer)
        model.eval()
        for batch in loader:
            optimizer.step(lambda: model(**batch)["loss"])
        runs.append(flat(model))
    assert torch.equal(runs[0], runs[1])

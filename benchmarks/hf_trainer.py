"""Peak memory of ZOTrainer steps (zobench.integrations.transformers) against inference.

Full fine-tuning of a random OPT-125m (causal LM, its own loss on the labels), batch 16 × 64, two
steps of ``trainer.train()``, against one forward of the same batch under ``torch.no_grad()`` in the
same setup. asv's peakmem is the whole process's peak, setup (the weights) included, so the rows
compare directly: a ZO step should sit at inference plus its noise draw and declared buffers; the
first-order row (``fo-sgd``, the trainer's own backward) shows what a gradient costs.

    asv run --python=same --set-commit-hash=$(git rev-parse HEAD) --bench TrainerMemory
"""

import tempfile

import torch
from transformers import TrainingArguments

from zobench.integrations.transformers import ZOTrainer
from zobench.models import load_model

BATCH, LENGTH, STEPS = 16, 64, 2


class TrainerMemory:
    params = (["inference", "zo-sgd", "zo-adam@g", "zo-adamu", "fo-sgd"],)
    param_names = ["method"]
    timeout = 600

    def setup(self, method):
        torch.manual_seed(0)
        self.model = load_model("random:opt-125m").model.eval()
        tokens = torch.randint(1000, 20000, (BATCH * STEPS, LENGTH), generator=torch.Generator().manual_seed(0))
        self.data = [{"input_ids": row, "labels": row} for row in tokens]
        if method == "inference":
            return
        args = TrainingArguments(output_dir=tempfile.mkdtemp(), max_steps=STEPS, per_device_train_batch_size=BATCH,
                                 learning_rate=1e-6, save_strategy="no", report_to=[], use_cpu=True,
                                 disable_tqdm=True, train_sampling_strategy="sequential")
        kwargs = {"T1": 1, "T2": 2} if method == "zo-adamu" else {}
        self.trainer = ZOTrainer(model=self.model, args=args, train_dataset=self.data, optimizer=method,
                                 optimizer_kwargs=kwargs)

    def peakmem_trainer(self, method):
        if method == "inference":
            with torch.no_grad():
                batch = torch.stack([e["input_ids"] for e in self.data[:BATCH]])
                self.model(input_ids=batch, labels=batch)
        else:
            self.trainer.train()

"""Scoring a task's candidates with a model: one score per (example, candidate); the class is the argmax.

* :class:`CausalScorer` — the mean log-probability of the candidate's tokens after the prompt
  (MeZO's length-normalised log-likelihood). Prompt and candidate are tokenised separately and
  concatenated, so the candidate's tokens never merge with the prompt's; long prompts are cut from
  the left. With ``calibrate=True`` the score is MeZO's surface-form calibration instead: the summed
  log-probability of the candidate after the prompt minus that after the task's surface prompt (the
  template with every field emptied).
* :class:`MaskedScorer` — the logit of each candidate's label word at the mask token (LM-BFF).
* :class:`HeadScorer` — a linear head on frozen features: the mean-pooled, normalised sentence
  embedding of an encoder (its rows start as the embeddings of "<surface prompt><candidate>", so it
  scores zero-shot), or a causal LM's last hidden state (its rows start as the LM-head rows of the
  candidates' first tokens). The frozen model runs once per example; steps then cost only the head.

Training minimises the cross-entropy of the scores against the gold class (MeZO's
``train_as_classification``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .models import LoadedModel
from .tasks import Task

PROTOTYPE_SCALE = 10.0  # initial logit scale of the head: cosine similarities are in [-1, 1]
_FEATURES: dict[tuple, dict[str, torch.Tensor]] = {}  # (model, max length) -> prompt -> frozen feature


class CausalScorer:
    def __init__(self, loaded: LoadedModel, task: Task, max_length: int = 256, calibrate: bool = False):
        self.model, self.tokenizer, self.task, self.max_length = loaded.model, loaded.tokenizer, task, max_length
        self.candidate_ids = [self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in task.continuations]
        self.calibrate = calibrate

    def trainable(self) -> torch.nn.Module:
        return self.model

    def scores(self, examples: list[dict]) -> torch.Tensor:
        prompts = [self.task.prompt(example) for example in examples]
        if not self.calibrate:
            return self._log_likelihoods(prompts, mean=True)
        surface = self._log_likelihoods([self.task.surface_prompt()], mean=False)
        return self._log_likelihoods(prompts, mean=False) - surface

    def _log_likelihoods(self, prompts: list[str], mean: bool) -> torch.Tensor:
        """Per prompt and candidate, the candidate tokens' log-probabilities, averaged or summed."""
        rows, spans = [], []
        for text in prompts:
            prompt = self.tokenizer(text)["input_ids"]
            for candidate in self.candidate_ids:
                keep = self.max_length - len(candidate)
                ids = prompt[-keep:] + candidate
                rows.append(ids)
                spans.append((len(ids) - len(candidate), len(candidate)))
        width = max(len(ids) for ids in rows)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        device = next(self.model.parameters()).device
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids in rows], device=device)
        attention = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in rows], device=device)
        logits = self.model(input_ids=input_ids, attention_mask=attention).logits
        # the token at position p is predicted by the logits at p - 1
        positions = [(row, p) for row, (start, length) in enumerate(spans) for p in range(start, start + length)]
        index_rows = torch.tensor([r for r, _ in positions], device=device)
        index_cols = torch.tensor([p for _, p in positions], device=device)
        token_logprobs = F.log_softmax(logits[index_rows, index_cols - 1].float(), dim=-1).gather(
            -1, input_ids[index_rows, index_cols].unsqueeze(-1)).squeeze(-1)
        sums = torch.zeros(len(rows), device=device).index_add(0, index_rows, token_logprobs)
        if mean:
            sums = sums / torch.tensor([length for _, length in spans], device=device)
        return sums.view(len(prompts), len(self.candidate_ids))


class MaskedScorer:
    def __init__(self, loaded: LoadedModel, task: Task, max_length: int = 256):
        self.model, self.tokenizer, self.task, self.max_length = loaded.model, loaded.tokenizer, task, max_length
        if "{mask}" not in task.template:
            raise ValueError(f"task {task.name} has no {{mask}} in its template; a masked LM needs one")
        self.word_ids = []
        for candidate in task.continuations:
            ids = self.tokenizer(candidate, add_special_tokens=False)["input_ids"]
            if len(ids) != 1:
                raise ValueError(f"task {task.name}: label word {candidate!r} is {len(ids)} tokens for this "
                                 "tokenizer; a masked LM scores single-token label words")
            self.word_ids.append(ids[0])

    def trainable(self) -> torch.nn.Module:
        return self.model

    def scores(self, examples: list[dict]) -> torch.Tensor:
        texts = [self.task.render(example, mask=self.tokenizer.mask_token) for example in examples]
        device = next(self.model.parameters()).device
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt").to(device)
        logits = self.model(**batch).logits
        rows, columns = (batch["input_ids"] == self.tokenizer.mask_token_id).nonzero(as_tuple=True)
        if len(rows) != len(examples):
            raise ValueError(f"task {self.task.name}: the mask was truncated away; raise max_length")
        return logits[rows, columns][:, self.word_ids]


class HeadScorer:
    def __init__(self, loaded: LoadedModel, task: Task, max_length: int = 256, batch_size: int = 64):
        self.loaded, self.task, self.max_length, self.batch_size = loaded, task, max_length, batch_size
        self.model = loaded.model.eval().requires_grad_(False)
        self._features = _FEATURES.setdefault((loaded.name, loaded.kind, max_length), {})
        if loaded.kind == "causal":
            lm_head = self.model.get_output_embeddings().weight
            first_tokens = [loaded.tokenizer(c, add_special_tokens=False)["input_ids"][0] for c in task.continuations]
            initial = lm_head[first_tokens].detach().float()
        else:
            prototypes = [task.surface_prompt().strip() + candidate for candidate in task.continuations]
            initial = PROTOTYPE_SCALE * self._encode(prototypes)
        self.head = torch.nn.Linear(initial.shape[1], len(task.continuations), bias=True)
        with torch.no_grad():
            self.head.weight.copy_(initial)
            self.head.bias.zero_()

    def trainable(self) -> torch.nn.Module:
        return self.head

    @torch.no_grad()
    def _encode(self, texts: list[str]) -> torch.Tensor:
        tokenizer, device = self.loaded.tokenizer, next(self.model.parameters()).device
        if self.loaded.kind == "causal":
            tokenizer.padding_side = "left"  # the last position is the last prompt token
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
        batch = tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                          return_tensors="pt").to(device)
        if self.loaded.kind == "causal":
            return self.model(**batch, output_hidden_states=True).hidden_states[-1][:, -1].float()
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return F.normalize(((hidden * mask).sum(1) / mask.sum(1)).float(), dim=-1)

    def prepare(self, examples: list[dict]) -> None:
        """Computes the frozen features of ``examples`` once per process (the expensive part)."""
        self._features_of([self.task.prompt(e) for e in examples])

    def _features_of(self, prompts: list[str]) -> torch.Tensor:
        todo = list(dict.fromkeys(p for p in prompts if p not in self._features))
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start:start + self.batch_size]
            self._features.update(zip(chunk, self._encode(chunk)))
        return torch.stack([self._features[p] for p in prompts])

    def scores(self, examples: list[dict]) -> torch.Tensor:
        return self.head(self._features_of([self.task.prompt(e) for e in examples]))


def make_scorer(loaded: LoadedModel, task: Task, mode: str, max_length: int = 256, calibrate: bool = False):
    """``mode`` "head" gives a :class:`HeadScorer`; otherwise the model's own kind decides."""
    if calibrate and (mode == "head" or loaded.kind != "causal"):
        raise ValueError("surface-form calibration needs a causal LM scored on its own (not peft: head)")
    if mode == "head" or loaded.kind == "encoder":
        return HeadScorer(loaded, task, max_length)
    if loaded.kind == "masked":
        return MaskedScorer(loaded, task, max_length)
    return CausalScorer(loaded, task, max_length, calibrate)

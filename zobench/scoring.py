"""Scoring a task's candidates with a model: one score per (example, candidate); the class is the argmax.

* :class:`CausalScorer` — the mean log-probability of each option's tokens after the prompt
  (MeZO's length-normalised log-likelihood); options are the verbaliser's or, for multiple choice,
  the example's own. Prompt and option are tokenised separately and concatenated, so the option's
  tokens never merge with the prompt's; long prompts are cut from the left. With ``calibrate=True``
  the score is MeZO's surface-form calibration instead: the summed log-probability of the option
  after the prompt minus that after the task's surface prompt (the template with every field
  emptied). It also gives the LM-style loss on the gold option and greedy generation.
* :class:`MaskedScorer` — the logit of each candidate's label word at the mask token (LM-BFF).
* :class:`HeadScorer` — a linear head on frozen features: the mean-pooled, normalised sentence
  embedding of an encoder (its rows start as the embeddings of "<surface prompt><candidate>", so it
  scores zero-shot), or a causal LM's last hidden state (its rows start as the LM-head rows of the
  candidates' first tokens). The frozen model runs once per example; steps then cost only the head.
* :class:`TopBlockScorer` — the same head with an encoder's last transformer block trainable too: the
  states entering that block are cached once per example, so a step runs one block of the model
  (MiniLM-L6: 1.8M trainable parameters, a sixth of a forward pass) instead of the whole model.

Training minimises the cross-entropy of the scores against the gold class (MeZO's
``train_as_classification``), or, for tasks declared ``train_as: lm``, the causal scorer's
:meth:`CausalScorer.lm_loss`.
"""

from __future__ import annotations

import copy
import os
import sys

import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence
from tqdm import tqdm
from transformers import StoppingCriteria
from transformers.masking_utils import create_bidirectional_mask

from .models import LoadedModel
from .tasks import Task

PROTOTYPE_SCALE = 10.0  # initial logit scale of the head: cosine similarities are in [-1, 1]
_FEATURES: dict[tuple, dict[str, torch.Tensor]] = {}  # (model, what, max length) -> prompt -> frozen output


class CausalScorer:
    def __init__(self, loaded: LoadedModel, task: Task, max_length: int = 256, calibrate: bool = False):
        self.model, self.tokenizer, self.task, self.max_length = loaded.model, loaded.tokenizer, task, max_length
        self.calibrate = calibrate
        self._token_ids: dict[str, list[int]] = {}  # continuation text -> tokens (verbalisers repeat)

    def trainable(self) -> torch.nn.Module:
        return self.model

    def scores(self, examples: list[dict]) -> torch.Tensor:
        """Examples × options; an example with fewer options than the widest has -inf in the rest."""
        options = [self.task.options(example) for example in examples]
        pairs = [(self.task.prompt(e), o) for e, opts in zip(examples, options) for o in opts]
        if self.calibrate:  # the surface prompt's score depends on the option alone: once per distinct one
            distinct = list(dict.fromkeys(o for _, o in pairs))
            surface = self._log_likelihoods([(self.task.surface_prompt(), o) for o in distinct], mean=False)[0]
            flat = self._log_likelihoods(pairs, mean=False)[0] - surface[[distinct.index(o) for _, o in pairs]]
        else:
            flat = self._log_likelihoods(pairs, mean=True)[0]
        table = torch.full((len(examples), max(map(len, options))), float("-inf"), device=flat.device)
        rows = torch.tensor([i for i, opts in enumerate(options) for _ in opts], device=flat.device)
        columns = torch.tensor([j for opts in options for j in range(len(opts))], device=flat.device)
        return table.index_put((rows, columns), flat)

    def lm_loss(self, examples: list[dict]) -> torch.Tensor:
        """Teacher-forced cross-entropy on the gold continuation's tokens only (MeZO's LM-style
        training), averaged over all those tokens of the batch."""
        sums, lengths = self._log_likelihoods([(self.task.prompt(e), self.task.target(e)) for e in examples],
                                              mean=False)
        return -sums.sum() / lengths.sum()

    def _tokens(self, text: str) -> list[int]:
        if text not in self._token_ids:
            self._token_ids[text] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self._token_ids[text]

    def _device(self):
        return next(self.model.parameters()).device

    def _start(self) -> list[int]:
        """The context of an empty prompt (a surface prompt with every field emptied): the first
        option token must be predicted from something."""
        token = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token_id
        if token is None:
            raise ValueError(f"task {self.task.name}: an empty prompt, and the tokenizer has no BOS or EOS token")
        return [token]

    def _log_likelihoods(self, pairs: list[tuple[str, str]], mean: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Per (prompt, continuation), the continuation tokens' log-probabilities, averaged or summed,
        and the number of those tokens. Prompt and continuation are tokenised separately, so their
        tokens never merge; long prompts lose their left end."""
        rows, spans, prompts = [], [], {}
        for text, continuation in pairs:
            prompt = prompts.setdefault(text, self.tokenizer(text)["input_ids"] or self._start())
            candidate = self._tokens(continuation)
            ids = prompt[-(self.max_length - len(candidate)):] + candidate
            rows.append(ids)
            spans.append((len(ids) - len(candidate), len(candidate)))
        width = max(len(ids) for ids in rows)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        device = self._device()
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
        lengths = torch.tensor([length for _, length in spans], device=device, dtype=sums.dtype)
        return (sums / lengths if mean else sums), lengths

    @torch.no_grad()
    def generate(self, examples: list[dict]) -> list[str]:
        """Greedy continuations, cut at the task's stop string (MeZO: 50 new tokens, stop at a newline).
        Prompts are left-padded and lose their left end beyond ``max_length - max_new_tokens``."""
        settings = self.task.generate or {}
        new_tokens, stop = settings.get("max_new_tokens", 50), settings.get("stop", "\n")
        prompts = [self.tokenizer(self.task.prompt(e))["input_ids"][-(self.max_length - new_tokens):]
                   for e in examples]
        width, device = max(map(len, prompts)), self._device()
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
        attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
        output = self.model.generate(input_ids=input_ids, attention_mask=attention, max_new_tokens=new_tokens,
                                     do_sample=False, num_beams=1, pad_token_id=pad,
                                     stopping_criteria=[_StopAt(self.tokenizer, stop, width)] if stop else None)
        texts = self.tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)
        return [text.split(stop)[0].strip() if stop else text.strip() for text in texts]


class _StopAt(StoppingCriteria):
    """Stops a row once its decoded continuation holds the stop string (any tokenizer; transformers'
    ``stop_strings`` needs a tokenizer that can encode its probe text)."""

    def __init__(self, tokenizer, stop: str, start: int):
        self.tokenizer, self.stop, self.start = tokenizer, stop, start

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.start:], skip_special_tokens=True)
        return torch.tensor([self.stop in text for text in texts], device=input_ids.device)


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
        self._cache = _FEATURES.setdefault((loaded.name, loaded.kind, type(self).__name__, max_length), {})
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

    def _tokenize(self, texts: list[str]):
        tokenizer, device = self.loaded.tokenizer, next(self.model.parameters()).device
        if self.loaded.kind == "causal":
            tokenizer.padding_side = "left"  # the last position is the last prompt token
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
        return tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                         return_tensors="pt").to(device)

    @torch.no_grad()
    def _encode(self, texts: list[str]) -> torch.Tensor:
        """The frozen features of ``texts``, one row each."""
        batch = self._tokenize(texts)
        if self.loaded.kind == "causal":
            return self.model(**batch, output_hidden_states=True).hidden_states[-1][:, -1].float()
        return _mean_pooled(self.model(**batch).last_hidden_state, batch["attention_mask"])

    def prepare(self, examples: list[dict]) -> None:
        """Runs the frozen model over ``examples`` once per process (the expensive part)."""
        self._cached([self.task.prompt(e) for e in examples])

    def _cached(self, prompts: list[str]) -> list[torch.Tensor]:
        """``_frozen``'s output for each prompt, computed once per process and model."""
        todo = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        batches = range(0, len(todo), self.batch_size)  # minutes on a CPU for thousands of sentences: shown
        for start in tqdm(batches, desc=f"caching features of {len(todo)} prompts", unit="batch", leave=False,
                          disable=len(batches) < 2 or os.environ.get("TQDM_DISABLE") == "1",  # --quiet
                          file=sys.stderr):  # (tqdm itself reads TQDM_DISABLE only when first imported)
            chunk = todo[start:start + self.batch_size]
            self._cache.update(zip(chunk, self._frozen(chunk)))
        return [self._cache[p] for p in prompts]

    def _frozen(self, texts: list[str]):
        """What the cache keeps of each text: its features."""
        return self._encode(texts)

    def scores(self, examples: list[dict]) -> torch.Tensor:
        return self.head(torch.stack(self._cached([self.task.prompt(e) for e in examples])))


class TopBlockScorer(HeadScorer):
    """A head on an encoder whose last block trains too. The cache holds, per prompt, the states of
    its tokens entering that block (padding dropped); a score runs the block over them, pools and
    applies the head, so at step 0 it equals :class:`HeadScorer`'s. The block is a copy: runs that
    share the frozen model in one process never see each other's block."""

    def __init__(self, loaded: LoadedModel, task: Task, max_length: int = 256, batch_size: int = 64):
        blocks = getattr(getattr(loaded.model, "encoder", None), "layer", None)
        if loaded.kind != "encoder" or blocks is None:
            raise ValueError(f"peft: top trains the last block of an encoder (e.g. minilm-l6); {loaded.name} is a "
                             f"{loaded.kind} model: use peft: lora or head")
        super().__init__(loaded, task, max_length, batch_size)
        self.block = copy.deepcopy(blocks[-1]).requires_grad_(True)
        self.module = torch.nn.ModuleDict({"block": self.block, "head": self.head})

    def trainable(self) -> torch.nn.Module:
        return self.module

    @torch.no_grad()
    def _frozen(self, texts: list[str]) -> list[torch.Tensor]:
        """What the cache keeps of each text: the states of its tokens entering the last block."""
        batch = self._tokenize(texts)
        states = self.model(**batch, output_hidden_states=True).hidden_states[-2]
        return [state[mask.bool()] for state, mask in zip(states, batch["attention_mask"])]

    def scores(self, examples: list[dict]) -> torch.Tensor:
        states = self._cached([self.task.prompt(e) for e in examples])
        padded = pad_sequence(states, batch_first=True)
        lengths = torch.tensor([len(s) for s in states], device=padded.device)
        mask = (torch.arange(padded.shape[1], device=padded.device) < lengths[:, None]).long()
        attention = create_bidirectional_mask(config=self.model.config, inputs_embeds=padded, attention_mask=mask)
        return self.head(_mean_pooled(self.block(padded, attention_mask=attention), mask))


def _mean_pooled(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The normalised mean of the unmasked positions: a sentence-transformers embedding."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return F.normalize(((hidden * weights).sum(1) / weights.sum(1)).float(), dim=-1)


def make_scorer(loaded: LoadedModel, task: Task, mode: str, max_length: int = 256, calibrate: bool = False):
    """``mode`` "head" gives a :class:`HeadScorer`, "top" a :class:`TopBlockScorer`; otherwise the model's
    own kind decides."""
    if calibrate and (mode in ("head", "top") or loaded.kind != "causal"):
        raise ValueError("surface-form calibration needs a causal LM scored on its own (not peft: head or top)")
    if calibrate and task.kind == "generation":
        raise ValueError(f"task {task.name} is a generation task: surface-form calibration scores options")
    if mode == "top":
        return TopBlockScorer(loaded, task, max_length)
    if mode == "head" or loaded.kind == "encoder":
        return HeadScorer(loaded, task, max_length)
    if loaded.kind == "masked":
        return MaskedScorer(loaded, task, max_length)
    return CausalScorer(loaded, task, max_length, calibrate)

"""A task, declared in YAML: where its data lives, how an example becomes a prompt, what it is scored on.

A declaration (``zobench/tasks/definitions/*.yaml``, or any YAML file a user points at) holds:

* ``template`` — the prompt, with ``{field}``, ``{field.subfield}`` and filters such as
  ``{question|capitalize|question_mark}`` (see :data:`FILTERS`, plus the task's own ``maps``);
  ``{mask}`` marks where a masked LM predicts the label word (a causal LM's prompt ends there);
* what the prompt is continued with — one of three kinds of task:

  - *classification*: ``label`` (the field holding the gold label) and ``candidates``, for each
    label value the text appended to the prompt (MeZO's verbaliser);
  - *multiple choice*: ``choices`` — a list of fields (COPA's ``[choice1, choice2]``) or one field
    holding a list (ReCoRD's entities) — each rendered through ``continuation`` (a template in which
    ``{choice}`` is the choice; ``fill`` names a string of the rendered continuation that the choice
    replaces, ReCoRD's ``@placeholder``). The gold option is the index in ``label``, or any choice
    listed in the ``answers`` field;
  - *generation*: ``answers`` (the field holding the gold answers) and ``generate`` (greedy decoding
    settings: ``max_new_tokens``, ``stop``); the model's training target is ``continuation`` with
    the first gold answer as ``{choice}``, and the output is scored by SQuAD F1 and exact match;
* ``train_as`` — ``classification`` (cross-entropy over the options' length-normalised scores) or
  ``lm`` (teacher-forced cross-entropy on the gold option's tokens), as MeZO chooses per task;
* ``maps`` — named value maps usable as filters (COPA's ``{question|connective}``);
* ``metric`` — ``accuracy``, or ``f1`` for generation;
* ``hub`` — the Hugging Face dataset (``path``, ``name``, and the hub split that serves as ``train``
  and ``test``);
* ``local`` — the same data as files under a data directory (``dir``, then per split a ``file``, a
  ``format`` and optional ``rename`` of fields), in the formats of :mod:`zobench.tasks.formats`;
* ``kshot`` (optional) — LM-BFF's k-shot folders, ``dir`` with ``{seed}`` and a file per split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from ..schema import Declared, PositiveInt, one_line
from ..yaml_files import YamlFileError, load_yaml
from .formats import READERS

FILTERS = {
    "lower": str.lower,
    "strip": str.strip,
    "capitalize": lambda text: text[:1].upper() + text[1:],
    "lower_first": lambda text: text if text.split(" ", 1)[0] == "I" else text[:1].lower() + text[1:],
    "question_mark": lambda text: text if text.rstrip().endswith("?") else text.rstrip() + "?",
    "rstrip_period": lambda text: text.rstrip().rstrip("."),
    "highlights": lambda text: text.replace("@highlight\n", "- "),  # ReCoRD's bullet points, as GPT-3
}
PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
METRICS = {"classification": ("accuracy",), "multiple_choice": ("accuracy",), "generation": ("f1", "em")}


class TaskError(ValueError):
    """A task declaration or example that cannot be used; the message names the task and the fix."""


class _Source(Declared):
    """Where examples come from, and how their fields become the template's."""

    rename: dict[str, str] = {}  # the source's field -> the template's
    label_map: dict[int | str | bool, int | str] = {}  # the source's label id -> the task's label value


class DataFile(_Source):
    file: str
    format: Literal[tuple(READERS)]


class DataFolder(Declared):
    """Files under the data directory: ``dir`` (``{seed}`` in a k-shot folder), a file per split."""

    dir: str
    train: DataFile | None = None
    dev: DataFile | None = None
    test: DataFile | None = None


class Hub(_Source):
    path: str
    name: str | None = None
    train: str = "train"
    test: str = "validation"


class Generate(Declared):
    """Greedy decoding (MeZO's: 50 new tokens, cut at a newline; ``stop: ""`` cuts nowhere)."""

    max_new_tokens: PositiveInt = 50
    stop: str = "\n"


class TaskFile(Declared):
    """The shape of a task declaration (the module docstring says what each key means)."""

    name: str
    template: str
    label: str = ""
    candidates: dict[int | str | bool, str] = {}  # YAML reads ``0:`` as an integer key
    choices: list[str] | str = []
    continuation: str = "{choice}"
    fill: str = ""
    answers: str = ""
    generate: Generate | None = None
    train_as: Literal["classification", "lm"] = "classification"
    maps: dict[str, dict[str, str]] = {}
    metric: Literal["accuracy", "f1", "em"] | None = None
    description: str = ""
    hub: Hub | None = None
    local: DataFolder | None = None
    kshot: DataFolder | None = None


@dataclass(frozen=True)
class Task:
    name: str
    template: str
    label: str = ""
    candidates: dict[str, str] = field(default_factory=dict)  # label value -> continuation, in class order
    choices: list[str] | str = ()
    continuation: str = "{choice}"
    fill: str = ""
    answers: str = ""
    generate: dict | None = None  # greedy decoding settings: a generation task
    train_as: str = "classification"
    maps: dict[str, dict[str, str]] = field(default_factory=dict)
    metric: str = "accuracy"
    description: str = ""
    hub: dict = field(default_factory=dict)
    local: dict = field(default_factory=dict)
    kshot: dict = field(default_factory=dict)
    source: Path | None = None

    @classmethod
    def from_yaml(cls, path: Path) -> "Task":
        try:
            document = load_yaml(path)
        except YamlFileError as error:
            raise TaskError(f"task file {error}") from None
        if not isinstance(document, dict):
            raise TaskError(f"{path}: a task file is a mapping with name, template and candidates, choices or "
                            "generate (see zobench/tasks/definitions/sst2.yaml)")
        try:
            document = TaskFile.model_validate(document).model_dump(exclude_unset=True, exclude_none=True)
        except ValidationError as error:
            raise TaskError(one_line(error, str(path), TaskFile)) from None
        declared = [key for key in ("candidates", "choices", "generate") if key in document]
        if len(declared) != 1:
            raise TaskError(f"{path}: declare exactly one of candidates (classification), choices (multiple "
                            f"choice) or generate (generation), not {declared or 'none'}")
        needs = {"candidates": ("label",), "choices": (), "generate": ("answers",)}[declared[0]]
        if declared[0] == "choices" and not {"label", "answers"} & set(document):
            needs = ("label or answers",)
        for key in needs:
            if key not in document:
                raise TaskError(f"{path}: {declared[0]} needs {key!r}")
        kind = {"candidates": "classification", "choices": "multiple_choice", "generate": "generation"}[declared[0]]
        document.setdefault("metric", METRICS[kind][0])
        task = cls(**{**document, "candidates": {str(k): v for k, v in document.get("candidates", {}).items()}},
                   source=Path(path))
        if task.metric not in METRICS[task.kind]:
            raise TaskError(f"{path}: metric {task.metric!r} does not fit a {task.kind} task; use one of "
                            f"{METRICS[task.kind]}")
        for text in (task.template, task.continuation):
            for expression in PLACEHOLDER.findall(text):
                for name in expression.split("|")[1:]:
                    if name not in FILTERS and name not in task.maps:
                        raise TaskError(f"{path}: unknown template filter {name!r}; filters: "
                                        f"{', '.join([*FILTERS, *task.maps])}")
        return task

    @property
    def objectives(self) -> tuple[str, ...]:
        """What a run may minimise: the loss, or one of the task's metrics negated (no gradient)."""
        return ("loss", *METRICS[self.kind])

    @property
    def kind(self) -> str:
        return "classification" if self.candidates else "generation" if self.generate is not None else "multiple_choice"

    def _field(self, example: dict, name: str):
        value = example
        for part in name.split("."):
            if not isinstance(value, dict) or part not in value:
                raise TaskError(f"task {self.name}: the template needs field {name!r}, which the example lacks "
                                f"(fields: {', '.join(example)})")
            value = value[part]
        return value

    def _value(self, example: dict, expression: str) -> str:
        name, *filters = expression.split("|")
        text = str(self._field(example, name))
        for name in filters:
            text = self.maps[name].get(text, text) if name in self.maps else FILTERS[name](text)
        return text

    def _render(self, template: str, example: dict, mask: str = "") -> str:
        return PLACEHOLDER.sub(lambda m: mask if m.group(1) == "mask" else self._value(example, m.group(1)),
                               template)

    def render(self, example: dict, mask: str = "") -> str:
        """The whole prompt, with ``{mask}`` replaced by ``mask``."""
        return self._render(self.template, example, mask)

    def prompt(self, example: dict) -> str:
        """The prompt a causal LM continues with a candidate: the template up to ``{mask}``."""
        return self.render(example, mask="\0").split("\0")[0]

    def surface_prompt(self) -> str:
        """The prompt with every field emptied (for surface-form calibration and label prototypes)."""
        return PLACEHOLDER.sub("", self.template.split("{mask}")[0])

    def _choices(self, example: dict) -> list[str]:
        if isinstance(self.choices, str):
            return [str(c) for c in self._field(example, self.choices)]
        return [str(self._field(example, name)) for name in self.choices]

    def _continue(self, example: dict, choice: str) -> str:
        text = self._render(self.continuation, {**example, "choice": choice})
        return text.replace(self.fill, choice) if self.fill else text

    def options(self, example: dict) -> list[str]:
        """The continuations scored for ``example``: the verbaliser's, or the example's own choices."""
        if self.kind == "classification":
            return list(self.candidates.values())
        if self.kind == "generation":
            return [self.target(example)]
        return [self._continue(example, choice) for choice in self._choices(example)]

    def gold(self, example: dict) -> list[int]:
        """Indices of the correct options (ReCoRD may have several); the first is the training target."""
        if self.kind == "classification":
            value = str(example[self.label])
            if value not in self.candidates:
                raise TaskError(f"task {self.name}: label {value!r} is not one of {list(self.candidates)}")
            return [list(self.candidates).index(value)]
        if self.kind == "generation":
            return [0]
        if self.label:
            return [int(example[self.label])]
        accepted = set(self.gold_answers(example))
        correct = [i for i, choice in enumerate(self._choices(example)) if choice in accepted]
        if not correct:
            raise TaskError(f"task {self.name}: no choice of an example is among its answers {sorted(accepted)}")
        return correct

    def label_index(self, example: dict) -> int:
        return self.gold(example)[0]

    def gold_answers(self, example: dict) -> list[str]:
        """The reference answers of a generation (or answer-listing multiple-choice) example."""
        answers = self._field(example, self.answers)
        return [str(a) for a in (answers if isinstance(answers, list) else [answers])]

    def target(self, example: dict) -> str:
        """The gold continuation: what LM-style training teaches and demonstrations show."""
        if self.kind == "generation":
            answers = self.gold_answers(example)
            if not answers:
                raise TaskError(f"task {self.name}: an example has no gold answer")
            return self._continue(example, answers[0])
        return self.options(example)[self.label_index(example)]

    @property
    def continuations(self) -> list[str]:
        """The fixed verbaliser of a classification task (heads and masked LMs need one)."""
        if self.kind != "classification":
            raise TaskError(f"task {self.name} is a {self.kind} task; its options differ per example, so it "
                            "needs a causal LM scored on its own (not a masked LM or peft: head)")
        return list(self.candidates.values())

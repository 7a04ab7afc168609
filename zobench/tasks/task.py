"""A task, declared in YAML: where its data lives, how an example becomes a prompt, what it is scored on.

A declaration (``zobench/tasks/definitions/*.yaml``, or any YAML file a user points at) holds:

* ``template`` — the prompt, with ``{field}``, ``{field.subfield}`` and filters such as
  ``{question|capitalize|question_mark}`` (see :data:`FILTERS`); ``{mask}`` marks where a masked LM
  predicts the label word (a causal LM's prompt ends there);
* ``label`` and ``candidates`` — the example field holding the gold label and, for each label value,
  the text appended to the prompt (MeZO's verbaliser);
* ``metric`` — ``accuracy``;
* ``hub`` — the Hugging Face dataset (``path``, ``name``, and the hub split that serves as ``train``
  and ``test``);
* ``local`` — the same data as files under a data directory (``dir``, then per split a ``file``, a
  ``format`` and optional ``rename`` of fields), in the formats of :mod:`zobench.tasks.formats`;
* ``kshot`` (optional) — LM-BFF's k-shot folders, ``dir`` with ``{seed}`` and a file per split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
import re

import yaml

FILTERS = {
    "lower": str.lower,
    "strip": str.strip,
    "capitalize": lambda text: text[:1].upper() + text[1:],
    "question_mark": lambda text: text if text.rstrip().endswith("?") else text.rstrip() + "?",
    "rstrip_period": lambda text: text.rstrip().rstrip("."),
}
PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


class TaskError(ValueError):
    """A task declaration or example that cannot be used; the message names the task and the fix."""


@dataclass(frozen=True)
class Task:
    name: str
    template: str
    label: str
    candidates: dict[str, str]  # label value (as text) -> continuation; the order defines class indices
    metric: str = "accuracy"
    description: str = ""
    hub: dict = field(default_factory=dict)
    local: dict = field(default_factory=dict)
    kshot: dict = field(default_factory=dict)
    source: Path | None = None

    @classmethod
    def from_yaml(cls, path: Path) -> "Task":
        document = yaml.safe_load(Path(path).read_text())
        allowed = {"name", "template", "label", "candidates", "metric", "description", "hub", "local", "kshot"}
        unknown = set(document) - allowed
        if unknown:
            raise TaskError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        missing = {"name", "template", "label", "candidates"} - set(document)
        if missing:
            raise TaskError(f"{path}: missing key(s) {sorted(missing)}")
        for expression in PLACEHOLDER.findall(document["template"]):
            for name in expression.split("|")[1:]:
                if name not in FILTERS:
                    raise TaskError(f"{path}: unknown template filter {name!r}; filters: {', '.join(FILTERS)}")
        document["candidates"] = {str(k): v for k, v in document["candidates"].items()}
        return cls(**document, source=Path(path))

    def _value(self, example: dict, expression: str) -> str:
        name, *filters = expression.split("|")
        value = example
        for part in name.split("."):
            if not isinstance(value, dict) or part not in value:
                raise TaskError(f"task {self.name}: the template needs field {name!r}, which the example lacks "
                                f"(fields: {', '.join(example)})")
            value = value[part]
        text = str(value)
        for name in filters:
            text = FILTERS[name](text)
        return text

    def render(self, example: dict, mask: str = "") -> str:
        """The whole prompt, with ``{mask}`` replaced by ``mask``."""
        return PLACEHOLDER.sub(lambda m: mask if m.group(1) == "mask" else self._value(example, m.group(1)),
                               self.template)

    def prompt(self, example: dict) -> str:
        """The prompt a causal LM continues with a candidate: the template up to ``{mask}``."""
        return self.render(example, mask="\0").split("\0")[0]

    def surface_prompt(self) -> str:
        """The prompt with every field emptied (for surface-form calibration and label prototypes)."""
        return PLACEHOLDER.sub("", self.template.split("{mask}")[0])

    def label_index(self, example: dict) -> int:
        value = str(example[self.label])
        if value not in self.candidates:
            raise TaskError(f"task {self.name}: label {value!r} is not one of {list(self.candidates)}")
        return list(self.candidates).index(value)

    @property
    def continuations(self) -> list[str]:
        return list(self.candidates.values())

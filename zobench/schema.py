"""Declared file shapes (pydantic models) and their errors as one line naming each YAML path.

Every file a user writes (suites, task declarations, memory studies) is a :class:`Declared` model:
unknown keys refused, types strict (``"1"`` is not 1, ``true`` is not 1), literals and bounds. A
model's ``ValidationError`` lists every problem of the file with its location; :func:`one_line`
renders them all on one line, each with its path written as in the file (``optimizers[2].betas``)
and in the words the README uses (``expected a number``, ``'fp32' is not one of …``,
``unknown key; allowed: …``). ``zobench schema`` writes the models' JSON Schemas, so an editor's
YAML language server completes and checks a file as it is typed.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

PositiveInt = Annotated[int, Field(strict=True, ge=1)]
NonNegativeInt = Annotated[int, Field(strict=True, ge=0)]
Number = Annotated[float, Field(allow_inf_nan=False)]  # an int is a number too; a bool is not

TYPES = {"float": "a number", "int": "an integer", "string": "a string", "list": "a list", "dict": "a mapping",
         "model": "a mapping", "bool": "true or false", "tuple": "a list"}


class Declared(BaseModel):
    """A mapping of a user's file: unknown keys refused, types strict, frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def yaml_path(location: tuple) -> str:
    """``("methods", 2, "label")`` as ``methods[2].label``."""
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _fields_at(model: type[BaseModel] | None, location: tuple) -> list[str]:
    """The keys the model accepts at ``location`` (a mapping's path), for an unknown key's hint."""
    for part in location:
        if model is None:
            return []
        if isinstance(part, int) or part not in model.model_fields:
            continue  # a list index, or a union's tag
        annotation = model.model_fields[part].annotation
        model = next((a for a in _inner(annotation) if isinstance(a, type) and issubclass(a, BaseModel)), None)
    return list(model.model_fields) if model is not None else []


def _inner(annotation) -> list:
    """Every type an annotation mentions (``list[Table] | None`` -> list, Table, None)."""
    arguments = getattr(annotation, "__args__", ())
    return [annotation, *[inner for argument in arguments for inner in _inner(argument)]]


def _choices(expected: str) -> str:
    """pydantic's ``'a', 'b' or 'c'`` as ``a, b, c``."""
    return ", ".join(re.findall(r"'([^']*)'", expected)) or expected


def _message(problem: dict, model: type[BaseModel] | None, hinted: set) -> str:
    kind, value, context = problem["type"], problem.get("input"), problem.get("ctx", {})
    got = f", got {value!r:.60}"
    name = kind.removesuffix("_type").removesuffix("_parsing")
    if kind == "extra_forbidden":
        parent = problem["loc"][:-1]
        allowed = _fields_at(model, parent) if parent not in hinted else []
        hinted.add(parent)  # a mapping's keys are listed once per line
        return "unknown key" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
    if kind == "missing":
        return f"missing required key {problem['loc'][-1]!r}"
    if kind == "literal_error":
        return f"{value!r} is not one of {_choices(context['expected'])}"
    if kind == "finite_number":
        return f"expected a finite number{got}"
    if kind in ("greater_than_equal", "greater_than", "less_than", "less_than_equal"):
        relation = {"greater_than_equal": ">=", "greater_than": ">", "less_than": "<", "less_than_equal": "<="}[kind]
        bound = next(iter(context.values()))
        return f"must be {relation} {bound}{got}"
    if kind in ("too_short", "too_long"):
        return (f"an empty list; give at least {context.get('min_length', 1)}" if not value
                else f"expected {'at least ' + str(context['min_length']) if kind == 'too_short' else 'at most ' + str(context['max_length'])} items{got}")
    if name in TYPES:
        return f"expected {TYPES[name]}{got}"
    return re.sub(r" or instance of \w+", "", problem["msg"]).removeprefix("Value error, ")


def one_line(error: ValidationError, where: str, model: type[BaseModel] | None = None) -> str:
    """Every problem of ``error`` on one line: ``where: path: message; path: message``. A value that
    fits no branch of a union is named once, by its first branch's complaint."""
    seen, hinted, parts = set(), set(), []
    for problem in error.errors(include_url=False):
        location = tuple(part for part in problem["loc"] if not (isinstance(part, str) and "[" in part))
        path = yaml_path(location[:-1] if problem["type"] == "missing" else location)
        if location in seen:
            continue
        seen.add(location)
        parts.append(f"{path + ': ' if path else ''}{_message({**problem, 'loc': location}, model, hinted)}")
    more = f" ({len(parts)} problems)" if len(parts) > 1 else ""
    return f"{where}: " + "; ".join(parts) + more

"""Declared file shapes (pydantic models) and their errors as one line naming the YAML path.

A model's ``ValidationError`` lists every problem with its location; a user reads the first, with
its path written as in the file (``methods[2].label``) and a count of the others, on one line.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

PositiveInt = Annotated[int, Field(strict=True, ge=1)]


class Declared(BaseModel):
    """A mapping of a user's file: unknown keys refused, types strict (``"1"`` is not 1), frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def yaml_path(location: tuple) -> str:
    """``("methods", 2, "label")`` as ``methods[2].label``."""
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def one_line(error: ValidationError, where: str) -> str:
    """The first problem of ``error`` as ``where: path: message`` (and how many more there are)."""
    problems = error.errors(include_url=False)
    first = problems[0]
    location = tuple(part for part in first["loc"] if not (isinstance(part, str) and "[" in part))  # union tags
    path = yaml_path(location)
    message = re.sub(r" or instance of \w+", "", first["msg"]).removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    elif first["type"] == "missing":
        message = "missing, and required"
    value = "" if first["type"] in ("missing", "extra_forbidden", "value_error") else f" (got {first['input']!r:.60})"
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return f"{where}: {path + ': ' if path else ''}{message}{value}{more}"

"""Problems by name: the paper's 2-D test functions, low-rank quadratics of any dimension, or a
language-model task with a model."""

from __future__ import annotations

import torch

from . import quadratic
from .base import Problem
from .test_functions import TEST_FUNCTIONS, TestFunctionProblem

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16,
          "float16": torch.float16}
PEFT_MODES = ("none", "lora", "prefix", "head", "top")  # what a task's run trains: see task_problem
# Revisions of what turns a run's parameters into numbers, beside the optimizers' (registry.py): bump
# one when its maths changes (a test function's formula, a quadratic's construction, a task's data
# pipeline, the scoring of candidates) and its runs are no longer reused. Keys include revisions > 1.
REVISIONS = {"test-function": 1, "quadratic": 1, "task": 1, "scorer": 1}


def revisions(problem: str, model: str, optimizer_revision: int) -> dict[str, int]:
    """The revisions a run of ``problem`` (a task if it has a ``model``) depends on: its optimizer's,
    its problem family's and, for a task, its scorer's."""
    family = "task" if model else "test-function" if problem in TEST_FUNCTIONS else "quadratic"
    used = {"optimizer": optimizer_revision, family: REVISIONS[family]}
    return used | ({"scorer": REVISIONS["scorer"]} if family == "task" else {})


def problem_names() -> list[str]:
    return list(TEST_FUNCTIONS) + ["quadratic-d<d>-r<r>[-noisy]"]


def problem_error(name: str) -> str | None:
    """Why ``name`` names no problem (tasks aside), or ``None``."""
    if name in TEST_FUNCTIONS:
        return None
    shape = quadratic.parse(name)
    if shape is None:
        return f"unknown problem {name!r}; known: {', '.join(problem_names())}"
    reason = quadratic.check(*shape[:2])
    return reason and f"{name}: {reason}"


def build_problem(spec, device: str = "cpu") -> Problem:
    """The problem of a run specification: a test function, or its task with its model."""
    if spec.problem in TEST_FUNCTIONS:
        return TestFunctionProblem(TEST_FUNCTIONS[spec.problem], dtype=DTYPES[spec.dtype], device=device)
    if quadratic.parse(spec.problem):
        return quadratic.QuadraticProblem(spec.problem, seed=spec.seed, dtype=DTYPES[spec.dtype], device=device)
    from .task_problem import TaskProblem

    return TaskProblem(spec.task_file or spec.problem, spec.model, peft=spec.peft, data_dir=spec.data_dir, dtype=spec.dtype,
                       device=device, device_map="auto" if spec.device == "sharded" else None, seed=spec.seed,
                       objective=spec.objective, **spec.data_options)


__all__ = ["Problem", "problem_names", "problem_error", "build_problem", "revisions", "DTYPES", "PEFT_MODES",
           "REVISIONS"]

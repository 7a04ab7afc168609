"""Problems by name. Today the paper's 2-D test functions; language-model tasks plug in here too."""

from __future__ import annotations

import torch

from .base import Problem
from .test_functions import TEST_FUNCTIONS, TestFunctionProblem

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16,
          "float16": torch.float16}


def problem_names() -> list[str]:
    return list(TEST_FUNCTIONS)


def build_problem(name: str, *, dtype: str = "float32", device: str = "cpu") -> Problem:
    return TestFunctionProblem(TEST_FUNCTIONS[name], dtype=DTYPES[dtype], device=device)


__all__ = ["Problem", "problem_names", "build_problem", "DTYPES"]

"""A memory model fitted to measurements: peak bytes as a sum of terms a reader can name.

Per method, peak memory above the process floor is modelled as

    peak = b · (c_P·P + c_T·T + c_A·B·L·layers·hidden + c_H·B·L·hidden + c_Z·B·L·V) + c_0

with P the model's parameters, T the trainable ones (gradients and optimizer state), then the
activations every layer keeps for the backward pass, the transients of the one layer running (all
that inference holds), and the logits; b is the bytes of one element of the measured dtype and c_0
the runtime's constant overhead. The coefficients are counts of elements
(c_P ≈ 1 weight copy; c_T ≈ 3 for Adam's gradient and two moments), found by non-negative least
squares on small shapes, so they carry over to other dtypes: a prediction at another dtype scales
the element terms by its bytes and drops c_0 (which belonged to the measuring runtime). Features that
a method's points cannot tell apart (T = P for full fine-tuning, T = 0 for inference) are merged or
dropped before fitting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .probe import Shape

FEATURES = ("parameters", "trainable", "activations", "transients", "logits")
BYTES = {"float32": 4, "float64": 8, "bfloat16": 2, "float16": 2}


def features(shape: Shape, trainable: int, sequence_length: int, batch_size: int) -> np.ndarray:
    tokens = sequence_length * batch_size
    return np.array([shape.parameters(), trainable, tokens * shape.layers * shape.hidden, tokens * shape.hidden,
                     tokens * shape.vocab], dtype=float)


def nonnegative_least_squares(design: np.ndarray, target: np.ndarray) -> np.ndarray:
    """min ‖design·x − target‖ with x ≥ 0: least squares on a shrinking set of columns (few columns)."""
    active = list(range(design.shape[1]))
    while True:
        solution = np.zeros(design.shape[1])
        solution[active] = np.linalg.lstsq(design[:, active], target, rcond=None)[0]
        negative = [i for i in active if solution[i] < 0]
        if not negative:
            return solution
        active.remove(min(negative, key=lambda i: solution[i]))


@dataclass(frozen=True)
class MemoryModel:
    method: str
    coefficients: dict[str, float]  # elements per unit of each feature
    overhead_bytes: float
    dtype: str  # of the measurements
    merged: dict[str, list[str]]  # a feature -> the features folded into it (equal on every point)

    @classmethod
    def fit(cls, method: str, rows: list[tuple[np.ndarray, float]], dtype: str) -> "MemoryModel":
        """``rows``: (features, measured peak bytes above the floor) of one method's points."""
        design = np.stack([f for f, _ in rows]) * BYTES[dtype]
        target = np.array([peak for _, peak in rows], dtype=float)
        merged = {}  # a feature equal to another on every point is folded into it
        for i, name in enumerate(FEATURES):
            column = design[:, i]
            if not column.any():
                continue
            twin = next((j for j in merged if np.allclose(design[:, FEATURES.index(j)], column)), None)
            merged.setdefault(twin or name, []).append(name)
        kept = list(merged)
        columns = np.column_stack([design[:, FEATURES.index(n)] for n in kept] + [np.ones(len(rows))])
        scale = columns.max(axis=0)  # conditioning: features span many orders of magnitude
        solution = nonnegative_least_squares(columns / scale, target) / scale
        coefficients = {name: 0.0 for name in FEATURES}
        for name, value in zip(kept, solution):
            coefficients[name] = float(value)  # a merged twin contributes through its representative
        return cls(method, coefficients, float(solution[-1]), dtype,
                   {name: names for name, names in merged.items() if len(names) > 1})

    def predict(self, feature_values: np.ndarray, dtype: str | None = None) -> float:
        """Peak bytes; at another dtype than the measured one, without the measuring runtime's overhead."""
        dtype = dtype or self.dtype
        total = sum(self.coefficients[name] * value for name, value in zip(FEATURES, feature_values))
        return total * BYTES[dtype] + (self.overhead_bytes if dtype == self.dtype else 0.0)

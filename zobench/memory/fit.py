"""A memory model fitted to measurements: peak bytes as a sum of terms a reader can name.

Per method, peak memory above the process floor is modelled as

    peak = b · (K + c_P·P + c_E·V·hidden + c_A·B·L·layers·hidden + c_H·B·L·hidden + c_Z·B·L·V) + c_0

* K, counted, not fitted: the weights (P elements) and, per trainable parameter, its gradient (for
  first-order methods) and the optimizer's declared state buffers (Adam's two moments, ZO-AdaMU's m);
* c_P·P: anything else per parameter (e.g. the temporaries of a multi-tensor optimizer step);
* c_E·V·hidden: copies of the largest single tensor, the embedding (a ZO step's per-tensor
  temporaries are as large as it; on small shapes it is most of P, on large ones a few per cent, so
  it needs its own term or it would be read as per-parameter memory);
* the activations every layer keeps for the backward pass, the transients of the one layer running
  (all that inference holds), and the logits;
* b, the bytes of one element of the measured dtype, and c_0, the runtime's constant overhead.

The c are counts of elements, found by non-negative least squares on small shapes, so they carry over
to other dtypes: a prediction at another dtype scales the element terms by its bytes and drops c_0
(which belonged to the measuring runtime).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

from .probe import Shape

FEATURES = ("parameters", "largest tensor", "activations", "transients", "logits")
BYTES = {"float32": 4, "float64": 8, "bfloat16": 2, "float16": 2}


def features(shape: Shape, sequence_length: int, batch_size: int) -> np.ndarray:
    tokens = sequence_length * batch_size
    return np.array([shape.parameters(), shape.vocab * shape.hidden, tokens * shape.layers * shape.hidden,
                     tokens * shape.hidden, tokens * shape.vocab], dtype=float)


def known_elements(shape: Shape, trainable: int, buffers_per_trainable: int) -> float:
    """The weights, and per trainable parameter its gradient and optimizer state (as declared)."""
    return float(shape.parameters() + trainable * buffers_per_trainable)


@dataclass(frozen=True)
class MemoryModel:
    method: str
    coefficients: dict[str, float]  # elements per unit of each feature, beyond the known buffers
    overhead_bytes: float
    dtype: str  # of the measurements

    @classmethod
    def fit(cls, method: str, rows: list[tuple[np.ndarray, float, float]], dtype: str) -> "MemoryModel":
        """``rows``: (features, known elements, measured peak bytes above the floor) of one method."""
        design = np.column_stack([np.stack([f for f, _, _ in rows]) * BYTES[dtype], np.ones(len(rows))])
        target = np.array([peak - known * BYTES[dtype] for _, known, peak in rows], dtype=float)
        scale = design.max(axis=0)  # conditioning: features span many orders of magnitude
        solution = nnls(design / scale, target)[0] / scale  # Lawson–Hanson: the optimum, not a heuristic
        return cls(method, dict(zip(FEATURES, map(float, solution))), float(solution[-1]), dtype)

    def predict(self, feature_values: np.ndarray, known: float, dtype: str | None = None) -> float:
        """Peak bytes; at another dtype than the measured one, without the measuring runtime's overhead."""
        dtype = dtype or self.dtype
        total = known + sum(self.coefficients[name] * value for name, value in zip(FEATURES, feature_values))
        return total * BYTES[dtype] + (self.overhead_bytes if dtype == self.dtype else 0.0)

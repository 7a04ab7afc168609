"""The six 2-D test functions of the ZO-AdaMU paper (Figure 2), as small torch problems.

Each is declared by its formula, global minimum, search domain and a start point. The paper does
not give start points; ours sit in a corner of the domain, away from the minimum, and are part of
the declaration so that every optimizer starts from the same place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .base import no_batch


@dataclass(frozen=True)
class TestFunction:
    name: str
    formula: str
    f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    minimum: tuple[float, float]
    domain: tuple[float, float]  # the same bounds for x and y
    start: tuple[float, float]

    __test__ = False  # not a pytest test class

    def loss(self, point: torch.Tensor) -> torch.Tensor:
        return self.f(point[0], point[1])

    def distance(self, point: torch.Tensor) -> float:
        minimum = torch.tensor(self.minimum, dtype=torch.float64)
        return float(torch.linalg.vector_norm(point.detach().double() - minimum))


class TestFunctionProblem:
    """A test function as a :class:`~zobench.problems.base.Problem`: the point (x, y) is the model.

    Its metric is the distance to the optimum (lower is better); dev and test are the same, since
    there is no data.
    """

    metric = "distance"
    higher_is_better = False
    __test__ = False

    def __init__(self, function: TestFunction, dtype: torch.dtype = torch.float32, device: str = "cpu"):
        self.function = function
        self.point = torch.nn.Parameter(torch.tensor(function.start, dtype=dtype, device=device))

    def parameter_groups(self, weight_decay: float = 0.0) -> list[dict]:
        return [{"params": [self.point], "weight_decay": weight_decay}]

    def loss_closure(self, step: int, shard: tuple[int, int] | None = None):
        no_batch(shard, self)
        return lambda: self.function.loss(self.point)

    def whole_train_closure(self):
        """A test function has no batch: its loss is the whole objective."""
        return (lambda: self.function.loss(self.point)), 1

    def evaluate(self, split: str) -> dict[str, float]:
        with torch.no_grad():
            loss = float(self.function.loss(self.point))
        return {"distance": self.function.distance(self.point), "loss": loss}

    def snapshot(self) -> dict:
        x, y = (float(v) for v in self.point.detach())
        return {"x": x, "y": y}


def _beale(x, y):
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y ** 2) ** 2 + (2.625 - x + x * y ** 3) ** 2


TEST_FUNCTIONS = {fn.name: fn for fn in [
    TestFunction("a", "|x| + |y|", lambda x, y: x.abs() + y.abs(), (0.0, 0.0), (-3.0, 3.0), (-2.5, 2.0)),
    TestFunction("b", "|x + y| + |x - y|/10", lambda x, y: (x + y).abs() + (x - y).abs() / 10,
                 (0.0, 0.0), (-3.0, 3.0), (-2.5, 2.0)),
    TestFunction("c", "(x + y)^2 + (x - y)^2/10", lambda x, y: (x + y) ** 2 + (x - y) ** 2 / 10,
                 (0.0, 0.0), (-3.0, 3.0), (-2.5, 2.0)),
    TestFunction("d", "|x|/10 + |y|", lambda x, y: x.abs() / 10 + y.abs(), (0.0, 0.0), (-3.0, 3.0),
                 (-2.5, 2.0)),
    TestFunction("beale", "Beale", _beale, (3.0, 0.5), (-4.5, 4.5), (-1.0, -1.5)),
    TestFunction("rosenbrock", "100(x - y^2)^2 + (1 - y)^2",
                 lambda x, y: 100 * (x - y ** 2) ** 2 + (1 - y) ** 2, (1.0, 1.0), (-4.5, 4.5), (-2.0, -1.5)),
]}

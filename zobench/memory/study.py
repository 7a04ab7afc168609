"""The memory study (Figure 3, Table 5): measure, fit a memory model, validate it, predict what fits.

``suites/memory.yaml`` declares the methods (inference, or an optimizer with a PEFT mode), the small
shapes the model is fitted on, the OPT sizes it is validated on (measured, never fitted), and the
hardware to predict for. ``zobench memory suites/memory.yaml`` measures every point in its own
process (resuming: a point already in ``<out>/<name>/runs/`` is not measured again), then writes:

* ``validation.md`` — measured against predicted peak on the held-out sizes, with the relative error;
* ``coefficients.md`` — each method's fitted element counts, the memory model a reader can check;
* ``figure3.png`` — predicted peak against OPT size per method at the paper's setting, the measured
  held-out points, and the GPU capacities (the paper's Figure 3);
* ``table5.md`` — the largest OPT each method fits on 1–8 A100s or V100s, ours / the paper's.

A model fits a GPU set when its predicted peak is at most the set's total memory: sharding overheads
and fragmentation are not modelled, so the table is an upper bound on what fits.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationError

from ..models import OPT_SHAPES
from ..problems import PEFT_MODES
from ..report.tables import Table
from ..schema import Declared, PositiveInt, one_line
from ..store import ResultStore, inside, unsafe_name
from ..yaml_files import YamlFileError, load_yaml
from .fit import BYTES, FEATURES, MemoryModel, features, known_elements
from .probe import Point, Shape, run

GIB = 2 ** 30


class MemoryStudyError(ValueError):
    """A memory study file that cannot run; one line naming the key."""


def opt_shape(name: str) -> Shape:
    if name not in OPT_SHAPES:
        raise MemoryStudyError(f"unknown OPT size {name!r}; sizes: {', '.join(OPT_SHAPES)}")
    hidden, layers, heads, ffn = OPT_SHAPES[name]
    return Shape(hidden, layers, heads, ffn)


@dataclass(frozen=True)
class Method:
    label: str
    optimizer: str | None = None
    peft: str = "none"

    @property
    def buffers_per_trainable(self) -> int:
        """Parameter-sized buffers per trainable parameter: a gradient (first-order) and the state."""
        if self.optimizer is None:
            return 0
        from ..optimizers import REGISTRY

        return REGISTRY.get(self.optimizer).buffers_per_parameter


@dataclass(frozen=True)
class MemoryStudy:
    name: str
    description: str
    methods: tuple[Method, ...]
    fit_points: tuple[tuple[Shape, int], ...]  # (shape, sequence length)
    validate: tuple[str, ...]
    validate_length: int
    batch_size: int
    dtype: str
    device: str
    predict: dict

    def points(self) -> list[Point]:
        shapes = [*self.fit_points, *((opt_shape(n), self.validate_length) for n in self.validate)]
        return [Point(m.label, m.optimizer, m.peft, shape, length, self.batch_size, self.dtype, self.device)
                for m in self.methods for shape, length in shapes]


def _safe_name(name: str) -> str:
    if unsafe_name(name):
        raise ValueError(unsafe_name(name))
    return name


def _registered(name: str) -> str:
    from ..optimizers import REGISTRY, UnknownOptimizerError

    try:
        REGISTRY.get(name)
    except UnknownOptimizerError as error:
        raise ValueError(str(error)) from None
    return name


class _Method(Declared):
    label: Annotated[str, Field(min_length=1)]
    optimizer: Annotated[str, AfterValidator(_registered)] | None = None
    peft: Literal[PEFT_MODES] = "none"


class _Fit(Declared):
    # hidden, layers, heads, ffn[, vocabulary]
    shapes: Annotated[list[Annotated[list[PositiveInt], Field(min_length=4, max_length=5)]], Field(min_length=1)]
    sequence_lengths: Annotated[list[PositiveInt], Field(min_length=1)]


class _Validate(Declared):
    models: Annotated[list[str], Field(min_length=1)]
    sequence_length: PositiveInt


class _Hardware(Declared):
    memory_gib: Annotated[int | float, Field(gt=0)]
    gpus: Annotated[list[PositiveInt], Field(min_length=1)]


class _Predict(Declared):
    dtype: Literal[tuple(BYTES)]
    sequence_length: PositiveInt
    models: Annotated[list[str], Field(min_length=1)]
    hardware: Annotated[dict[str, _Hardware], Field(min_length=1)]
    table5: Annotated[list[str], Field(min_length=1)]
    paper: dict[str, dict[str, str]] = {}


class StudyFile(Declared):
    name: Annotated[str, AfterValidator(_safe_name)]
    description: str = ""
    methods: Annotated[list[_Method], Field(min_length=1)]
    fit: _Fit
    validate_: _Validate = Field(alias="validate")
    batch_size: PositiveInt = 1
    dtype: Literal[tuple(BYTES)] = "float32"
    device: str = "cpu"
    predict: _Predict


def load_study(path: str | Path) -> MemoryStudy:
    path = Path(path)
    if not path.is_file():
        raise MemoryStudyError(f"{path}: no such memory study file (zobench ships suites/memory.yaml)")
    try:
        document = load_yaml(path)
    except YamlFileError as error:
        raise MemoryStudyError(str(error)) from None
    if not isinstance(document, dict):
        raise MemoryStudyError(f"{path.name}: a memory study is a mapping (see suites/memory.yaml)")
    try:
        declared = StudyFile.model_validate(document)
    except ValidationError as error:
        raise MemoryStudyError(one_line(error, path.name, StudyFile)) from None
    labels = [method.label for method in declared.methods]
    for i, method in enumerate(declared.methods):
        if method.label in labels[:i]:
            raise MemoryStudyError(f"{path.name}: methods[{i}].label: {method.label!r} also labels "
                                   f"methods[{labels.index(method.label)}]; labels name the table rows")
        if method.peft != "none" and method.optimizer is None:
            raise MemoryStudyError(f"{path.name}: methods[{i}].peft: inference trains nothing; give an optimizer")
    unknown = [label for label in declared.predict.table5 if label not in labels]
    if unknown:
        raise MemoryStudyError(f"{path.name}: predict.table5: {', '.join(unknown)} is not a method label")
    for at, names in (("validate.models", declared.validate_.models), ("predict.models", declared.predict.models)):
        for i, name in enumerate(names):
            if name not in OPT_SHAPES:
                raise MemoryStudyError(f"{path.name}: {at}[{i}]: unknown OPT size {name!r}; sizes: "
                                       f"{', '.join(OPT_SHAPES)}")
    methods = tuple(Method(m.label, m.optimizer, m.peft) for m in declared.methods)
    points = tuple((Shape(*shape), length) for shape in declared.fit.shapes for length in declared.fit.sequence_lengths)
    return MemoryStudy(declared.name, declared.description, methods, points, tuple(declared.validate_.models),
                       declared.validate_.sequence_length, declared.batch_size, declared.dtype, declared.device,
                       declared.predict.model_dump())


def _key(point: Point) -> str:
    return hashlib.sha256(json.dumps(asdict(point), sort_keys=True).encode()).hexdigest()[:16]


def _record_problem(record: dict, key: str) -> str | None:
    """Why ``record`` is not a sound memory record stored as ``key``; ``None`` if it is."""
    try:
        point = Point.from_dict(record["point"])
        numbers = [record[name] for name in ("peak_bytes", "baseline_bytes", "trainable", "parameters")]
    except (KeyError, TypeError) as error:
        return f"it lacks a field or has a wrong one ({error})"
    if not all(isinstance(number, (int, float)) for number in numbers):
        return "a measurement is not a number"
    if record.get("key") != key or _key(point) != key:
        return f"it is not the record of point {key}"
    return None


def measure_all(study: MemoryStudy, out: Path, progress=print, workers: int = 1) -> list[dict]:
    """Every point's record (``<out>/<name>/runs/``), measuring only those not yet recorded.

    Each probe is its own process, and peaks are per process (the resident set, or the CUDA
    allocator's own statistics), so ``workers`` probes may run at once as long as they fit together.
    """
    try:
        store = ResultStore(inside(out, study.name), check=_record_problem, logged=False)
    except ValueError as error:
        raise MemoryStudyError(f"{study.name}: {error}") from None
    points = study.points()
    pending = [(i, point) for i, point in enumerate(points) if not store.has(_key(point))]

    def measure_one(item):
        i, point = item
        progress(f"[{i + 1}/{len(points)}] {point.method}: hidden {point.shape.hidden}, "
                 f"{point.shape.layers} layers, length {point.sequence_length}")
        store.write_record({**run(point), "key": _key(point)})

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(measure_one, pending))  # re-raises the first failed probe
    return [store.record(_key(point)) for point in points]


def _inputs(record: dict, method: Method) -> tuple:
    """A measured point's features and known elements."""
    point = Point.from_dict(record["point"])
    return (features(point.shape, point.sequence_length, point.batch_size),
            known_elements(point.shape, record["trainable"], method.buffers_per_trainable))


def _held_out(study: MemoryStudy, record: dict) -> bool:
    return any(record["point"]["shape"] == asdict(opt_shape(name)) for name in study.validate)


def fit_models(study: MemoryStudy, records: list[dict]) -> dict[str, MemoryModel]:
    models = {}
    for method in study.methods:
        rows = [(*_inputs(r, method), r["peak_bytes"] - r["baseline_bytes"]) for r in records
                if r["point"]["method"] == method.label and not _held_out(study, r)]
        models[method.label] = MemoryModel.fit(method.label, rows, study.dtype)
    return models


def _trainable(method: Method, shape: Shape) -> int:
    """Trainable parameters of a method on a shape, as the probe's models have them."""
    if method.optimizer is None:
        return 0
    if method.peft == "prefix":
        from ..problems.task_problem import PREFIX_TOKENS

        return PREFIX_TOKENS * shape.layers * 2 * shape.hidden  # a key and a value per layer and virtual token
    return shape.parameters()


def predicted_peak(model: MemoryModel, method: Method, shape: Shape, length: int, batch: int,
                   dtype: str | None = None) -> float:
    known = known_elements(shape, _trainable(method, shape), method.buffers_per_trainable)
    return model.predict(features(shape, length, batch), known, dtype)


def largest_fitting(model: MemoryModel, method: Method, sizes: list[str], capacity_bytes: float, length: int,
                    dtype: str) -> str:
    fitting = [n for n in sizes if predicted_peak(model, method, opt_shape(n), length, 1, dtype) <= capacity_bytes]
    return fitting[-1].removeprefix("opt-").upper() if fitting else "—"


def _validation_table(study: MemoryStudy, records: list[dict], models: dict, methods: dict) -> Table:
    names = {opt_shape(name).hidden: name for name in study.validate}
    cells = {}
    for r in (r for r in records if _held_out(study, r)):
        measured = r["peak_bytes"] - r["baseline_bytes"]
        predicted = models[r["point"]["method"]].predict(*_inputs(r, methods[r["point"]["method"]]))
        column, row = names[r["point"]["shape"]["hidden"]], r["point"]["method"]
        cells[(row, f"{column} measured MiB")] = [measured / 2 ** 20]
        cells[(row, f"{column} predicted MiB")] = [predicted / 2 ** 20]
        cells[(row, f"{column} error %")] = [100 * (predicted - measured) / measured]
    columns = [f"{n} {what}" for n in study.validate for what in ("measured MiB", "predicted MiB", "error %")]
    return Table("validation", f"Held-out sizes (never fitted), length {study.validate_length}, batch "
                 f"{study.batch_size}, {study.dtype} on {study.device}: peak above the process floor",
                 "method", list(methods), columns, cells)


def _coefficients_table(models: dict, methods: dict) -> Table:
    cells = {(label, name): [value] for label, model in models.items()
             for name, value in [("counted buffers", methods[label].buffers_per_trainable),
                                 *model.coefficients.items(), ("overhead MiB", model.overhead_bytes / 2 ** 20)]}
    return Table("coefficients", "The memory model: counted, the weights and per trainable parameter that many "
                 "buffers (gradient, optimizer state); fitted, elements per parameter beyond those, per element "
                 "of the largest tensor, per token·layer·hidden (kept activations), per token·hidden (one "
                 "layer's transients), per token·vocabulary entry (logits)",
                 "method", list(models), ["counted buffers", *FEATURES, "overhead MiB"], cells)


def _table5(predict: dict, models: dict, methods: dict) -> Table:
    sizes, length, dtype = predict["models"], predict["sequence_length"], predict["dtype"]
    cells, rows = {}, []
    for gpu, spec in predict["hardware"].items():
        for count in spec["gpus"]:
            row = f"{count}×{gpu} ({count * spec['memory_gib']}GB)"
            rows.append(row)
            for label in predict["table5"]:
                cells[(row, label)] = [largest_fitting(models[label], methods[label], sizes,
                                                       count * spec["memory_gib"] * GIB, length, dtype)]
    return Table("table5", f"Largest OPT whose predicted peak ({dtype}, length {length}, batch 1) fits the GPUs' "
                 "total memory, ours / the paper's (Table 5)", "hardware", rows, list(predict["table5"]), cells,
                 formatter=lambda values: values[0] if values else "—", paper=predict.get("paper", {}))


def _figure3(study: MemoryStudy, records: list[dict], models: dict, methods: dict, output: Path) -> None:
    from ..report import figures

    predict = study.predict
    sizes, length, dtype = predict["models"], predict["sequence_length"], predict["dtype"]
    curves = {(label, precision): [(opt_shape(n).parameters(), predicted_peak(
        models[label], methods[label], opt_shape(n), length, 1, precision) / GIB) for n in sizes]
        for label in methods for precision in dict.fromkeys((dtype, study.dtype))}  # one line if they agree
    measured = {label: [(r["parameters"], (r["peak_bytes"] - r["baseline_bytes"]) / GIB) for r in records
                        if r["point"]["method"] == label and _held_out(study, r)] for label in methods}
    capacities = {f"1×{gpu}": spec["memory_gib"] for gpu, spec in predict["hardware"].items()}
    precisions = f"{dtype} (solid), {study.dtype} (dotted)" if dtype != study.dtype else dtype
    figures.memory_scaling(curves, measured, capacities, f"Predicted peak memory at length {length}, batch 1: "
                           f"{precisions}; measured held-out points (markers)", output)


def write_report(study: MemoryStudy, records: list[dict], out: Path) -> Path:
    """The validation, coefficient and Table 5 tables, Figure 3, and an index of them."""
    folder = out / study.name
    models, methods = fit_models(study, records), {m.label: m for m in study.methods}
    tables = [_validation_table(study, records, models, methods), _coefficients_table(models, methods),
              _table5(study.predict, models, methods)]
    for table in tables:
        table.write(folder)
    _figure3(study, records, models, methods, folder / "figure3.png")
    index = folder / "index.md"
    text = [f"# {study.name}", "", study.description.strip(), ""]
    text += [(folder / f"{t.name}.md").read_text() for t in tables]
    text += ["![Figure 3](figure3.png)", ""]
    index.write_text("\n".join(text))
    return index

"""A task's train, dev and test examples, from local files or the Hugging Face hub, by a protocol.

Protocols:

* ``mezo`` (MeZO's): a permutation of the train split, drawn with the data seed, gives
  ``num_train`` training and the next ``num_dev`` dev examples; ``num_test`` test examples are drawn
  from the test split (the task's hub validation split) with the same seed.
* ``kshot`` (LM-BFF's): the ``16-<seed>`` folder's train, dev and test files as they are.

Where a split is smaller than asked, all of it is taken; a train split too small for ``num_train +
num_dev`` gives at most 100 (and at most half) to dev, as MeZO does for CB and COPA. The sizes
actually used are returned. A task whose local files have no test split (DROP
offline) takes its test examples from the rest of the train file, skipping any whose prompt a train or
dev example has (the DROP file repeats questions).
Local files are found under a data directory given by the suite's ``data_dir`` or the
``ZOBENCH_DATA`` environment variable (``../shared/data`` holds the tested layout).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .formats import read
from .task import Task, TaskError

DATA_ENV = "ZOBENCH_DATA"
PROTOCOLS = ("mezo", "kshot")
SMALL_DEV = 100  # MeZO's dev size for the tasks with fewer than num_train + num_dev training examples


@dataclass(frozen=True)
class Splits:
    train: list[dict]
    dev: list[dict]
    test: list[dict]
    source: str  # where the examples came from

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "dev": len(self.dev), "test": len(self.test)}


def data_directory(data_dir: str | Path | None) -> Path | None:
    chosen = data_dir or os.environ.get(DATA_ENV)
    return Path(chosen) if chosen else None


def _normalise(task: Task, examples: list[dict], source: dict) -> list[dict]:
    """One shape for every source: nested fields lifted (SuperGLUE WSC's ``target``), fields renamed
    (``rename``) and label ids mapped to the task's label values (``label_map``)."""
    rename = source.get("rename", {})
    label_map = {str(k): str(v) for k, v in source.get("label_map", {}).items()}
    normalised = []
    for example in examples:
        flat = {}
        for key, value in example.items():  # a nested field never overwrites a top-level one (MultiRC's idx)
            if isinstance(value, dict):
                flat.update({k: v for k, v in value.items() if k not in example})
            else:
                flat[key] = value
        flat = {rename.get(k, k): v for k, v in flat.items()}
        if label_map and task.label in flat:
            flat[task.label] = label_map.get(str(flat[task.label]), flat[task.label])
        normalised.append(flat)
    return normalised


def _local_split(task: Task, root: Path, declaration: dict, split: str, seed: int | None = None) -> list[dict]:
    entry = declaration.get(split)
    if entry is None:
        raise TaskError(f"task {task.name}: no local file is declared for split {split!r}")
    folder = root / declaration["dir"].format(seed=seed)
    path = folder / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(path)
    return _normalise(task, read(path, entry["format"]), entry)


def local_examples(task: Task, split: str, data_dir: str | Path, *, kshot_seed: int | None = None) -> list[dict]:
    """Every example of one split of the local files, in file order (``kshot_seed``: LM-BFF's folder)."""
    declaration = task.kshot if kshot_seed is not None else task.local
    return _local_split(task, Path(data_dir), declaration, split, kshot_seed)


def _hub_split(task: Task, split: str) -> list[dict]:
    import datasets

    dataset = datasets.load_dataset(task.hub["path"], task.hub.get("name"), split=task.hub[split])
    return _normalise(task, [dict(example) for example in dataset], task.hub)


def _permutation(size: int, seed: int) -> list[int]:
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed)).tolist()


def load_splits(task: Task, *, protocol: str = "mezo", seed: int = 0, num_train: int = 1000, num_dev: int = 500,
                num_test: int = 1000, data_dir: str | Path | None = None) -> Splits:
    """The examples of ``task`` under ``protocol``; one-line :class:`TaskError` when no source works."""
    if protocol not in PROTOCOLS:
        raise TaskError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")
    root = data_directory(data_dir)
    tried = []
    if protocol == "kshot":
        if not task.kshot:
            raise TaskError(f"task {task.name} declares no k-shot files; use protocol mezo")
        if root is None:
            raise TaskError(f"task {task.name}: k-shot splits are read from local files; set data_dir in the "
                            f"suite or {DATA_ENV} to a folder holding {task.kshot['dir'].format(seed=seed)}/")
        try:
            return Splits(*(_local_split(task, root, task.kshot, s, seed) for s in ("train", "dev", "test")),
                          source=str(root / task.kshot["dir"].format(seed=seed)))
        except FileNotFoundError as missing:
            raise TaskError(f"task {task.name}: {missing} does not exist; set data_dir in the suite or "
                            f"{DATA_ENV} to the folder that holds {task.kshot['dir'].format(seed=seed)}/") from None
    pools = None
    if root is not None and task.local:
        try:
            pools = [_local_split(task, root, task.local, "train"),
                     _local_split(task, root, task.local, "test") if "test" in task.local else None]
            source = str(root / task.local["dir"])
        except FileNotFoundError as missing:
            tried.append(f"local file {missing} (not found)")
    if pools is None and task.hub:
        try:
            pools = [_hub_split(task, s) for s in ("train", "test")]
            source = f"hub:{task.hub['path']}/{task.hub.get('name') or ''}".rstrip("/")
        except Exception as error:  # offline, unknown dataset, no network: all mean "not reachable"
            tried.append(f"hub dataset {task.hub['path']}/{task.hub.get('name')} "
                         f"({str(error).splitlines()[0] if str(error) else type(error).__name__})")
    if pools is None:
        where = task.local.get("dir", task.name) if task.local else task.name
        raise TaskError(f"task {task.name}: no data; tried {'; '.join(tried) or 'no source'}. Set data_dir in "
                        f"the suite or {DATA_ENV} to a folder holding {where}/ (e.g. ../shared/data)")
    train_pool, test_pool = pools
    if len(train_pool) < num_train + num_dev:  # MeZO's rule for CB and COPA: 100 dev, the rest trains
        num_dev = min(num_dev, SMALL_DEV, len(train_pool) // 2)
    order = _permutation(len(train_pool), seed)
    taken = order[:num_train + num_dev]  # as MeZO: dev is the tail of this
    train = [train_pool[i] for i in taken[:len(taken) - num_dev]]
    dev = [train_pool[i] for i in taken[len(taken) - num_dev:]]
    if test_pool is None:  # no test file: hold out of the train file examples whose prompts train never sees
        seen = {task.prompt(example) for example in train + dev}
        rest = (train_pool[i] for i in order[len(taken):])
        test = list(itertools.islice((e for e in rest if task.prompt(e) not in seen), num_test))
        source += " (test held out of the train file)"
    else:
        test = [test_pool[i] for i in _permutation(len(test_pool), seed)[:num_test]]
    return Splits(train, dev, test, source)


def check_data(task: Task, *, protocol: str, seeds, data_dir: str | Path | None) -> None:
    """Checks, before any model loads, that the local data a run will read exists and that its labels
    are the task's candidates; raises a one-line :class:`TaskError` naming the fix.

    Without a data directory the data comes from the hub at run time, which cannot be checked here."""
    root = data_directory(data_dir)
    if root is None:
        if protocol == "kshot":
            raise TaskError(f"task {task.name}: k-shot splits are read from local files; set data_dir in the "
                            f"suite or {DATA_ENV} to a folder holding {task.kshot.get('dir', task.name)}/")
        return
    if not root.is_dir():
        raise TaskError(f"data_dir {root} is not a folder; point it at the folder that holds the tasks' data "
                        f"(e.g. ../shared/data), or remove it to load from the hub")
    if protocol == "kshot":
        if not task.kshot:
            raise TaskError(f"task {task.name} declares no k-shot files; use protocol mezo")
        pattern = task.kshot["dir"]
        present = sorted(int(folder.name.rsplit("-", 1)[-1]) for folder in root.glob(pattern.format(seed="*"))
                         if folder.name.rsplit("-", 1)[-1].isdigit())
        for seed in seeds:
            if not (root / pattern.format(seed=seed)).is_dir():
                raise TaskError(f"task {task.name}: no k-shot split for seed {seed} under {root}; the k-shot "
                                f"protocol's seeds pick LM-BFF's folders, which exist for seeds "
                                f"{', '.join(map(str, present)) or 'none (wrong data_dir?)'}: use those")
        blocks = [(task.kshot, seed) for seed in seeds]
    elif task.local:
        blocks = [(task.local, None)]
    else:
        return
    for declaration, seed in blocks:
        for split in ("train", "dev", "test"):
            if split not in declaration:
                continue
            path = root / declaration["dir"].format(seed=seed) / declaration[split]["file"]
            if not path.is_file():
                raise TaskError(f"task {task.name}: {path} does not exist; fix data_dir (or {DATA_ENV}), or remove "
                                "it to load the task from the hub")
            if task.candidates:
                _check_labels(task, path, declaration[split])


def _check_labels(task: Task, path: Path, entry: dict) -> None:
    rows = _normalise(task, read(path, entry["format"]), entry)
    unknown = sorted({str(row.get(task.label)) for row in rows} - set(task.candidates))
    if unknown:
        raise TaskError(f"task {task.name}: {path.name} has label values {unknown[:5]} that are not the "
                        f"candidates' keys {list(task.candidates)}; map them with label_map in the task's "
                        f"split declaration (e.g. label_map: {{{unknown[0]}: {list(task.candidates)[0]}}})")

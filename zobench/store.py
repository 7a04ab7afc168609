"""The results store: one directory per suite, one record per finished run, one log per run.

* ``runs/<key>.json`` — the run's record, written atomically (a temporary file, then a rename), so a
  crash leaves either the whole record or none of it;
* ``logs/<key>.jsonl`` — an append-only log of recorded steps, flushed line by line: a crash can
  truncate its last line but never corrupt earlier ones, and readers skip a truncated last line.

A run whose record exists is finished; rerunning a suite skips it.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
NAME_RULE = "1-100 letters, digits, '.', '_' or '-', starting with a letter or digit"


def unsafe_name(name) -> str | None:
    """Why ``name`` cannot name a file of the results (no separators, no ``..``, not empty); ``None`` if it can."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or ".." in name:
        return f"{name!r} cannot name a results folder or file; use {NAME_RULE} (no '..')"
    return None


def inside(root: str | Path, name: str) -> Path:
    """``root/name``, refused unless the name is safe and the path resolves inside ``root``."""
    reason = unsafe_name(name)
    if reason:
        raise ValueError(reason)
    path = Path(root) / name
    if path.resolve().parent != Path(root).resolve():
        raise ValueError(f"{name!r} resolves outside {root} (a link?); results stay inside --out")
    return path


class ResultStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.runs = self.root / "runs"
        self.logs = self.root / "logs"

    def has(self, key: str) -> bool:
        return (self.runs / f"{key}.json").is_file()

    def write_record(self, record: dict) -> Path:
        self.runs.mkdir(parents=True, exist_ok=True)
        target = self.runs / f"{record['key']}.json"
        with tempfile.NamedTemporaryFile("w", dir=self.runs, suffix=".tmp", delete=False) as handle:
            json.dump(record, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, target)
        return target

    def record(self, key: str) -> dict:
        return json.loads((self.runs / f"{key}.json").read_text())

    def records(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted(self.runs.glob("*.json"))]

    def keys(self) -> list[str]:
        return sorted(p.stem for p in self.runs.glob("*.json"))

    @contextmanager
    def log_writer(self, key: str, keep: list[dict] = ()):
        """Yields ``write(entry)`` appending to the log of ``key``, which first holds exactly ``keep``
        (the intact prefix of a resumed run, or nothing for a fresh start)."""
        self.logs.mkdir(parents=True, exist_ok=True)
        path = self.logs / f"{key}.jsonl"
        with tempfile.NamedTemporaryFile("w", dir=self.logs, suffix=".tmp", delete=False) as handle:
            handle.writelines(json.dumps(entry) + "\n" for entry in keep)
        os.replace(handle.name, path)
        with open(path, "a") as handle:
            def write(entry: dict) -> None:
                handle.write(json.dumps(entry) + "\n")
                handle.flush()
            yield write

    def read_log(self, key: str) -> list[dict]:
        entries = []
        path = self.logs / f"{key}.jsonl"
        if not path.is_file():
            return entries
        for line in path.read_text().splitlines():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut short by a crash; everything before it is intact
        return entries

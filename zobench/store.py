"""The results store: one directory per suite, one record per finished run, one log per run.

* ``runs/<key>.json`` — the run's record, written atomically (a temporary file, then a rename), so a
  crash leaves either the whole record or none of it;
* ``logs/<key>.jsonl`` — an append-only log of recorded steps, flushed line by line: a crash can
  truncate its last line but never corrupt earlier ones, and readers skip a truncated last line.

A run whose record exists and is sound is finished; rerunning a suite skips it.

Damage never stops a suite and never loses a file: a record that does not parse, is not an object,
lacks a field, or whose key is not its file's (nor the digest of its own spec), and a log that is not
JSON lines of objects (a cut last line apart), or that is missing beside its record, are named in one
line on stderr and moved to ``damaged/``; their run is then redone like any run without a record.

Claims: a run is run under an exclusive ``flock`` on ``claims/<key>.lock``, so two ``zobench run``
processes on one results folder share the work and never run one run twice; the kernel drops a
claim when its process dies, even by kill -9, so a claim never outlives its holder.

Nothing in a results folder may be a link: a link would let writes land outside ``--out``.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from .record import problem as record_problem

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
NAME_RULE = "1-100 letters, digits, '.', '_' or '-', starting with a letter or digit"
def unsafe_name(name) -> str | None:
    """Why ``name`` cannot name a file of the results (no separators, no ``..``, not empty); ``None`` if it can."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or ".." in name:
        return f"{name!r} cannot name a results folder or file; use {NAME_RULE} (no '..')"
    return None


def inside(root: str | Path, name: str) -> Path:
    """``root/name``, refused unless the name is safe, the path resolves inside ``root`` and nothing
    below it is a link."""
    reason = unsafe_name(name)
    if reason:
        raise ValueError(reason)
    path = Path(root) / name
    if path.resolve().parent != Path(root).resolve():
        raise ValueError(f"{name!r} resolves outside {root} (a link?); results stay inside --out")
    link = first_link(path)
    if link:
        raise ValueError(f"{link} is a link; results stay inside --out, so remove the link (or choose another --out)")
    return path


def first_link(folder: Path) -> Path | None:
    """The first link found at or below ``folder`` (links are not followed), or ``None``."""
    if folder.is_symlink():
        return folder
    for top, folders, files in os.walk(folder):
        for name in folders + files:
            if os.path.islink(os.path.join(top, name)):
                return Path(top, name)
    return None


def run_record_problem(record: dict, key: str) -> str | None:
    """Why ``record`` is not a sound run record stored as ``key``; ``None`` if it is."""
    shape = record_problem(record)
    if shape:
        return shape
    if record["key"] != key:
        return f"it holds run {record['key']}, not {key}"
    from .suite import RunSpec

    try:
        digest = RunSpec(**{name: value for name, value in record["spec"].items() if name != "key"}).key
    except (TypeError, ValueError) as error:
        return f"its spec does not make a run ({error})"
    if digest != key:
        return f"its spec is that of run {digest}, not {key}"
    return None


def _stamp(path: Path) -> tuple | None:
    """What changes when a file is written: its size and modification time."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return status.st_size, status.st_mtime_ns


def _warn(message: str) -> None:
    print(f"zobench: warning: {message}", file=sys.stderr, flush=True)


class ResultStore:
    """``check(record, key)`` says why a record is damaged (``None``: sound); runs' records by default.
    ``logged``: whether each record has a step log beside it (a memory study's records have none)."""

    def __init__(self, root: str | Path, check=run_record_problem, logged: bool = True):
        self.root = Path(root)
        self.runs = self.root / "runs"
        self.logs = self.root / "logs"
        self.check = check
        self.logged = logged
        self._sound: dict[str, tuple] = {}  # key -> ((record bytes, log stamp), record) checked sound

    def _record_path(self, key: str) -> Path:
        return self.runs / f"{key}.json"

    def _log_path(self, key: str) -> Path:
        return self.logs / f"{key}.jsonl"

    def set_aside(self, key: str, why: str) -> None:
        """Moves the run's record and log to ``damaged/`` (never deletes them) and says so in one line."""
        moved = []
        stamp = time.strftime("%Y%m%dT%H%M%S")
        for path in (self._record_path(key), self._log_path(key)):
            if path.exists():
                target = self.root / "damaged" / f"{path.name}.{stamp}.{os.getpid()}"
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
                moved.append(f"{path.relative_to(self.root)} -> {target.relative_to(self.root)}")
        _warn(f"{self.root}: run {key} is damaged ({why}); moved aside ({'; '.join(moved)}), its run will be redone")

    def record(self, key: str) -> dict | None:
        """The run's record, or ``None`` if there is none; a damaged one is set aside (``None``).
        A record is checked with its whole log once per process, and again only when either changes."""
        path = self._record_path(key)
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            return None
        version = (text, _stamp(self._log_path(key)) if self.logged else None)
        if self._sound.get(key, (None,))[0] == version:
            return self._sound[key][1]
        try:
            record = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError):
            why = f"runs/{key}.json: " + ("empty" if not text.strip() else "not JSON")
        else:
            why = self.check(record, key) if isinstance(record, dict) else "not a JSON object"
            why = why and f"runs/{key}.json: {why}"
            if why is None and self.logged:
                why = self._parse_log(key)[1]
            if why is None:
                self._sound[key] = (version, record)
                return record
        self.set_aside(key, why)
        return None

    def has(self, key: str) -> bool:
        return self.record(key) is not None

    def keys(self) -> list[str]:
        return [key for key in sorted(p.stem for p in self.runs.glob("*.json")) if self.has(key)]

    def records(self) -> list[dict]:
        return [record for record in map(self.record, sorted(p.stem for p in self.runs.glob("*.json"))) if record]

    def write_record(self, record: dict) -> Path:
        self.runs.mkdir(parents=True, exist_ok=True)
        target = self._record_path(record["key"])
        with tempfile.NamedTemporaryFile("w", dir=self.runs, suffix=".tmp", delete=False) as handle:
            json.dump(record, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, target)
        return target

    @contextmanager
    def claim(self, key: str, wait: bool = True):
        """Holds the run's claim for the ``with`` block; yields whether it was got (always, when
        waiting). Another process's claim is waited for, or with ``wait=False`` not got."""
        folder = self.root / "claims"
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"{key}.lock", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def log_writer(self, key: str, keep: list[dict] = ()):
        """Yields ``write(entry)`` appending to the log of ``key``, which first holds exactly ``keep``
        (the intact prefix of a resumed run, or nothing for a fresh start)."""
        self.logs.mkdir(parents=True, exist_ok=True)
        path = self._log_path(key)
        with tempfile.NamedTemporaryFile("w", dir=self.logs, suffix=".tmp", delete=False) as handle:
            handle.writelines(json.dumps(entry) + "\n" for entry in keep)
        os.replace(handle.name, path)
        with open(path, "a") as handle:
            def write(entry: dict) -> None:
                handle.write(json.dumps(entry) + "\n")
                handle.flush()
            yield write

    def _parse_log(self, key: str) -> tuple[list[dict], str | None]:
        """The log's intact entries (a last line cut short by a crash is dropped) and why it is
        damaged (a bad line before the last, a line that is not a step entry, no log at all)."""
        try:
            lines = self._log_path(key).read_bytes().splitlines()
        except FileNotFoundError:
            return [], "its step log is missing"
        entries = []
        for number, line in enumerate(lines, 1):
            try:
                entry = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                if number == len(lines):
                    break  # a line cut short by a crash; everything before it is intact
                entry = None
            if not isinstance(entry, dict) or not isinstance(entry.get("step"), int):
                return [], f"logs/{key}.jsonl: line {number} is not a step entry"
            entries.append(entry)
        return entries, None if entries else f"logs/{key}.jsonl: empty"

    def read_log(self, key: str) -> list[dict]:
        """The log's intact entries; a damaged log is set aside with its record (``[]``), and no log
        at all is ``[]``."""
        if not self._log_path(key).exists():
            return []
        entries, why = self._parse_log(key)
        if why:
            self.set_aside(key, why)
        return entries

"""Readers for the file formats task data comes in; each returns a list of example dicts.

Formats: ``glue_tsv`` (TSV with a header), ``lmbff_csv`` (LM-BFF CSV without header: label, sentence),
``label_tsv`` (``label<TAB>sentence`` without header, as SST-5's original files), ``jsonl``
(SuperGLUE and simplified NLI files: one JSON object per line) and ``dict_json`` (PowerfulPromptFT's
``{"0": {...}, "1": {...}}``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path


def _glue_tsv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [dict(row) for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)]


def _lmbff_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [{"label": label, "sentence": sentence} for label, sentence in csv.reader(handle)]


def _label_tsv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [dict(zip(("label", "sentence"), line.rstrip("\n").split("\t", 1))) for line in handle if line.strip()]


def _jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _dict_json(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return list(json.load(handle).values())


READERS = {"glue_tsv": _glue_tsv, "lmbff_csv": _lmbff_csv, "label_tsv": _label_tsv, "jsonl": _jsonl,
           "dict_json": _dict_json}


def read(path: Path, format: str) -> list[dict]:
    return READERS[format](path)

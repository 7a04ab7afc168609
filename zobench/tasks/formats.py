"""Readers for the file formats task data comes in; each returns a list of example dicts.

Formats: ``glue_tsv`` (TSV with a header), ``lmbff_csv`` (LM-BFF CSV without header: label, sentence),
``label_tsv`` (``label<TAB>sentence`` without header, as SST-5's original files), ``jsonl``
(SuperGLUE and simplified NLI files: one JSON object per line) and ``dict_json`` (PowerfulPromptFT's
``{"0": {...}, "1": {...}}``).

Nested files are flattened to one example per question, with the fields of the hub's version:
``multirc_jsonl`` (SuperGLUE MultiRC: one example per answer option, ``paragraph``, ``question``,
``answer``, ``label``), ``record_jsonl`` (SuperGLUE ReCoRD: ``passage``, ``query``, ``entities`` and
``answers`` as strings; entity spans are inclusive), ``squad_json`` (``title``, ``context``,
``question``, ``answers``) and ``drop_json`` (``passage``, ``question``, ``answers``: the number,
the spans, or the date as "month day year").
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


def _multirc_jsonl(path: Path) -> list[dict]:
    return [{"paragraph": line["passage"]["text"], "question": question["question"], "answer": answer["text"],
             "label": answer["label"]}
            for line in _jsonl(path) for question in line["passage"]["questions"] for answer in question["answers"]]


def _record_jsonl(path: Path) -> list[dict]:
    examples = []
    for line in _jsonl(path):
        text = line["passage"]["text"]
        entities = list(dict.fromkeys(text[e["start"]:e["end"] + 1] for e in line["passage"]["entities"]))
        for qa in line["qas"]:
            examples.append({"passage": text, "query": qa["query"], "entities": entities,
                             "answers": list(dict.fromkeys(a["text"] for a in qa["answers"]))})
    return examples


def _squad_json(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        articles = json.load(handle)["data"]
    return [{"title": article["title"], "context": paragraph["context"], "question": qa["question"],
             "answers": [a["text"] for a in qa["answers"]]}
            for article in articles for paragraph in article["paragraphs"] for qa in paragraph["qas"]]


def _drop_answer(answer: dict) -> list[str]:
    if answer.get("number"):
        return [answer["number"]]
    if answer.get("spans"):
        return list(answer["spans"])
    date = answer.get("date", {})
    return [" ".join(date[k] for k in ("month", "day", "year") if date.get(k))]


def _drop_json(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        passages = json.load(handle)
    return [{"passage": passage["passage"], "question": qa["question"], "answers": _drop_answer(qa["answer"])}
            for passage in passages.values() for qa in passage["qa_pairs"]]


READERS = {"glue_tsv": _glue_tsv, "lmbff_csv": _lmbff_csv, "label_tsv": _label_tsv, "jsonl": _jsonl,
           "dict_json": _dict_json, "multirc_jsonl": _multirc_jsonl, "record_jsonl": _record_jsonl,
           "squad_json": _squad_json, "drop_json": _drop_json}


def read(path: Path, format: str) -> list[dict]:
    return READERS[format](path)

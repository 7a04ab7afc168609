"""SQuAD's answer metrics: exact match and token F1 after SQuAD's normalisation, the best over gold answers.

Normalisation (as the official SQuAD v1.1 script): lower-case, drop punctuation, drop the articles
"a", "an", "the", collapse whitespace. F1 counts shared tokens with multiplicity.
"""

from __future__ import annotations

import re
import string
from collections import Counter

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalise(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _f1(prediction: str, gold: str) -> float:
    predicted, expected = normalise(prediction).split(), normalise(gold).split()
    shared = sum((Counter(predicted) & Counter(expected)).values())
    if not predicted or not expected:
        return float(predicted == expected)  # both empty is a match; one empty scores 0
    if shared == 0:
        return 0.0
    precision, recall = shared / len(predicted), shared / len(expected)
    return 2 * precision * recall / (precision + recall)


def f1(prediction: str, answers: list[str]) -> float:
    return max(_f1(prediction, gold) for gold in answers)


def exact_match(prediction: str, answers: list[str]) -> float:
    return max(float(normalise(prediction) == normalise(gold)) for gold in answers)

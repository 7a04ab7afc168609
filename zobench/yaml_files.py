"""Reading the YAML files users write (suites, task declarations, memory studies), safely.

``yaml.safe_load`` runs no code, but it still accepts what a declaration file should never hold, and
fails on some of it with a traceback rather than a message:

* a file that is too large, binary, UTF-16 or holds a NUL byte (``UnicodeDecodeError``);
* alias bombs ("billion laughs"): a few lines of anchors that expand to billions of nodes, which
  then hang whatever walks the document; we count the expanded nodes on the composed graph (each
  anchor counted once per use, memoised, so counting is fast) and refuse beyond :data:`MAX_NODES`;
* recursive aliases, and nesting deep enough to exhaust Python's stack;
* duplicate keys in a mapping, which YAML silently resolves to the last one;
* control characters in strings (from escapes such as ``"\\x01"``), which break tables and file names.

It also reads ``1e-5`` as the number it is (YAML 1.2 does; PyYAML's YAML 1.1 wants ``1.0e-5`` and
reads ``1e-5`` as a string, which a learning rate must not be).

Every refusal is a :class:`YamlFileError` whose message is one line naming the file and the fix.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import yaml

MAX_BYTES = 1 << 20  # 1 MiB: the largest shipped suite is under 10 KiB
MAX_NODES = 100_000  # scalars, lists and mappings after alias expansion


class YamlFileError(ValueError):
    """A YAML file that cannot be read as a declaration; the message is one line."""


class _StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses a key given twice in one mapping."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the base class reports it
                break
            if duplicate:
                raise YamlFileError(f"line {key_node.start_mark.line + 1}: key {key!r} is given twice in one "
                                    "mapping; keep one")
            seen.add(key)
        return super().construct_mapping(node, deep)


# YAML 1.2's float: an exponent needs no decimal point (``1e-5``, ``3E+2``)
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def _expanded_size(node, memo: dict, visiting: set) -> int:
    """Nodes of ``node`` with every alias expanded; raises on a recursive alias."""
    if id(node) in memo:
        return memo[id(node)]
    if id(node) in visiting:
        raise YamlFileError(f"line {node.start_mark.line + 1}: a recursive alias (an anchor used inside itself)")
    visiting.add(id(node))
    if isinstance(node, yaml.ScalarNode):
        size = 1
    elif isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, memo, visiting) for child in node.value)
    else:
        size = 1 + sum(_expanded_size(key, memo, visiting) + _expanded_size(value, memo, visiting)
                       for key, value in node.value)
    visiting.discard(id(node))
    memo[id(node)] = size
    if size > MAX_NODES:
        raise YamlFileError(f"expands to more than {MAX_NODES:,} values (an alias bomb, or a list far "
                            "larger than any experiment needs)")
    return size


def _control_characters(value, where: str = "") -> str | None:
    """The path of the first string holding a control character (newlines and tabs allowed)."""
    if isinstance(value, str):
        bad = next((c for c in value if unicodedata.category(c) == "Cc" and c not in "\n\t"), None)
        return f"{where or 'a value'} holds the control character {bad!r}" if bad is not None else None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((f"[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for key, child in items:
        path = f"{where}{key}" if str(key).startswith("[") else f"{where}.{key}" if where else str(key)
        found = _control_characters(key, where) if isinstance(key, str) else None
        found = found or _control_characters(child, path)
        if found:
            return found
    return None


def load_yaml(path: str | Path):
    """The document in ``path``, checked as the module docstring says; ``None`` for an empty file."""
    path = Path(path)
    where = path.name
    data = path.read_bytes()
    if len(data) > MAX_BYTES:
        raise YamlFileError(f"{where}: {len(data):,} bytes, more than the {MAX_BYTES:,} a declaration may have")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise YamlFileError(f"{where}: not UTF-8 text (a binary or UTF-16 file?); save it as UTF-8") from None
    if "\x00" in text:
        raise YamlFileError(f"{where}: holds a NUL byte; save it as plain UTF-8 text")
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, {}, set())
        document = loader.construct_document(node)
    except YamlFileError as error:
        raise YamlFileError(f"{where}: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise YamlFileError(f"{where}:{line} is not valid YAML ({getattr(error, 'problem', None) or error})") from None
    except RecursionError:
        raise YamlFileError(f"{where}: nested too deeply to be a declaration") from None
    finally:
        loader.dispose()
    found = _control_characters(document)
    if found:
        raise YamlFileError(f"{where}: {found}; remove it")
    return document

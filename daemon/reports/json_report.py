"""``duplicates.json``: exactly the original tool's shape, so existing scripts keep working.

``{"group-1": [path, ...], "group-2": [...]}``: the groups in the order they arrive
(biggest first), the paths of each group sorted, four-space indentation like the
original's ``json.dump(..., indent=4)``.

Reports are encoded a member at a time (``json_chunks``), so 100,000 groups are never
held as one document: only the bytes, and one group's lists at a time.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from json.encoder import encode_basestring  # the C encoder's, where CPython has it
from typing import Any

from dupe_scanner.groups import DuplicateGroup

FILE_NAME = "duplicates.json"
INDENT = "    "


def group_id(index: int) -> str:
    """The key of the ``index``-th group (0-based), shared by every report."""
    return f"group-{index + 1}"


def render_duplicates(groups: Sequence[DuplicateGroup]) -> bytes:
    return encode_json((group_id(index), sorted(group.paths)) for index, group in enumerate(groups))


def encode_json(document: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> bytes:
    """The whole report, built a chunk at a time (see ``json_chunks``)."""
    buffer = io.BytesIO()
    for chunk in json_chunks(document):
        buffer.write(chunk)
    return buffer.getvalue()


def json_chunks(document: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> Iterator[bytes]:
    """The bytes of ``json.dumps(document, indent=4)`` and a newline, a member at a time.

    ``document`` is a dict, or its members as (key, value) pairs from a generator. A
    value that is an iterator (a generator) is written as a list, an item at a time. The
    bytes are exactly those of encoding the whole document at once, because
    ``json.dumps`` indents a nested value the same wherever it sits, and newlines inside
    it are only ever indentation (a string's own newlines are escaped).

    UTF-8, non-ASCII kept readable. A path that is not valid UTF-8 reaches Python as lone
    surrogates (``\\udcff``); those are written as JSON ``\\udcff`` escapes, which every
    JSON reader accepts and Python turns back into the same path, instead of failing the
    whole report.
    """
    members = document.items() if isinstance(document, Mapping) else document
    opening = "{"
    for key, value in members:
        yield _utf8(f"{opening}\n{INDENT}{_dumps(key)}: ")
        yield from _value_chunks(value, level=1)
        opening = ","
    yield _utf8("{}\n" if opening == "{" else "\n}\n")


def _value_chunks(value: Any, level: int) -> Iterator[bytes]:
    if not isinstance(value, Iterator):
        yield _utf8(_dumps(value, level))
        return
    opening = "["
    for item in value:
        yield _utf8(f"{opening}\n{INDENT * (level + 1)}{_dumps(item, level + 1)}")
        opening = ","
    yield _utf8("[]" if opening == "[" else f"\n{INDENT * level}]")


def _dumps(value: Any, level: int = 0) -> str:
    """``value`` as it reads ``level`` levels deep in a four-space indented document.

    The standard library indents in pure Python, a generator step for every token: at
    100,000 groups that made ``duplicates.details.json`` seconds of every report run. This
    joins the same text from C-encoded strings; a value of any other kind goes to
    ``json.dumps`` (and its errors)."""
    if isinstance(value, str):
        return encode_basestring(value)
    if value is None or isinstance(value, bool):
        return "null" if value is None else "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float) and math.isfinite(value):
        return float.__repr__(value)
    inner = INDENT * (level + 1)
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        return "[\n" + ",\n".join(inner + _dumps(item, level + 1) for item in value) + "\n" + INDENT * level + "]"
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        if not value:
            return "{}"
        members = (f"{inner}{encode_basestring(key)}: {_dumps(item, level + 1)}" for key, item in value.items())
        return "{\n" + ",\n".join(members) + "\n" + INDENT * level + "}"
    text = json.dumps(value, ensure_ascii=False, indent=4, allow_nan=False)
    return text.replace("\n", "\n" + INDENT * level) if level else text


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", errors="backslashreplace")

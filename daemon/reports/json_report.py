"""``duplicates.json``: exactly the original tool's shape, so existing scripts keep working.

``{"group-1": [path, ...], "group-2": [...]}``: the groups in the order they arrive
(biggest first), the paths of each group sorted, four-space indentation like the
original's ``json.dump(..., indent=4)``.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from daemon.groups import DuplicateGroup

FILE_NAME = "duplicates.json"


def group_id(index: int) -> str:
    """The key of the ``index``-th group (0-based), shared by every report."""
    return f"group-{index + 1}"


def build_duplicates(groups: Sequence[DuplicateGroup]) -> dict[str, list[str]]:
    return {group_id(index): sorted(group.paths) for index, group in enumerate(groups)}


def render_duplicates(groups: Sequence[DuplicateGroup]) -> bytes:
    return encode_json(build_duplicates(groups))


def encode_json(document: Any) -> bytes:
    """UTF-8 JSON, four-space indented, non-ASCII kept readable, ending in a newline.

    A path that is not valid UTF-8 reaches Python as lone surrogates (``\\udcff``);
    those are written as JSON ``\\udcff`` escapes, which every JSON reader accepts and
    Python turns back into the same path, instead of failing the whole report.
    """
    text = json.dumps(document, ensure_ascii=False, indent=4, allow_nan=False)
    return (text + "\n").encode("utf-8", errors="backslashreplace")

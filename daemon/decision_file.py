"""The decisions file: how decisions travel from the review page (or a script) to the state.

Format (``version`` 1), UTF-8 JSON::

    {
        "format": "dupe-scanner decisions",
        "version": 1,
        "decisions": [
            {"kind": "not-duplicates",
             "files": [{"path": "/photos/a.jpg", "content_hash": "9f2c..."},
                       {"path": "/photos/b.jpg"}]},
            {"kind": "keep", "files": [{"content_hash": "77ab..."}]}
        ]
    }

Each file names a ``content_hash`` (as in ``duplicates.details.json``), a ``path`` of an
indexed file, or both; a hash wins, since it stays true after the file moves. A path
that is not valid UTF-8 is written as ``duplicates.json`` writes it, each such byte a
``\\udcXX`` escape (``"caf\\udce9.jpg"``), which ``json`` reads back as the name. ``keep``
names exactly one file, ``not-duplicates`` two or more different contents. A file with
any problem is refused whole, with every problem listed; importing it twice changes nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from dupe_scanner.decisions import DecidedContent, Decision
from dupe_scanner.errors import UsageError
from dupe_scanner.store import decisions as decision_store
from dupe_scanner.store import files as file_store
from dupe_scanner.store.schema import DECISION_KINDS, INDEXED, KEEP, NOT_DUPLICATES

FORMAT = "dupe-scanner decisions"
VERSION = 1
_HASH = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class FileRef:
    """A file as a decision names it: by content hash, by path, or both."""

    path: str | None
    content_hash: str | None


@dataclass(frozen=True)
class DecisionRequest:
    kind: str
    files: tuple[FileRef, ...]


class DecisionError(UsageError):
    """Decisions that cannot be recorded as given; ``problems`` lists every reason."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        super().__init__(f"{source}: nothing recorded:\n" + "\n".join(f"  {problem}" for problem in problems))


def read_file(path: Path) -> list[DecisionRequest]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{path}: cannot be read: {error}") from None
    except ValueError as error:
        raise UsageError(f"{path}: not valid JSON: {error}") from None
    return parse(document, str(path))


def parse(document: Any, source: str) -> list[DecisionRequest]:
    """The decisions in ``document``, or a ``DecisionError`` listing every problem."""
    problems: list[str] = []
    if not isinstance(document, dict):
        raise DecisionError(source, ["the file must hold a JSON object"])
    if document.get("format") != FORMAT:
        problems.append(f'format: must be "{FORMAT}"')
    if document.get("version") != VERSION:
        problems.append(f"version: must be {VERSION} (this dupe-scanner reads version {VERSION})")
    entries = document.get("decisions")
    if not isinstance(entries, list):
        raise DecisionError(source, [*problems, "decisions: must be a list"])
    requests = [_request(entry, f"decisions[{index}]", problems) for index, entry in enumerate(entries)]
    if problems:
        raise DecisionError(source, problems)
    return [request for request in requests if request is not None]


def _request(entry: Any, key: str, problems: list[str]) -> DecisionRequest | None:
    if not isinstance(entry, dict):
        problems.append(f"{key}: must be an object")
        return None
    kind = entry.get("kind")
    if kind not in DECISION_KINDS:
        problems.append(f"{key}.kind: must be one of {', '.join(DECISION_KINDS)}")
    files = entry.get("files")
    if not isinstance(files, list):
        problems.append(f"{key}.files: must be a list")
        return None
    refs = [_ref(item, f"{key}.files[{index}]", problems) for index, item in enumerate(files)]
    if kind == KEEP and len(files) != 1:
        problems.append(f"{key}.files: keep names exactly one file")
    if kind == NOT_DUPLICATES and len(files) < 2:
        problems.append(f"{key}.files: not-duplicates names two files or more")
    if not isinstance(kind, str) or kind not in DECISION_KINDS:
        return None  # its problem is listed above
    return DecisionRequest(kind, tuple(ref for ref in refs if ref is not None))


def _ref(item: Any, key: str, problems: list[str]) -> FileRef | None:
    if not isinstance(item, dict):
        problems.append(f"{key}: must be an object with a path or a content_hash")
        return None
    path, content_hash = item.get("path"), item.get("content_hash")
    if path is None and content_hash is None:
        problems.append(f"{key}: needs a path or a content_hash")
    if path is not None and (not isinstance(path, str) or not path.startswith("/")):
        problems.append(f"{key}.path: must be an absolute path")
    if content_hash is not None and (not isinstance(content_hash, str) or not _HASH.match(content_hash)):
        problems.append(f"{key}.content_hash: must be 64 lowercase hex digits (the SHA-256 of the file)")
    return FileRef(path, content_hash)


def document_for(requests: list[DecisionRequest]) -> dict[str, Any]:
    """The file's content for ``requests``: what the review page will export."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "decisions": [
            {"kind": r.kind, "files": [{k: v for k, v in vars(f).items() if v is not None} for f in r.files]}
            for r in requests
        ],
    }


def record(connection: Connection, requests: list[DecisionRequest], source: str, now: float) -> list[Decision]:
    """Resolve every request against the state and record it, all or none.

    Raises ``DecisionError`` listing every file that is not indexed or every decision
    that makes no sense (two names for identical bytes); then nothing is recorded.
    """
    problems: list[str] = []
    resolved = [(request, [_resolve(connection, ref, problems) for ref in request.files]) for request in requests]
    # Those with every file found (all of them, unless a problem was listed).
    complete = [(request, [c for c in contents if c is not None]) for request, contents in resolved if None not in contents]
    for request, contents in complete:
        hashes = {content.content_hash for content in contents}
        if request.kind == NOT_DUPLICATES and len(hashes) < len(contents):
            names = ", ".join(content.path for content in contents)
            problems.append(f"not-duplicates {names}: some of these files have identical bytes, so they are one picture")
    if problems:
        raise DecisionError(source, problems)
    return [decision_store.add(connection, request.kind, contents, now, source) for request, contents in complete]


def _resolve(connection: Connection, ref: FileRef, problems: list[str]) -> DecidedContent | None:
    if ref.content_hash is not None:
        return DecidedContent(ref.content_hash, ref.path or "")
    if ref.path is None:  # parse() and the command line name every file one way or the other
        problems.append("a file named by neither a path nor a content_hash")
        return None
    known = file_store.get_by_path(connection, ref.path)
    if known is None or known.state != INDEXED or known.content_hash is None:
        why = "not known to the state" if known is None else f"not indexed ({known.state})"
        problems.append(f"{ref.path}: {why}; run 'dupe-scanner index --dir FOLDER' on its folder first")
        return None
    return DecidedContent(known.content_hash, ref.path)

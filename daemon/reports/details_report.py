"""``duplicates.details.json``: everything behind each group, for people and scripts.

Shape (``schema`` 3)::

    {
        "schema": 3,
        "generated_at": "2024-05-01T12:00:00+00:00",   # when this content was first written
        "threshold": 0.6,
        "complete": true,                                # false: written while the scan compares
        "comparison": {"compared": 5000, "pictures": 100000},   # only when not complete
        "exact_score": 0.9,                              # pairs at or above are "exact"
        "counts": {"groups": 2, "files": 5, "pairs": 4, "exact_pairs": 3, "near_pairs": 1},
        "note": "...",
        "groups": [
            {
                "id": "group-1",                         # the key in duplicates.json
                "anchor": "/photos/a.jpg",               # every member matches the anchor
                "suggested_keep": "/photos/a.jpg",
                "keep_reason": "most pixels: 4000x3000 against 2000x1500",
                "decided": false,                        # a keep decision names a member
                "decisions": [{"id": 3, "kind": "not-duplicates", "made_at": "...",
                               "source": "command line", "content_hashes": ["...", "..."]}],
                "companions": [{"raw": "/photos/IMG_1.dng", "jpeg": "/photos/IMG_1.jpg"}],
                "members": [
                    {"path": ..., "size": 12345, "width": 4000, "height": 3000,
                     "format": "JPEG", "mtime": "2024-04-30T08:15:00+00:00",
                     "content_hash": "...", "suggested_keep": true,
                     "never_remove": true},               # kept, preferred folder, companion
                ],
                "pairs": [{"first": ..., "second": ..., "score": 0.9731, "kind": "exact"}],
            },
        ],
    }

Schema 2 added ``keep_reason``, ``decided``, ``decisions``, ``companions`` and each
member's ``never_remove``; everything in schema 1 is unchanged. Schema 3 added ``complete``
and ``comparison``: a first scan of a large library writes the reports between the parts of
its comparison (see ``partial``), from the pictures compared so far.

Groups in the order of ``duplicates.json``; members sorted by path; pairs sorted by
path; times in UTC. The same groups give the same bytes except ``generated_at``. The
suggestion to keep is only a suggestion: dupe-scanner never deletes or moves a file.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from dupe_scanner.decisions import Decision
from dupe_scanner.groups import EXACT_SCORE, DuplicateGroup, FileEntry, FilePair
from dupe_scanner.reports.json_report import encode_json, group_id
from dupe_scanner.reports.partial import PartialComparison

FILE_NAME = "duplicates.details.json"
SCHEMA_VERSION = 3
SCORE_DECIMALS = 4  # more is noise, and rounding keeps reruns byte-identical
NOTE = (
    "suggested_keep is a suggestion (your keep decisions, then the keep rules: preferred folders, preferred "
    "formats, most pixels, largest file, oldest); dupe-scanner never deletes files, and moves them only when "
    "you run 'dupe-scanner apply'"
)
# What may differ between two renderings of the same groups: a report that differs only
# there is current. The time is the second member, so it is always in the first bytes.
VOLATILE = re.compile(rb'\n    "generated_at": "[^"\n]*",\n')


def build_details(
    groups: Sequence[DuplicateGroup], threshold: float, generated_at: datetime, partial: PartialComparison | None = None
) -> dict[str, Any]:
    """The document; its ``groups`` a generator, so ``encode_json`` builds one group at a time."""
    pairs = sum(len(group.pairs) for group in groups)
    exact = sum(1 for group in groups for pair in group.pairs if pair.kind == "exact")
    progress = {} if partial is None else {"comparison": partial.as_json()}
    return {
        "schema": SCHEMA_VERSION,
        "generated_at": iso_time(generated_at),
        "threshold": threshold,
        "complete": partial is None,
        **progress,
        "exact_score": EXACT_SCORE,
        "counts": {
            "groups": len(groups),
            "files": sum(len(group.members) for group in groups),
            "pairs": pairs,
            "exact_pairs": exact,
            "near_pairs": pairs - exact,
        },
        "note": NOTE,
        "groups": (_group(index, group) for index, group in enumerate(groups)),
    }


def render_details(
    groups: Sequence[DuplicateGroup], threshold: float, generated_at: datetime, partial: PartialComparison | None = None
) -> bytes:
    return encode_json(build_details(groups, threshold, generated_at, partial))


def iso_time(moment: datetime) -> str:
    """ISO 8601 in UTC to the second; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def round_score(score: float) -> float:
    return round(float(score), SCORE_DECIMALS)


def _group(index: int, group: DuplicateGroup) -> dict[str, Any]:
    review = group.reviewed
    keep = review.keep.path
    return {
        "id": group_id(index),
        "anchor": group.anchor,
        "suggested_keep": keep,
        "keep_reason": review.keep.reason,
        "decided": review.decided,
        "decisions": [_decision(decision) for decision in review.decisions],
        "companions": [{"raw": raw, "jpeg": jpeg} for raw, jpeg in review.companions],
        "members": [
            {**_member(member, keep), "never_remove": member.path in review.protected}
            for member in sorted(group.members, key=lambda m: m.path)
        ],
        "pairs": [_pair(pair) for pair in sorted(group.pairs, key=lambda p: (p.first, p.second))],
    }


def _decision(decision: Decision) -> dict[str, Any]:
    return {
        "id": decision.id,
        "kind": decision.kind,
        "made_at": iso_time(datetime.fromtimestamp(decision.made_at, tz=UTC)),
        "source": decision.source,
        "content_hashes": sorted(decision.hashes),
    }


def _member(member: FileEntry, keep: str) -> dict[str, Any]:
    return {
        "path": member.path,
        "size": member.size,
        "width": member.width,
        "height": member.height,
        "format": member.format,
        "mtime": iso_time(datetime.fromtimestamp(member.mtime, tz=UTC)),
        "content_hash": member.content_hash,
        "suggested_keep": member.path == keep,
    }


def _pair(pair: FilePair) -> dict[str, Any]:
    return {"first": pair.first, "second": pair.second, "score": round_score(pair.score), "kind": pair.kind}

"""The review page's data: every group in a compact, index-based JSON document.

At 100,000 groups the page carries about 300,000 pictures, so names that repeat
(watched folders, formats, graph pages) are listed once and referred to by position,
and each picture is an array rather than an object. Pure: groups in, document out.

Shape::

    {
        "exact": 0.9,                    # scores at or above: exact duplicates
        "kinds": ["identical", ...],     # change_kind.KINDS; a member's kinds are bits
        "folders": ["/photos", ...],     # watched folders (or a file's own folder)
        "folders_shown": ["/photos", ...],
        "formats": ["JPEG", ...],
        "pages": ["duplicates.html", ...],
        "thumbs": "thumbnails/v1-224/",  # where the default thumbnail names live
        "groups": [
            [page, decided, keep, anchor, "keep reason", [member, ...]],
        ],
    }

``page``: 1 + the position in ``pages`` of the graph page showing the group, 0 if none
does; ``decided``: 1 if a keep decision names a member (the group is resolved);
``keep``, ``anchor``: positions in the member list. A member::

    [relative path, folder, size, width, height, format, mtime (s), score, kinds, hash, thumbnail, protected, shown]

``score``: against the anchor, times 10,000, -1 if never scored (the anchor itself);
``thumbnail``: 1 for ``thumbs + hash[:2] + "/" + hash + ".jpg"``, 0 for none (unreadable),
else the path itself; ``protected``: 1 if never to be removed whichever file is kept
(a preferred folder, a companion, another kept picture); ``shown``, only where it differs
from the relative path, is that path as people see it (``display.visible``: controls and
bidirectional marks as escapes); ``folders_shown`` likewise for the folders. The exact
names stay, for the decisions the page exports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import PurePosixPath
from typing import Any

from dupe_scanner.display import visible
from dupe_scanner.groups import EXACT_SCORE, DuplicateGroup, FileEntry
from dupe_scanner.reports.change_kind import KINDS, change_kinds, kinds_mask

SCORE_SCALE = 10_000

# Where a member's thumbnail is, relative to the page, or None if it has none.
ThumbnailUrl = Callable[[FileEntry], "str | None"]


def split_path(path: str, watched_folders: Sequence[str]) -> tuple[str, str]:
    """``(folder, relative path)``: the innermost watched folder holding ``path``, else its own folder."""
    return path_splitter(watched_folders)(path)


def path_splitter(watched_folders: Sequence[str]) -> Callable[[str], tuple[str, str]]:
    """``split_path`` for many paths: string prefixes, not ``pathlib`` (a third of a minute at 300,000).

    Paths come from the state: absolute and normalised, as the folders once normalised here.
    """
    folders = sorted({str(PurePosixPath(folder)) for folder in watched_folders}, key=len, reverse=True)
    prefixes = [(folder, folder.rstrip("/") + "/") for folder in folders]  # innermost first

    def split(path: str) -> tuple[str, str]:
        for folder, prefix in prefixes:
            if path.startswith(prefix) and len(path) > len(prefix):
                return folder, path[len(prefix) :]
        parent, _, name = path.rpartition("/")
        return parent or "/", name

    return split


def review_document(
    groups: Sequence[DuplicateGroup],
    graph_pages: Sequence[str],
    graph_page_of: Sequence[int],
    watched_folders: Sequence[str],
    thumbnails_prefix: str,
    thumbnail_url: ThumbnailUrl,
) -> dict[str, Any]:
    """The document for ``groups`` in report order.

    ``graph_page_of``: for each group, its page's position in ``graph_pages``, or -1.
    """
    folders: dict[str, int] = {}
    formats: dict[str, int] = {}

    def folder_index(folder: str) -> int:
        return folders.setdefault(folder, len(folders))

    def format_index(name: str) -> int:
        return formats.setdefault(name, len(formats))

    split = path_splitter(watched_folders)
    rows = []
    for group, page in zip(groups, graph_page_of, strict=True):
        review = group.reviewed
        members = _shown_order(group)
        scores = _scores_against_anchor(group)
        anchor = next(member for member in members if member.path == group.anchor)
        entries = []
        for member in members:
            folder, relative = split(member.path)
            score = scores.get(member.content_hash) if member.path != group.anchor else None
            kinds = 0 if member.path == group.anchor else kinds_mask(change_kinds(anchor, member, score))
            entries.append([
                relative,
                folder_index(folder),
                member.size,
                member.width,
                member.height,
                format_index(member.format),
                int(member.mtime),
                -1 if score is None else round(score * SCORE_SCALE),
                kinds,
                member.content_hash,
                _thumbnail_field(member, thumbnail_url(member), thumbnails_prefix),
                int(member.path in review.protected and member.path != review.keep.path),
                *_shown_if_other(relative),
            ])  # fmt: skip
        keep = next(index for index, member in enumerate(members) if member.path == review.keep.path)
        rows.append([page + 1, int(review.decided), keep, 0, review.keep.reason, entries])
    return {
        "exact": EXACT_SCORE,
        "kinds": list(KINDS),
        "folders": list(folders),
        "folders_shown": [visible(folder) for folder in folders],
        "formats": list(formats),
        "pages": list(graph_pages),
        "thumbs": thumbnails_prefix,
        "groups": rows,
    }


def default_thumbnail_path(prefix: str, content_hash: str) -> str:
    return f"{prefix}{content_hash[:2]}/{content_hash}.jpg"


def _shown_order(group: DuplicateGroup) -> list[FileEntry]:
    """The anchor first, then by path: as the graph page places them."""
    by_path = sorted(group.members, key=lambda member: member.path)
    return [m for m in by_path if m.path == group.anchor] + [m for m in by_path if m.path != group.anchor]


def _scores_against_anchor(group: DuplicateGroup) -> dict[str, float]:
    """Each content's score against the anchor.

    Keyed by content: a byte-identical copy of a member is paired only with that member's
    first path (``group_with_copies``), yet it scores what its content scores.
    """""
    hash_of = {member.path: member.content_hash for member in group.members}
    scores: dict[str, float] = {}
    for pair in group.pairs:
        if group.anchor in (pair.first, pair.second):
            other = pair.second if pair.first == group.anchor else pair.first
            digest = hash_of.get(other)
            if digest is not None:
                scores[digest] = max(scores.get(digest, 0.0), pair.score)
    anchor_hash = hash_of.get(group.anchor)
    if anchor_hash is not None:
        scores[anchor_hash] = 1.0  # a copy of the anchor's own bytes
    return scores


def _shown_if_other(relative: str) -> list[str]:
    """The name as people see it (``display.visible``), only where it differs: names stay exact for the export."""
    shown = visible(relative)
    return [shown] if shown != relative else []


def _thumbnail_field(member: FileEntry, url: str | None, prefix: str) -> int | str:
    if url is None:
        return 0
    return 1 if url == default_thumbnail_path(prefix, member.content_hash) else url

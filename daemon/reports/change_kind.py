"""What changed between a group's anchor and another member, as far as the stored facts tell.

The state keeps, per pair, only a score; per file its bytes' hash, size, dimensions and
format. No backend records the transform it found (a rotation, a crop, added text), so
only what follows from those facts is named, and everything else is ``similar``:

- ``identical``: the same bytes (same content hash);
- ``rotated``: the aspect ratio inverted (a quarter turn: width and height swapped, maybe
  scaled too), on a picture that is not square;
- ``resized``: other dimensions with the same aspect ratio;
- ``re-encoded``: another format, or the same dimensions scored as an exact duplicate
  (no visible change, yet other bytes: saved again);
- ``similar``: scored below exact (a visible change the backend cannot name: crop, text,
  colour, light), or no fact above applies.

Kinds combine (``resized`` and ``re-encoded``); ``similar`` may follow a fact, since a
resized copy with a caption is both. Never guessed: mirrored, cropped, text added and
colour changes need a transform the backend does not record.
"""

from __future__ import annotations

from dupe_scanner.groups import EXACT_SCORE, FileEntry

IDENTICAL = "identical"
ROTATED = "rotated"
RESIZED = "resized"
RE_ENCODED = "re-encoded"
SIMILAR = "similar"
KINDS = (IDENTICAL, ROTATED, RESIZED, RE_ENCODED, SIMILAR)  # the page's filter, in this order
ASPECT_TOLERANCE = 0.01  # rounding to whole pixels moves a resized copy's aspect by less


def change_kinds(anchor: FileEntry, member: FileEntry, score: float | None) -> tuple[str, ...]:
    """How ``member`` differs from ``anchor`` (``score``: their pair's, None if never scored)."""
    if member.content_hash and member.content_hash == anchor.content_hash:
        return (IDENTICAL,)
    kinds = []
    same_size = (member.width, member.height) == (anchor.width, anchor.height)
    if not same_size:
        if _same_aspect(anchor.width, anchor.height, member.width, member.height):
            kinds.append(RESIZED)
        elif _same_aspect(anchor.width, anchor.height, member.height, member.width):
            # A square-ish picture matched the line above: a turn is only claimed when visible.
            kinds.append(ROTATED)
            if (member.width, member.height) != (anchor.height, anchor.width):
                kinds.append(RESIZED)
    exact = score is not None and score >= EXACT_SCORE
    if member.format.upper() != anchor.format.upper() or (same_size and exact):
        kinds.append(RE_ENCODED)
    if not exact or not kinds:
        kinds.append(SIMILAR)
    return tuple(kinds)


def kinds_mask(kinds: tuple[str, ...]) -> int:
    """``kinds`` as bits in ``KINDS`` order: compact in the page's data."""
    return sum(1 << KINDS.index(kind) for kind in kinds)


def _same_aspect(width: int, height: int, other_width: int, other_height: int) -> bool:
    if min(width, height, other_width, other_height) <= 0:
        return False
    return abs(width / height - other_width / other_height) <= ASPECT_TOLERANCE * (width / height)

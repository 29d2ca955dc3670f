"""Reports written while a long comparison goes on.

A first scan of a large library compares for hours (about a day for a million pictures on
two cores), a part at a time (``scanning.COMPARISON_PART``). Between parts it writes the
reports from the pairs stored so far, so the groups found come to light as it goes; each
report then says so, and how far the comparison is.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PartialComparison:
    """How far the comparison was when the reports were written: ``compared`` of the state's
    ``pictures`` need no comparison any more (those of an earlier, stopped scan included)."""

    compared: int
    pictures: int

    def notice(self) -> str:
        return (
            f"The scan is still comparing: {self.compared:,} of the {self.pictures:,} pictures are compared, "
            "and these reports show what it found among them so far. Groups may still grow and new ones appear; the reports are "
            "written again as the scan goes on and when it ends."
        )

    def as_json(self) -> dict[str, int]:
        return {"compared": self.compared, "pictures": self.pictures}

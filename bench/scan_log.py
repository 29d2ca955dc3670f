"""What a scan's debug log says of its candidates: the benches that run the real command line read it."""

from __future__ import annotations

import re

# Logged by the embedded backend once for each part of a comparison (``scanning.COMPARISON_PART``
# pictures), and once for each round of it in which twins took verdicts (``analysis.twins``).
CANDIDATES = re.compile(r"(\d+) candidate pairs among \d+ contents")
TAKEN = re.compile(r"(\d+) of \d+ candidate pairs took their verdict from a twin")


def candidates_and_taken(log: str) -> tuple[int, int]:
    """The candidate pairs of every part of the comparison, and those of them that took a
    twin's verdict rather than being verified; candidates -1 when the log names none (a scan
    with nothing to compare, or not at the debug level)."""
    candidates = [int(count) for count in CANDIDATES.findall(log)]
    taken = sum(int(count) for count in TAKEN.findall(log))
    return (sum(candidates) if candidates else -1), taken

"""Drift between Flow and the state: which ids one side holds and the other does not.

Pure: a function of two listings, so ``status`` can report it and ``status --repair``
can act on it (delete ``unknown_to_state`` from Flow, re-queue ``missing_in_flow``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Drift:
    unknown_to_state: list[str]  # docs in Flow that no indexed content of the state accounts for
    missing_in_flow: list[str]  # contents the state counts as indexed that Flow does not hold

    @property
    def in_step(self) -> bool:
        return not self.unknown_to_state and not self.missing_in_flow

    def summary(self, examples: int = 3) -> str:
        """One line for ``status``."""
        if self.in_step:
            return "Flow and the state agree"
        parts = []
        for count, what, ids in (
            (len(self.unknown_to_state), "in Flow but unknown to the state", self.unknown_to_state),
            (len(self.missing_in_flow), "indexed in the state but missing in Flow", self.missing_in_flow),
        ):
            if count:
                shown = ", ".join(ids[:examples]) + (", ..." if count > examples else "")
                parts.append(f"{count:,} {what} ({shown})")
        return "; ".join(parts)


def compare(flow_ids: Iterable[str], state_hashes: Iterable[str]) -> Drift:
    """Both differences, each sorted, duplicates in either listing ignored."""
    in_flow = set(flow_ids)
    in_state = set(state_hashes)
    return Drift(unknown_to_state=sorted(in_flow - in_state), missing_in_flow=sorted(in_state - in_flow))

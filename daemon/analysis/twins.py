"""Twins: a picture with no visible change from an older one takes that one's verdicts.

A popular picture is saved many times over: at other sizes, in other formats and qualities,
and each of those is cropped, captioned and recoloured again. Every copy is a candidate of
every other, so a family of n copies costs n (n - 1) / 2 verifications: on the labelled set
(families of about 57 pictures) 71 % of a first scan's 148,729 pairs verified, and those took
more than half of its verification CPU (5 ms a pair, against 1.4 for the average pair in a
library of strangers).

A copy whose hash lies within ``candidates.ALIKE_BITS`` of an older picture's and that
verifies against it at ``TWIN_SCORE`` or more shows no visible change from it (a size, a
format, a recompression): it is that picture's *twin*. Its pair with a third picture then
reads as its twin's pair with that picture, and is not verified again, where the twin's pair
is verified in the same comparison. So a scan verifies each query's twin first (one pair a
picture, ``Candidates.twins``), then its other candidates, taking the twins' verdicts for
those their twins were asked too.

Chosen on the labelled set's tune split, replayed on the pairs a scan without twins stored
(each verified on its own): at 0.95, 886 contents have a twin, and 26,800 of their pairs
(45.8 %) could take a twin's verdict. It differs from the pair's own in 110 of them, against
138 at 0.9 and 99 at 0.98. Verdicts near the line are not taken (``UNSURE``): 17,718 pairs
are (30.3 %), 10 of them differing.

The twin's verdict is one asked in the same comparison, or one the state holds already
between two pictures compared before it (by an earlier part of the scan, or an earlier
scan: ``SettledVerdicts``). A library is compared ``scanning.COMPARISON_PART`` pictures at
a time, and a copy made or found long after its original is compared in another part or
another scan: without the state's verdicts, the larger the library, the fewer twins would
find their twin's verdicts.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence

import numpy as np

from dupe_scanner.values import ScoredPair

TWIN_SCORE = 0.95
# Verdicts a twin's pair is verified itself for, not taken. Grouping reads a pair below 0.5
# as far apart (``groups.KINSHIP``), one that only just verifies as a weak tie
# (``scanning.WEAK_TIE``, 0.65): there one pair can decide a membership, and the copy's own
# verdict may fall on the other side. In the library of 16,000 tiles a saturated copy took
# its original's 0.61 with a stranger, which its own verification had rejected, and the
# stranger joined their group. On the tune split, of the 26,800 pairs taken at 0.95, 110
# differed from their own verdicts with nothing verified itself, 94 with 0.5 to 0.65, 10
# with 0.3 to 0.65 (pairs the twin verified at 0.68 or more), which still takes 17,718.
UNSURE = (0.3, 0.65)


# The state's verdicts (whatever their score) on those of these pairs (first < second) whose
# two contents were compared before this comparison (``store.contents.compared_pairs``).
SettledVerdicts = Callable[[Collection[tuple[str, str]]], Iterable[ScoredPair]]


class TwinVerdicts:
    """Which pictures are twins of which, learnt from the twin pairs' verdicts, and the verdicts
    of the pairs their twins were asked, to take for theirs.

    One comparison's worth (a part of a scan, ``scanning.COMPARISON_PART`` pictures): pairs
    asked in earlier rounds of it count, and with ``settled`` the state's verdicts on pairs
    of two pictures compared before it.
    """

    def __init__(self, keys: Sequence[str], age: np.ndarray | None, twin_rows: np.ndarray, settled: SettledVerdicts | None = None):
        """``twin_rows``: (query, stored, orientation) of each query's twin candidate (``Candidates.twins``)."""
        self.keys, self.age, self.settled = keys, age, settled
        self.candidate_of = {_pair(keys[query], keys[stored]): (query, stored) for query, stored, _ in twin_rows.tolist()}
        self.twin_of: dict[int, int] = {}
        self.targets: set[str] = set()  # keys of the pictures some picture is a twin of
        self.planned: set[tuple[str, str]] = set(self.candidate_of)  # pairs verified or taken in this comparison
        self.scores: dict[tuple[str, str], float] = {}  # of planned pairs touching a target
        self.settled_scores: dict[tuple[str, str], float] = {}  # the state's verdicts this round's taken pairs need

    def learn(self, scored: ScoredPair) -> None:
        """Take note of one verdict: a twin pair's tells whether they are twins; a target's is kept."""
        pair = (scored.first, scored.second)
        rows = self.candidate_of.get(pair)
        if rows is not None and scored.score >= TWIN_SCORE:
            query, stored = rows
            self.twin_of[query] = stored
            self.targets.add(self.keys[stored])
        if rows is not None or scored.first in self.targets or scored.second in self.targets:
            # Every twin pair's: its picture may turn out a target after its verdict came.
            self.scores[pair] = scored.score

    def split(self, rows: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
        """The rows (query, stored, orientation) of one round to verify, and those to take from a
        twin: (query, stored, orientation, twin) where the query's twin was asked the same
        stored picture, in this round or before, or the state holds the twin's verdict on it
        (``settled``). Pairs already verified (the twin pairs) are in neither."""
        keys = self.keys
        verify: list[int] = []
        taken: list[tuple[int, int, int, int]] = []
        self.settled_scores = self._settled_scores(rows)
        # Oldest query first: a twin's own pair, whose query is older than both, is placed first.
        order = np.argsort(self.age[rows[:, 0]], kind="stable") if self.age is not None and len(rows) else np.arange(len(rows))
        for at in order.tolist():
            query, stored, orientation = (int(value) for value in rows[at])
            pair = _pair(keys[query], keys[stored])
            if pair in self.planned:
                continue
            self.planned.add(pair)
            twin = self.twin_of.get(query)
            if twin is not None and twin != stored and self._knows(_pair(keys[twin], keys[stored])):
                taken.append((query, stored, orientation, twin))
            else:
                verify.append(at)
        return rows[np.sort(np.array(verify, dtype=np.int64))], taken

    def _knows(self, twins_pair: tuple[str, str]) -> bool:
        """Whether the twin's verdict on this pair is asked in this comparison or held by the state."""
        return twins_pair in self.planned or twins_pair in self.settled_scores

    def _settled_scores(self, rows: np.ndarray) -> dict[tuple[str, str], float]:
        """The state's verdicts on the pairs (twin, stored) of these rows' queries that have a
        twin: only those, so a part of a million pictures' scan holds a round's worth at most."""
        if self.settled is None or not self.twin_of or not len(rows):
            return {}
        keys = self.keys
        wanted = {
            _pair(keys[twin], keys[stored])
            for query, stored in rows[:, :2].tolist()
            if (twin := self.twin_of.get(query)) is not None and twin != stored
        }
        wanted -= self.planned  # asked in this comparison: its verdict comes, or came, from it
        if not wanted:
            return {}
        return {(scored.first, scored.second): scored.score for scored in self.settled(sorted(wanted))}

    def resolve(self, taken: Iterable[tuple[int, int, int, int]]) -> tuple[list[ScoredPair], np.ndarray]:
        """The verdicts of ``split``'s taken pairs, their twins', in its order; and the rows
        (query, stored, orientation) to verify after all: those whose twin's verdict never came (a
        fingerprint found damaged) or is one grouping weighs closely (``UNSURE``)."""
        keys = self.keys
        verdicts: list[ScoredPair] = []
        left: list[tuple[int, int, int]] = []
        for query, stored, orientation, twin in taken:
            twins_pair = _pair(keys[twin], keys[stored])
            score = self.scores.get(twins_pair, self.settled_scores.get(twins_pair))
            if score is None or UNSURE[0] <= score < UNSURE[1]:
                left.append((query, stored, orientation))
                continue
            scored = ScoredPair.of(keys[query], keys[stored], score)
            self.learn(scored)
            verdicts.append(scored)
        return verdicts, np.array(left, dtype=np.int64).reshape(-1, 3)


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)

"""Which files form which duplicate groups: a pure function of the scored pairs.

The rule: a group has an *anchor*, every other member matches the anchor at or above the
threshold and agrees with the members already in: of those it was compared with, it
matches at least twice as many as it is far apart from (``DISSENT``); and once the group is
formed, at least as many of the whole group (``DISSENT_IN_GROUP``). Far apart means the
pair was compared and scored below ``kinship`` (0.5 by default: two edits of one photo
still resemble each other that much). So a chain A~B~C where A and C are far apart never
puts A and C in one group just because B sits between them, and a picture that matches the
anchor by mistake (another shot of a repeating pattern) stays out, since the rest of the
group disagrees; yet two crops of one photo at different offsets, which are far apart
from each other, both join their original, whose other copies they match.

Whether a pair that was never scored is far apart depends on the backend: one that
compares every pair (Flow) leaves out only pairs scoring below its floor, so they are
far apart; one that verifies only proposed candidates (embedded) never compared them,
and two edits of one photo (a crop and a captioned copy) are often not even proposed, so
they say nothing. Pairs it compared and rejected come with their low score.

Within each connected component the anchor is the file with the most matches (then the
highest summed score, then the smallest path, so the result is deterministic). Its
unassigned matches join its group strongest match first; then any member tied more
strongly to pictures outside the group than inside leaves it (``_settle``), and the rest
of the component is grouped again the same way. A tie weighs what its score stands above
``kinship``: a match that only just verifies (two look-alike nebulae at the floor, 0.61) is
weak evidence, a copy at 0.99 strong, so two weak ties no longer outweigh one strong one.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import networkx as nx

from dupe_scanner.keep import GroupReview, KeepChoice, choose_keep, review_group
from dupe_scanner.settings import KeepSettings

EXACT_SCORE = 0.9  # Flow's scale: at or above, no visible change
KINSHIP = 0.5  # below this, two images are far apart
DISSENT = 0.5  # a member may be far apart from at most this many members per member it matches
# ...of the members taken before it; of the whole group once formed, at most as many as it
# matches (``_agreeing``). Looser, as a group's later members are its anchor's weaker matches:
# crops and hue changes, far apart from each other. On the labelled set's tune split, the
# members the whole group disagrees with most are a hue change (matching 13 members, far
# apart from 7) and a crop of 40 % (27 and 14); another shot of a scene taken into a family
# of 48 matched 1 and was far apart from 13.
DISSENT_IN_GROUP = 1.0


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    mtime: float
    width: int
    height: int
    format: str
    content_hash: str

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True, order=True)
class FilePair:
    first: str  # path; first < second
    second: str
    score: float

    @property
    def kind(self) -> str:
        return "exact" if self.score >= EXACT_SCORE else "near"


@dataclass(frozen=True)
class DuplicateGroup:
    anchor: str
    members: tuple[FileEntry, ...]  # sorted by path
    pairs: tuple[FilePair, ...]  # every scored pair between members, sorted
    # What the keep rules and decisions make of the group; set by the scan (``reviewed``).
    review: GroupReview | None = field(default=None, compare=False)

    @property
    def paths(self) -> list[str]:
        return [member.path for member in self.members]

    @property
    def reviewed(self) -> GroupReview:
        """The review the scan set, or the keep rules' defaults with no decisions."""
        return self.review or review_group(self.members, KeepSettings())

    @property
    def suggested_keep(self) -> KeepChoice:
        return self.review.keep if self.review else choose_keep(self.members, KeepSettings())


def group_duplicates(
    entries: Iterable[FileEntry],
    pairs: Iterable[FilePair],
    threshold: float,
    kinship: float = KINSHIP,
    unscored_are_far: bool = True,
    forbidden: frozenset[frozenset[str]] = frozenset(),
) -> list[DuplicateGroup]:
    """Groups of files matching their group's anchor at ``threshold`` or above.

    ``pairs`` may include weaker pairs: they never make a match, but they tell members
    that are merely different (at least ``kinship``) from members that are far apart.
    ``unscored_are_far``: whether two files with no scored pair count as far apart (the
    backend compared every pair) or say nothing (it did not).
    ``forbidden``: pairs of paths a person declared not duplicates. They are far apart
    whatever their score, and never share a group.
    Biggest group first, then by first path; members sorted by path.
    """
    by_path = {entry.path: entry for entry in entries}
    scored = nx.Graph()
    for pair in pairs:
        if pair.first in by_path and pair.second in by_path and pair.first != pair.second:
            scored.add_edge(pair.first, pair.second, score=pair.score)
    for declared in forbidden:
        if len(declared) == 2 and declared <= by_path.keys():
            # A person's "not duplicates" outweighs any score, and holds where none was taken.
            scored.add_edge(*sorted(declared), score=0.0)
    matches = nx.Graph()
    matches.add_edges_from((a, b, data) for a, b, data in scored.edges(data=True) if data["score"] >= threshold)
    floor = min(kinship, threshold)

    far_partners: dict[str, set[str]] = {}
    for declared in forbidden:
        if len(declared) == 2 and declared <= by_path.keys():
            first, second = sorted(declared)
            far_partners.setdefault(first, set()).add(second)
            far_partners.setdefault(second, set()).add(first)

    def verdicts(candidate: str, members: set[str]) -> tuple[int, int]:
        """How many of ``members`` ``candidate`` matches, and how many it is far apart from:
        ``agreement`` over its scored pairs, so the cost is its pairs, not the group's size."""
        matched = far = compared = 0
        for other, data in scored[candidate].items():
            if other in members:
                compared += 1
                score = data["score"]
                matched += score >= threshold
                far += score < floor
        if unscored_are_far:
            far += len(members) - compared
        return matched, far

    groups: list[DuplicateGroup] = []
    for component in nx.connected_components(matches):
        if len(component) == 2:
            # A lone matching pair, most groups of a library: the rule below makes it one group
            # anchored on its smaller path (equal degree and score), built here at a tenth the cost.
            groups.append(_make_group(min(component), sorted(component), matches, by_path))
            continue
        remaining = nx.Graph()  # as matches.subgraph(component).copy(), without a filtered view's cost
        remaining.add_nodes_from(component)
        remaining.add_edges_from((node, other, data) for node in component for other, data in matches[node].items())
        anchors = _AnchorQueue(remaining)
        while remaining.number_of_edges():
            anchor = anchors.best()
            members = _settle(anchor, _gather(anchor, remaining, verdicts, far_partners), remaining, floor)
            if len(members) > 1:
                groups.append(_make_group(anchor, sorted(members), matches, by_path))
            anchors.removing(members)
            remaining.remove_nodes_from(members)
    groups.sort(key=lambda group: (-len(group.members), group.members[0].path))
    return groups


class _AnchorQueue:
    """The next anchor of ``graph``: the node of least ``_anchor_rank`` (most matches, then
    highest summed score, then smallest path), as ``graph`` loses nodes.

    A node's rank only grows as its neighbours go (fewer matches), so a heap of ranks as
    they were, each checked afresh when it comes up and pushed back if it grew, gives the
    least current rank without ranking every node at every round.
    """

    def __init__(self, graph: nx.Graph):
        self.graph = graph
        self.heap = [(_anchor_rank(graph, node), node) for node in graph.nodes]
        heapq.heapify(self.heap)
        self.gone: set[str] = set()

    def removing(self, nodes: Iterable[str]) -> None:
        self.gone.update(nodes)

    def best(self) -> str:
        while True:
            rank, node = self.heap[0]
            if node in self.gone:
                heapq.heappop(self.heap)
                continue
            now = _anchor_rank(self.graph, node)
            if now == rank:
                return node
            heapq.heapreplace(self.heap, (now, node))


def _gather(
    anchor: str, remaining: nx.Graph, verdicts: Callable[[str, set[str]], tuple[int, int]], far_partners: dict[str, set[str]]
) -> list[str]:
    """The anchor and those of its matches that agree with the members already taken.

    This is the only place a member joins a group, so checking ``far_partners`` (the pairs
    declared not duplicates) here keeps every such pair apart, whatever the threshold.
    """
    candidates = sorted(remaining.neighbors(anchor), key=lambda n: (-remaining[anchor][n]["score"], n))
    members = [anchor]
    taken = {anchor}
    for candidate in candidates:
        if not far_partners.get(candidate, set()).isdisjoint(taken):
            continue
        matched, far = verdicts(candidate, taken)
        if far <= DISSENT * matched:
            members.append(candidate)
            taken.add(candidate)
    return _agreeing(members, verdicts)


def _agreeing(members: list[str], verdicts: Callable[[str, set[str]], tuple[int, int]]) -> list[str]:
    """``members`` (the anchor first) without those the whole group disagrees with.

    A member is taken on the agreement of the members taken before it, and the anchor's
    matches are taken strongest first: one that matches the anchor as weakly as its copies
    do (a greyscale anchor, whose every match is at the floor) may come early, when the few
    members in were never compared with it, and stay while every later one is far apart
    from it (another shot of the scene, in a family of 48). So each is held to the rule
    against the whole group too; the one most in dissent leaves first, as its leaving
    changes the others' counts."""
    inside = set(members)
    while True:
        dissent = {}
        for member in members[1:]:
            if member in inside:
                matched, far = verdicts(member, inside - {member})
                if far > DISSENT_IN_GROUP * matched:
                    dissent[member] = far / max(matched, 1)
        if not dissent:
            return [member for member in members if member in inside]
        inside.remove(max(sorted(dissent), key=dissent.__getitem__))


def _settle(anchor: str, members: list[str], remaining: nx.Graph, floor: float) -> list[str]:
    """``members`` without those tied more strongly to pictures outside the group than inside.

    A picture that matches the anchor only weakly (an overlay the two share) while it
    matches its own edits, still ungrouped, strongly belongs with them: it leaves, and
    joins their group in a later round. Ties are weighed above ``floor`` (``_ties``): summed
    raw scores let two look-alikes at the floor (2 x 0.61) hold a picture away from its own
    copy at 0.99, which then stayed in no group at all. Each round looks again only at the
    members whose ties changed: the neighbours of those that left.
    """
    inside = set(members)
    doubtful = [member for member in members if member != anchor]
    while True:
        leaving = {
            member
            for member in doubtful
            if _ties(member, remaining, inside, floor, outside=True) > _ties(member, remaining, inside, floor, outside=False)
        }
        if not leaving:
            return [member for member in members if member in inside]
        inside -= leaving
        doubtful = sorted({other for member in leaving for other in remaining[member] if other in inside and other != anchor})


def _ties(node: str, graph: nx.Graph, group: set[str], floor: float, outside: bool) -> float:
    """The summed margins above ``floor`` of ``node``'s matches outside ``group`` (or inside, itself excluded)."""
    return math.fsum(data["score"] - floor for other, data in graph[node].items() if (other not in group) == outside)


def group_with_copies(
    entries: Iterable[FileEntry],
    content_pairs: Iterable[tuple[str, str, float]],
    threshold: float,
    kinship: float = KINSHIP,
    unscored_are_far: bool = True,
    forbidden_contents: frozenset[frozenset[str]] = frozenset(),
) -> list[DuplicateGroup]:
    """Groups of files, where ``content_pairs`` score contents (hashes of the bytes).

    ``forbidden_contents``: pairs of contents declared not duplicates; no group holds both.

    Byte-identical files are one picture: each content is grouped once, through its first
    path, and its other files join whatever group it is in (scored 1.0 with that first
    path), or form a group of their own. So n identical files cost n - 1 pairs, not
    n(n - 1) / 2, and every file of a content lands in the same group.
    """
    files_by_content: dict[str, list[FileEntry]] = {}
    for entry in entries:
        files_by_content.setdefault(entry.content_hash, []).append(entry)
    for same in files_by_content.values():
        same.sort(key=lambda entry: entry.path)
    first_path = {digest: same[0].path for digest, same in files_by_content.items()}
    picture_pairs = [
        FilePair(min(first_path[a], first_path[b]), max(first_path[a], first_path[b]), score)
        for a, b, score in content_pairs
        if a in first_path and b in first_path and a != b
    ]
    pictures = [same[0] for same in files_by_content.values()]
    forbidden = frozenset(
        frozenset(first_path[digest] for digest in pair)
        for pair in forbidden_contents
        if all(digest in first_path for digest in pair)
    )
    grouped = group_duplicates(pictures, picture_pairs, threshold, kinship, unscored_are_far, forbidden)
    in_groups = {path for group in grouped for path in group.paths}
    by_path = {same[0].path: same for same in files_by_content.values()}
    groups = [_with_copies(group, by_path) for group in grouped]
    groups += [_copies_only(same) for same in files_by_content.values() if len(same) > 1 and same[0].path not in in_groups]
    groups.sort(key=lambda group: (-len(group.members), group.members[0].path))
    return groups


def _with_copies(group: DuplicateGroup, by_path: dict[str, list[FileEntry]]) -> DuplicateGroup:
    members = sorted((entry for picture in group.members for entry in by_path[picture.path]), key=lambda e: e.path)
    copies = [_copy_pair(same[0], copy) for picture in group.members for same in [by_path[picture.path]] for copy in same[1:]]
    return DuplicateGroup(anchor=group.anchor, members=tuple(members), pairs=tuple(sorted([*group.pairs, *copies])))


def _copies_only(same: list[FileEntry]) -> DuplicateGroup:
    return DuplicateGroup(anchor=same[0].path, members=tuple(same), pairs=tuple(sorted(_copy_pair(same[0], c) for c in same[1:])))


def _copy_pair(first: FileEntry, copy: FileEntry) -> FilePair:
    return FilePair(min(first.path, copy.path), max(first.path, copy.path), 1.0)


def _anchor_rank(graph: nx.Graph, node: str) -> tuple:
    degree = graph.degree(node)
    total = math.fsum(data["score"] for data in graph[node].values())
    return (-degree, -total, node)


def _make_group(anchor: str, members: Sequence[str], graph: nx.Graph, by_path: dict[str, FileEntry]) -> DuplicateGroup:
    member_set = set(members)
    pairs = sorted(FilePair(a, b, data["score"]) for a in members for b, data in graph[a].items() if a < b and b in member_set)
    return DuplicateGroup(
        anchor=anchor,
        members=tuple(by_path[path] for path in members),
        pairs=tuple(pairs),
    )

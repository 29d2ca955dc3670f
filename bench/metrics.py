"""Pair precision and recall against the labels, per variation kind and strength."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass
class Result:
    tp: int = 0
    fp: int = 0
    positives: int = 0
    hard_negative_fp_near: int = 0
    hard_negative_fp_exact: int = 0
    hard_negatives: int = 0
    recall_by_kind: dict[str, tuple[int, int]] = field(default_factory=dict)
    recall_by_strength: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    false_positives: list[tuple[str, str, float]] = field(default_factory=list)
    misses: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / self.positives if self.positives else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def group_pairs(groups: Iterable[tuple[list[str], Iterable[tuple[str, str, float]]]], threshold: float) -> dict[tuple[str, str], float]:
    """The pairs a tool reports through its groups (each: its member names, and the scored
    pairs it lists): every two members of a group, at the score listed, else ``threshold``."""
    scored: dict[tuple[str, str], float] = {}
    for members, listed in groups:
        for at, first in enumerate(members):
            for second in members[at + 1 :]:
                scored[key(first, second)] = threshold
        for first, second, score in listed:
            scored[key(first, second)] = score
    return scored


CROP_KINDS = ("crop", "crop>25%")


def scored_negative(labels: dict, negative: dict) -> bool:
    """Whether a labelled hard negative is scored.

    Not scored: two other shots of one scene (two of them may show nearly the same frame),
    and an other shot against a *crop* of the original (the crop may lie wholly inside the
    other shot's frame too, and then it is, by the rule in dataset.py, a crop of that shot).
    """
    if negative["kind"] == "shot-vs-shot":
        return False
    return all(labels["images"][name].get("kind") not in CROP_KINDS for name in (negative["first"], negative["second"]))


def evaluate(labels: dict, scored: dict[tuple[str, str], float], threshold: float, split: str | None, exact: float = 0.9) -> Result:
    """``scored``: pair of image names (relative to the set's images/) -> score (higher = more alike).

    Images in ``labels["excluded"]`` (seeds with no detail at all) are left out of every pair.
    """
    excluded = set(labels.get("excluded", ()))
    images = {
        name: info
        for name, info in labels["images"].items()
        if (split is None or info["split"] == split) and info["family"].split("#")[0] not in excluded
    }
    positives = {key(p["first"], p["second"]): p for p in labels["positives"] if p["first"] in images and p["second"] in images}
    hard = {key(n["first"], n["second"]): n for n in labels["negatives"] if n["first"] in images and n["second"] in images}
    neutral = {pair for pair, n in hard.items() if not scored_negative(labels, n)}
    hard = {pair: n for pair, n in hard.items() if pair not in neutral}
    result = Result(positives=len(positives), hard_negatives=len(hard))
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    strengths: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for pair, label in positives.items():
        found = scored.get(pair, -1.0) >= threshold
        for bucket in (kinds[label["kind"]], strengths[(label["kind"], label["strength"])]):
            bucket[0] += found
            bucket[1] += 1
        if not found:
            result.misses.append((pair[0], pair[1], f"{label['kind']}/{label['strength']} score {scored.get(pair, 'none')}"))
    for pair, score in scored.items():
        if score < threshold or pair[0] not in images or pair[1] not in images:
            continue
        if pair in positives:
            result.tp += 1
            continue
        first, second = images[pair[0]], images[pair[1]]
        if pair in neutral or (first["family"] == second["family"] and pair not in hard):
            continue  # two variants of one original: not scored (see dataset.py)
        result.fp += 1
        result.false_positives.append((pair[0], pair[1], score))
        if pair in hard:
            result.hard_negative_fp_near += 1
            result.hard_negative_fp_exact += score >= exact
    result.recall_by_kind = {k: (v[0], v[1]) for k, v in sorted(kinds.items())}
    result.recall_by_strength = {k: (v[0], v[1]) for k, v in sorted(strengths.items())}
    return result


def best_threshold(labels: dict, scored: dict[tuple[str, str], float], candidates: Sequence[float], split: str) -> float:
    """The threshold with the best F1 on ``split`` (the tuning split: never the reported one)."""
    return max(candidates, key=lambda t: evaluate(labels, scored, t, split).f1)

"""Tiles of one photograph that show the same pixels: where bench/scale's labels do not hold.

bench/scale's libraries rest on one premise: two non-overlapping tiles of a photograph are two
different pictures. A wallpaper made of a repeating pattern (a mirrored painting, wood
strips, a grid of shapes) breaks it: two of its tiles can hold the same pixels, turned or
mirrored, and a tool that reports them as a pair is right. Such pairs are left out of the
scoring, for every tool alike.

The test is independent of every tool measured: on the photograph itself, at the tiles' own
scale (both are cut from it at one scale), the central three quarters of one tile (in each of
its eight quarter turns and mirrors) are searched for in the other with OpenCV's normalised
cross-correlation. The pixels are the same when the best match correlates at SAME_CORRELATION
or more *and* differs from the window it matched by at most SAME_DIFFERENCE grey levels on
average: correlation alone would call two smooth gradients of other colours the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

import cv2
import numpy as np

from bench.dataset import Seed
from bench.scale_library import load_photograph

SAME_CORRELATION = 0.9  # normalised cross-correlation of the best match (1 = the same up to light)
SAME_DIFFERENCE = 10.0  # mean absolute difference there, in levels of 255: the light too is the same
SEARCH_SIDE = 192  # pixels: both tiles are shrunk together until the larger fits (one scale for both)
TEMPLATE_SHARE = 0.75  # the template is this central share of each side, so a match may sit anywhere


class RepeatCheck:
    """``same_pixels(family, family)`` for the tile keys bench/scale_library.py labels pictures with."""

    def __init__(self, seeds: list[Seed]):
        self._paths = {seed.name: seed.path for seed in seeds}
        self._photograph = lru_cache(maxsize=4)(self._load)
        self._known: dict[tuple[str, str], bool] = {}

    def same_pixels(self, first: str, second: str) -> bool:
        """Whether two tiles (``seed@left,top,right,bottom``) of one photograph show the same pixels."""
        pair = (first, second) if first < second else (second, first)
        if pair not in self._known:
            self._known[pair] = self._compare(*pair)
        return self._known[pair]

    def _compare(self, first: str, second: str) -> bool:
        (seed, box_a), (other_seed, box_b) = _parse(first), _parse(second)
        if seed != other_seed or box_a == box_b or seed not in self._paths:
            return False
        photograph = self._photograph(seed)
        a, b = _shrunk_together(_cut(photograph, box_a), _cut(photograph, box_b))
        return any(
            correlation >= SAME_CORRELATION and difference <= SAME_DIFFERENCE
            for correlation, difference in (*_matches(a, b), *_matches(b, a))
        )

    def _load(self, seed: str) -> np.ndarray:
        return np.asarray(load_photograph(self._paths[seed]))


def _parse(family: str) -> tuple[str, tuple[int, ...]]:
    seed, _, box = family.partition("@")
    return seed, tuple(int(value) for value in box.split(",")) if box else ()


def _cut(photograph: np.ndarray, box: tuple[int, ...]) -> np.ndarray:
    left, top, right, bottom = box
    return photograph[top:bottom, left:right]


def _shrunk_together(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    factor = min(1.0, SEARCH_SIDE / max(*a.shape[:2], *b.shape[:2]))

    def shrink(tile: np.ndarray) -> np.ndarray:
        size = (max(8, round(tile.shape[1] * factor)), max(8, round(tile.shape[0] * factor)))
        return cv2.resize(tile, size, interpolation=cv2.INTER_AREA).astype(np.float32)

    return shrink(a), shrink(b)


def _matches(searched: np.ndarray, tile: np.ndarray) -> Iterator[tuple[float, float]]:
    """(correlation, mean difference) of the best place in ``searched`` for each turn of ``tile``'s centre."""
    for turned in _eight_ways(tile):
        height = int(min(turned.shape[0], searched.shape[0]) * TEMPLATE_SHARE)
        width = int(min(turned.shape[1], searched.shape[1]) * TEMPLATE_SHARE)
        if height < 8 or width < 8:
            continue
        top, left = (turned.shape[0] - height) // 2, (turned.shape[1] - width) // 2
        template = np.ascontiguousarray(turned[top : top + height, left : left + width])
        _, correlation, _, (x, y) = cv2.minMaxLoc(cv2.matchTemplate(searched, template, cv2.TM_CCOEFF_NORMED))
        yield float(correlation), float(np.abs(searched[y : y + height, x : x + width] - template).mean())


def _eight_ways(tile: np.ndarray) -> Iterator[np.ndarray]:
    for quarter_turns in range(4):
        turned = np.rot90(tile, quarter_turns)
        yield turned
        yield turned[:, ::-1]

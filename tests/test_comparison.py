"""The comparison's measures over an overlap, taken as masked sums (``comparison``)."""

from __future__ import annotations

import cv2
import numpy as np

from dupe_scanner.analysis.verify import comparison, verdict


def _ramp(height: int = 96, width: int = 120) -> np.ndarray:
    rows, cols = np.mgrid[0:height, 0:width]
    return (40 + 1.2 * cols + 0.5 * rows).astype(np.float32)


def _overlay_in_the_middle(shape: tuple[int, int]) -> np.ndarray:
    overlay = np.zeros(shape, bool)
    overlay[40:56, 48:72] = True
    return overlay


def test_grey_levels_that_follow_a_change_of_light_around_an_overlay_are_one_picture():
    picture = _ramp()
    darker = picture * 0.6 + 20
    everywhere = np.ones(picture.shape, bool)
    assert comparison._same_around(picture, darker, everywhere, _overlay_in_the_middle(picture.shape), cell=8)


def test_a_flat_grey_around_an_overlay_is_not_the_same_picture_as_one_with_detail_there():
    # The line fitting a flat grey to the detail is flat (a slope of nothing, not a light
    # change): the two are compared as they are, and differ.
    picture = _ramp()
    flat = np.full(picture.shape, 62.0, np.float32)
    everywhere = np.ones(picture.shape, bool)
    assert not comparison._same_around(picture, flat, everywhere, _overlay_in_the_middle(picture.shape), cell=8)


def test_the_layout_is_correlated_over_the_overlap_only():
    picture = _ramp()
    other = picture.copy()
    other[:, 60:] = 255 - other[:, 60:]  # the half outside the overlap disagrees
    inside = np.zeros(picture.shape, np.float32)
    inside[:, :60] = 1
    assert comparison._layout_correlation(picture, other, inside, int(inside.sum())) > 0.99
    everywhere = np.ones(picture.shape, np.float32)
    assert comparison._layout_correlation(picture, other, everywhere, int(everywhere.sum())) < 0.5


def test_cell_sums_are_the_sums_of_each_whole_cell():
    values = np.arange(20 * 27, dtype=np.float32).reshape(20, 27) % 7
    sums = comparison._cell_sums(values, rows=2, cols=3, cell=8)
    expected = values[:16, :24].reshape(2, 8, 3, 8).sum(axis=(1, 3))
    np.testing.assert_allclose(sums, expected, rtol=1e-6)


def test_textured_says_how_much_of_the_frame_holds_detail():
    rng = np.random.default_rng(5)
    detail = rng.uniform(0, 255, (128, 128)).astype(np.float32)
    small_subject = np.zeros((128, 128), np.float32)
    small_subject[48:80, 48:80] = detail[48:80, 48:80]  # detail in four of the 64 cells, and at their borders
    identity = np.array([[1, 0, 0], [0, 1, 0]], np.float32)
    levels = np.array([0, 255])

    def textured(picture: np.ndarray) -> float:
        overlapping = comparison.overlap(picture, picture, identity)
        assert overlapping is not None
        return comparison.structure(overlapping, levels, levels).textured

    assert textured(small_subject) < verdict.SMALL_SUBJECT
    assert textured(detail) > 0.9


def _stripes_of(colours: list[tuple[int, int, int]], side: int = 16) -> np.ndarray:
    """A colour thumbnail of vertical stripes, two pixels wide each, in ``colours`` in turn (float32, 0..1)."""
    picture = np.zeros((side, side, 3), np.float32)
    for column in range(side):
        picture[:, column] = np.array(colours[(column // 2) % len(colours)], np.float32) / 255
    return picture


def _conflicts(first: np.ndarray, second: np.ndarray) -> float | None:
    """``colour_conflicts`` of two colour thumbnails laid frame on frame, over grey views of 64 x 64."""
    views, identity = np.zeros((64, 64), np.float32), np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    overlapping = comparison.overlap(views, views, identity)
    assert overlapping is not None
    stretched = cv2.resize(first, (64, 64), interpolation=cv2.INTER_LINEAR)  # as relation.colour_views stretches A's
    return comparison.colour_conflicts(stretched, second, identity, overlapping, np.zeros((64, 64), bool))


RED, GREEN, BLUE, GREY = (200, 40, 40), (40, 160, 60), (40, 60, 200), (128, 128, 128)


def test_colours_mapped_one_to_one_do_not_conflict():
    assert _conflicts(_stripes_of([RED, GREEN, BLUE]), _stripes_of([GREEN, BLUE, RED])) == 0.0


def test_colours_mapped_many_to_one_do_not_conflict_either():
    # Greyscale: every colour turns into a grey. The grey picture's colours are not a
    # function of the colour one's, but the colour one's are of the grey one's.
    assert _conflicts(_stripes_of([RED, GREEN, BLUE]), _stripes_of([GREY])) == 0.0


def test_one_colour_turned_into_two_others_place_by_place_conflicts():
    # Red stripes alternate between green and blue in the other picture, and back again:
    # neither picture's colours follow from the other's.
    conflicts = _conflicts(_stripes_of([RED, GREEN, RED, BLUE]), _stripes_of([GREEN, RED, BLUE, RED]))
    assert conflicts is not None and conflicts > verdict.MAX_COLOUR_CONFLICTS

"""dwd_jax.accidentals: flats, naturals and sharps drawn from strokes, named by their shape."""

import numpy as np
from drawing import draw

from dwd_jax import classes as classes_lib
from dwd_jax.omr import accidentals, ink

FLAT, NATURAL, SHARP = classes_lib.model_labels(accidentals.FAMILIES[0])
KEY_FLAT, KEY_SHARP = classes_lib.model_labels(("keyFlat", "keySharp"))
# (y0, x0, y1, x1) of each drawn accidental, 16-px staff spaces (about 2.5-3 spaces tall).
BOXES = np.float32([[10, 20, 50, 31], [8, 60, 52, 72], [8, 100, 54, 114], [10, 140, 50, 152]])


def _page():
    rects = [
        (10.0, 20.0, 50.0, 22.5),  # Flat: a full stem on the left ...
        (8.0, 60.0, 40.0, 62.0),  # Natural: a left half-stem from the top,
        (20.0, 70.0, 52.0, 72.0),  # a right one to the bottom.
        (8.0, 102.0, 52.0, 104.0),  # Sharp: two full stems.
        (10.0, 110.0, 54.0, 112.0),
        (10.0, 140.0, 30.0, 142.0),  # A shape fitting no rule: two quarter-height strokes
        (30.0, 150.0, 50.0, 152.0),  # joined by a bar (a hand-drawn sharp's proportions).
        (28.0, 140.0, 32.0, 152.0),
    ]
    ellipses = [(42.0, 26.0, 8.0, 5.0)]  # ... and a bowl low on the right.
    beams = [
        (60.0, 72.0, 22.0, 20.0, 4.0),  # The natural's two bars.
        (60.0, 72.0, 34.0, 32.0, 4.0),
        (100.0, 114.0, 22.0, 19.0, 5.0),  # The sharp's.
        (100.0, 114.0, 36.0, 33.0, 5.0),
    ]
    return draw((64, 170), rects, ellipses, beams) < ink.INK_BELOW


def test_each_accidental_is_named_by_its_strokes():
    want = [accidentals.FLAT, accidentals.NATURAL, accidentals.SHARP, 0]
    np.testing.assert_array_equal(accidentals.shape(_page(), BOXES), want)
    # A box a little loose reads the same component; an empty one decides nothing.
    loose = BOXES + np.float32([-3, -3, 3, 3])
    np.testing.assert_array_equal(accidentals.shape(_page(), loose), want)
    np.testing.assert_array_equal(accidentals.shape(_page(), np.float32([[56, 0, 64, 10]])), [0])


def test_an_accidental_that_fell_apart_is_undecided():
    """A natural cut across its middle (a photograph's faded stroke): its larger piece, the
    upper half, holds about half its ink and reaches like a flat. Held to
    `ink.snap_symbols`' share of the box's ink, it is undecided."""
    page = _page()
    page[30:32, 56:76] = False
    np.testing.assert_array_equal(accidentals.shape(page, BOXES[1:2]), [accidentals.FLAT])
    np.testing.assert_array_equal(accidentals.shape(page, BOXES[1:2], 0.6), [0])
    np.testing.assert_array_equal(accidentals.shape(page, BOXES[1:2], 0.5), [accidentals.FLAT])
    want = [accidentals.FLAT, accidentals.NATURAL, accidentals.SHARP, 0]  # Whole: as without.
    np.testing.assert_array_equal(accidentals.shape(_page(), BOXES, 0.6), want)


def test_a_sharp_with_faded_stem_ends_is_not_a_natural():
    """A photographed sharp whose left stem lost its top and right stem its bottom (the right
    stem stands higher, as in most fonts) reaches about 0.8 of its height on each side, as a
    natural does; but a natural's right half-stem starts lower than its left, and this one's
    starts higher: undecided, so the network's class stands."""
    rects = [(16.0, 102.0, 52.0, 104.0), (8.0, 110.0, 44.0, 112.0)]  # 0.82 of 8..52 each.
    beams = [(100.0, 114.0, 22.0, 19.0, 5.0), (100.0, 114.0, 36.0, 33.0, 5.0)]
    page = draw((64, 170), rects, [], beams) < ink.INK_BELOW
    np.testing.assert_array_equal(accidentals.shape(page, BOXES[2:3]), [0])
    # Mirrored left to right it is offset as a natural is, and reads as one.
    np.testing.assert_array_equal(
        accidentals.shape(page[:, ::-1], np.float32([[8, 56, 54, 70]])), [accidentals.NATURAL]
    )


def test_renamed_accidentals_keep_the_better_of_two_detections():
    page = _page()
    # The flat detected twice (as a natural, then as a flat), the natural as a flat, the sharp
    # as a key's flat, the undecided shape as a natural: network classes and scores.
    boxes = np.concatenate([BOXES[:1], BOXES])
    classes = np.int32([NATURAL, FLAT, FLAT, KEY_FLAT, NATURAL])
    scores = np.float32([0.9, 0.6, 0.8, 0.7, 0.5])
    got_boxes, got_classes, got_scores = ink.name_accidentals(page, boxes, classes, scores)
    # The shape picks the class within the detection's family (a key's stays a key's).
    np.testing.assert_array_equal(got_classes, [FLAT, NATURAL, KEY_SHARP, NATURAL])
    np.testing.assert_array_equal(got_scores, scores[[0, 2, 3, 4]])
    np.testing.assert_array_equal(got_boxes[0], BOXES[0])  # The flat's own ink.


def test_a_confident_detection_keeps_the_networks_class():
    """Only detections scoring below `max_score` are renamed: the natural detected as a flat
    at 0.8 stays a flat, the sharp detected as a key's flat at 0.7 becomes a key's sharp."""
    classes = np.int32([FLAT, FLAT, KEY_FLAT, NATURAL])
    scores = np.float32([0.6, 0.8, 0.7, 0.5])
    _, got, _ = ink.name_accidentals(_page(), BOXES, classes, scores, max_score=0.75)
    np.testing.assert_array_equal(got, [FLAT, FLAT, KEY_SHARP, NATURAL])
    _, got, _ = ink.name_accidentals(_page(), BOXES, classes, scores, max_score=0.5)
    np.testing.assert_array_equal(got, classes)  # None below: the network's classes.

"""dwd_jax.dots through `ink.use_dots`: dots on a drawn staff named by their place."""

import numpy as np
import pytest
from drawing import draw

from configs import default
from dwd_jax import classes as classes_lib
from dwd_jax.omr import ink, staves

SPACE = 16.0
R = 3.2  # A dot's radius: 0.4 staff spaces across, as engraved.
AUG, ABOVE, BELOW, REPEAT = classes_lib.model_labels(
    ("augmentationDot", "articStaccatoAbove", "articStaccatoBelow", "repeatDot")
)
HEAD = classes_lib.label_of("noteheadBlackInSpace") + 1
FERMATA = classes_lib.label_of("fermataAbove") + 1
CLEF = classes_lib.label_of("clefG") + 1


def _page():
    """A staff (line centres 81, 97, 113, 129, 145) with heads, dots, a repeat barline, a
    fermata's dot; returns (page, heads {name: (cy, cx)}, dots {name: (cy, cx)})."""
    lines = [(80.0 + k * SPACE, 0.0, 82.0 + k * SPACE, 560.0) for k in range(5)]
    heads = {
        "dotted": (113.0, 60.0),  # On the middle line: its dot in the space above.
        "staccato below": (121.0, 140.0),
        "staccato above": (97.0, 220.0),
        "chord low": (121.0, 380.0),  # A dotted chord: dots where repeat dots would be,
        "chord high": (105.0, 380.0),  # but no barline.
        "fermata": (113.0, 460.0),
    }
    dots = {
        "dotted": (105.0, 76.0),
        "staccato below": (153.0, 140.0),
        "staccato above": (73.0, 220.0),
        "repeat high": (105.0, 318.0),
        "repeat low": (121.0, 318.0),
        "chord low": (121.0, 396.0),
        "chord high": (105.0, 396.0),
        "fermata": (60.0, 460.0),
        "stray": (30.0, 520.0),
    }
    barlines = [(81.0, 300.0, 145.0, 306.0), (81.0, 310.0, 145.0, 312.0)]
    ellipses = [(cy, cx, 6.0, 8.0) for cy, cx in heads.values()]
    ellipses += [(cy, cx, R, R) for cy, cx in dots.values()]
    return draw((180, 560), lines + barlines, ellipses), heads, dots


def _box(cy, cx, ry, rx):
    return [cy - ry, cx - rx, cy + ry, cx + rx]


def test_dots_are_named_by_their_place():
    page, heads, dots = _page()
    ink_mask = page < ink.INK_BELOW
    found = staves.find(ink_mask, SPACE)
    assert len(found.boxes) == 1
    head_scores = dict(zip(heads, [0.9, 0.8, 0.7, 0.6, 0.5, 0.95], strict=True))
    boxes = [_box(cy, cx, 6, 8) for cy, cx in heads.values()]
    classes = [HEAD] * len(heads)
    scores = list(head_scores.values())
    # The network: the dotted note's dot misnamed, the stray dot seen, a dot on bare paper,
    # the fermata, and a clef that is no dot at all.
    boxes += [
        _box(*dots["dotted"], 5, 5),
        _box(*dots["stray"], 4, 4),
        _box(40.0, 20.0, 4, 4),
        [50.0, 440.0, 70.0, 480.0],
        [82.0, 500.0, 140.0, 540.0],
    ]
    classes += [BELOW, AUG, AUG, FERMATA, CLEF]
    scores += [0.85, 0.4, 0.99, 0.9, 0.3]
    symbols = staves.erase_lines(ink_mask, found)
    out_boxes, out_classes, out_scores = ink.use_dots(
        symbols, ink_mask, found, np.float32(boxes), np.int32(classes), np.float32(scores), SPACE
    )
    others = len(heads) + 2  # Heads, the fermata and the clef come first, as they were.
    np.testing.assert_array_equal(out_classes[:others], [HEAD] * len(heads) + [FERMATA, CLEF])
    got = {}
    for box, label, score in zip(
        out_boxes[others:], out_classes[others:], out_scores[others:], strict=True
    ):
        centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        (key,) = [k for k, (cy, cx) in dots.items() if np.hypot(cy - centre[0], cx - centre[1]) < 1]
        # The box is the dot's own ink (anti-aliased edge pixels included).
        assert box[2] - box[0] == pytest.approx(2 * R, abs=1.5)
        got[key] = (int(label), float(score))
    unseen = ink._UNSEEN
    want = {
        "dotted": (AUG, 0.85),  # Its place names it; the network's score.
        "staccato below": (BELOW, unseen * head_scores["staccato below"]),
        "staccato above": (ABOVE, unseen * head_scores["staccato above"]),
        "repeat high": (REPEAT, unseen * found.scores[0]),
        "repeat low": (REPEAT, unseen * found.scores[0]),
        "chord low": (AUG, unseen * head_scores["chord low"]),
        "chord high": (AUG, unseen * head_scores["chord high"]),
        "stray": (AUG, 0.4),  # No place: the network's class and score.
    }  # The fermata's dot and the dot on bare paper are gone.
    assert got.keys() == want.keys()
    for key, (label, score) in want.items():
        assert got[key][0] == label, key
        assert got[key][1] == pytest.approx(score), key


def test_refine_names_dots_only_when_asked():
    page, heads, dots = _page()
    boxes = np.float32(
        [_box(cy, cx, 6, 8) for cy, cx in heads.values()] + [_box(*dots["dotted"], 5, 5)]
    )
    classes = np.int32([HEAD] * len(heads) + [BELOW])
    scores = np.float32([0.9] * len(heads) + [0.85])
    config = default.get_config()
    config.omr.update(ink.OFF)  # Every rule off but dots.
    got = ink.refine(page, (boxes, classes, scores), config.omr, staff_space=SPACE)
    np.testing.assert_array_equal(got[1], classes)
    config.omr.dots_from_ink = True
    _, got_classes, _ = ink.refine(page, (boxes, classes, scores), config.omr, staff_space=SPACE)
    # Eight dots with a place: with no fermata detected, the fermata's dot is a staccato; the
    # stray dot, unseen, is gone.
    np.testing.assert_array_equal(got_classes[: len(heads)], [HEAD] * len(heads))
    np.testing.assert_array_equal(
        np.sort(got_classes[len(heads) :]),
        np.sort([AUG] * 3 + [ABOVE] * 2 + [BELOW] + [REPEAT] * 2),
    )

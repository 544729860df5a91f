"""Dots found on the ink and named by where they stand, as notation names them.

One round glyph is four classes: a dot right of a note head or rest lengthens it
(`augmentationDot`); a dot on a head's column, over or under it, is a staccato
(`articStaccatoAbove` / `articStaccatoBelow`, named by its side of the head); two dots in a
staff's two middle spaces beside a barline are a repeat sign's (`repeatDot`). The class is the
dot's place, which the network reads poorly from a 320-px crop (it misses staccato dots under
their heads, and takes a pair of repeat dots for one, or one for the barline), though each dot
is plain on the ink. With the staff lines
erased (`staves.erase_lines`) a dot is a small round component of its own (`find`); `name`
reads its class from the detected note heads and rests, the staves and the barlines.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from dwd_jax import classes as classes_lib
from dwd_jax.omr import staves as staves_lib

DOT_CLASSES = ("augmentationDot", "articStaccatoAbove", "articStaccatoBelow", "repeatDot")
_HEADS = tuple(n for n in classes_lib.DEEPSCORES_CLASSES if n.startswith("notehead"))
_RESTS = tuple(n for n in classes_lib.DEEPSCORES_CLASSES if n.startswith("rest"))
_FERMATAS = tuple(n for n in classes_lib.DEEPSCORES_CLASSES if n.startswith("fermata"))
# A dot's sides, in staff spaces: engraved dots are 0.4 (0.62 x 0.44 for a hand-drawn font's
# staccato); a note head is at least 0.9 wide, a staff line 0.1 thick.
_SIZE = (0.25, 0.7)
_ROUND = 1.5  # Longer side over shorter at most.
_FILL = 0.6  # Ink share of its box at least (a disc fills 0.785, a slur's short piece less).
# An augmentation dot: right of its head or rest (at most this many spaces from its right
# edge: far enough for a double dot, short of the next note, whose staccato dots a longer
# reach would take), within this many spaces of its centre row (a head on a line has its dot
# in the space above).
_AUG_GAP, _AUG_ROW = 2.0, 0.75
# A staccato: its centre within a head's columns widened by this many spaces, and this many
# spaces from the head's centre row (past the head, up to beyond a stem's end).
_COLUMN_SLACK, _STACCATO_ROWS = 0.25, (0.5, 6.0)
# A dot both right of one head and on another's column is a staccato when it is that close
# to the column's head: this many spaces from its centre row and its centre column.
_STACCATO_NEAR = (1.5, 0.3)
# Repeat dots: centres half a space from the middle line (within this many spaces), mirrored
# across it at one column (this many spaces), a barline within this many spaces.
_REPEAT_ROW, _REPEAT_COLUMN, _BARLINE_REACH = 0.2, 0.3, 1.5


def find(symbols_mask: np.ndarray, staff_space: float) -> np.ndarray:
    """f32[D, 4] the dots' boxes `[y0, x0, y1, x1]`, page pixels: 8-connected components of
    `symbols_mask` (bool[H, W], the ink with its staff lines erased) that are small, round
    and filled."""
    components, _ = ndimage.label(symbols_mask, structure=np.ones((3, 3), bool))
    slices = ndimage.find_objects(components)
    if not slices:
        return np.zeros((0, 4), np.float32)
    boxes = np.float32([[r.start, c.start, r.stop, c.stop] for r, c in slices])
    area = np.bincount(components.ravel())[1:]
    height, width = (boxes[:, 2] - boxes[:, 0]), (boxes[:, 3] - boxes[:, 1])
    low, high = _SIZE[0] * staff_space, _SIZE[1] * staff_space
    dot = (
        (np.minimum(height, width) >= low)
        & (np.maximum(height, width) <= high)
        & (np.maximum(height, width) <= _ROUND * np.minimum(height, width))
        & (area >= _FILL * height * width)
    )
    return boxes[dot]


def name(
    dots: np.ndarray,
    ink_mask: np.ndarray,
    found: staves_lib.Staves,
    boxes: np.ndarray,
    classes: np.ndarray,
    scores: np.ndarray,
    staff_space: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Each dot's class from its place among the page's detections, staves and barlines.

    In order: two dots mirrored across a staff's middle line, half a space from it, with a
    barline (ink from the staff's top line to its bottom line in one column) within 1.5
    spaces, are repeat dots; a dot on a note head's column, 0.5-6 spaces from its centre row,
    is a staccato above or below it (unless it is also right of a head and that column's head
    is over 1.5 spaces away or off centre); a dot up to 3 spaces right of a head or rest,
    within 0.75 spaces of its centre row, is an augmentation dot. A dot inside a fermata's box
    is the fermata's, and unnamed, as is a dot with no such place.

    Args:
      dots: f32[D, 4] dot boxes (`find`).
      ink_mask: bool[H, W] the page's ink.
      found: the page's staves (`staves.find`).
      boxes: f32[N, 4] the page's detections; classes: i32[N] model classes; scores: f32[N].
      staff_space: the page's staff spacing in its pixels.

    Returns:
      (classes i32[D], scores f32[D]): a model class of `DOT_CLASSES`, or 0 where unnamed;
      the score of what named it (the head or rest, the staff).
    """
    aug, above, below, repeat = classes_lib.model_labels(DOT_CLASSES)
    named = np.zeros(len(dots), np.int32)
    context = np.zeros(len(dots), np.float32)
    if not len(dots):
        return named, context
    is_head = np.isin(classes, classes_lib.model_labels(_HEADS))
    is_rest = np.isin(classes, classes_lib.model_labels(_RESTS))
    fermatas = boxes[np.isin(classes, classes_lib.model_labels(_FERMATAS))]
    cy, cx = (dots[:, 0] + dots[:, 2]) / 2, (dots[:, 1] + dots[:, 3]) / 2
    staff, place = _staff_place(cy, cx, found)
    y0, x0, y1, x1 = boxes.T
    by, bx = (y0 + y1) / 2, (x0 + x1) / 2
    for i in range(len(dots)):
        inside = (
            (fermatas[:, 0] <= cy[i])
            & (cy[i] <= fermatas[:, 2])
            & (fermatas[:, 1] <= cx[i])
            & (cx[i] <= fermatas[:, 3])
        )
        if inside.any():
            continue
        rows = np.abs(by - cy[i]) / staff_space
        right_of = (
            (is_head | is_rest)
            & (x1 <= cx[i] + 0.1 * staff_space)
            & (cx[i] - x1 < _AUG_GAP * staff_space)
            & (rows <= _AUG_ROW)
        )
        slack = _COLUMN_SLACK * staff_space
        on_column = (
            is_head
            & (x0 - slack <= cx[i])
            & (cx[i] <= x1 + slack)
            & (rows > _STACCATO_ROWS[0])
            & (rows < _STACCATO_ROWS[1])
        )
        if staff[i] >= 0 and _repeat_pair(i, cx, place, staff, staff_space):
            if _barline_near(ink_mask, found, staff[i], cx[i], staff_space):
                named[i], context[i] = repeat, found.scores[staff[i]]
                continue
        if on_column.any():
            j = np.flatnonzero(on_column)[rows[on_column].argmin()]
            near = (
                rows[j] < _STACCATO_NEAR[0] and abs(bx[j] - cx[i]) < _STACCATO_NEAR[1] * staff_space
            )
            if near or not right_of.any():
                named[i] = above if cy[i] < by[j] else below
                context[i] = scores[j]
                continue
        if right_of.any():
            named[i], context[i] = aug, scores[right_of].max()
    return named, context


def _staff_place(
    cy: np.ndarray, cx: np.ndarray, found: staves_lib.Staves
) -> tuple[np.ndarray, np.ndarray]:
    """(i32[D] the staff between whose outer lines each point lies, or -1; f32[D] its place
    in that staff's spaces below the middle line, NaN off staves)."""
    staff = np.full(len(cy), -1, np.int32)
    place = np.full(len(cy), np.nan, np.float32)
    centres = staves_lib.centres_at(found, cx)  # [D, S, 5]: the lines at each point's column.
    for s in range(len(found.boxes)):
        top, middle, bottom = centres[:, s, 0], centres[:, s, 2], centres[:, s, -1]
        on = (cx >= found.boxes[s, 1]) & (cx < found.boxes[s, 3]) & (cy > top) & (cy < bottom)
        staff[on] = s
        place[on] = (cy[on] - middle[on]) / ((bottom[on] - top[on]) / 4)
    return staff, place


def _repeat_pair(
    i: int, cx: np.ndarray, place: np.ndarray, staff: np.ndarray, staff_space: float
) -> bool:
    """Whether dot i is half a space from its staff's middle line with a dot mirrored across
    it in the same column."""
    if not abs(abs(place[i]) - 0.5) < _REPEAT_ROW:
        return False
    mirrored = (
        (staff == staff[i])
        & (np.abs(cx - cx[i]) < _REPEAT_COLUMN * staff_space)
        & (np.abs(place + place[i]) < _REPEAT_ROW)
    )
    return bool(mirrored.any())


def _barline_near(
    ink_mask: np.ndarray, found: staves_lib.Staves, s: int, x: float, staff_space: float
) -> bool:
    """Whether a column within `_BARLINE_REACH` spaces of x is ink from the centre of staff
    s's top line to its bottom line's (the lines' anti-aliased edges may be paler)."""
    centres = staves_lib.centres_at(found, np.float32([x]))[0, s]
    top, bottom = int(centres[0]), int(np.ceil(centres[-1]))
    reach = _BARLINE_REACH * staff_space
    band = ink_mask[top:bottom, max(int(x - reach), 0) : int(np.ceil(x + reach))]
    return bool(band.all(axis=0).any())

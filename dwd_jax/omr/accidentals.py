"""Accidentals named by their shape on the ink: flat, natural or sharp, in a key signature
or before a note.

The three are told apart by how far their outer strokes reach, which the network reads
poorly (it calls flats naturals). On each accidental's own ink component with the staff lines
erased, the share of its height spanned by the ink in its left and right 30 % of columns is,
in the fonts we engrave: for a flat, all of it on the left (its stem) and a quarter to a half
on the right (its bowl); for a natural, about three quarters on each side (two offset
half-stems, the right one starting a fifth of the height lower); for a sharp, nearly all of
it on both sides, level. A sharp whose stems' ends fade (a photograph's, a coarse capture's)
can reach like a natural, but not offset like one. Petaluma's hand-drawn sharp (about
half on both sides) fits none of the rules below, and keeps the network's class.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# Flat, natural, sharp: beside a note, and in a key signature. A detection's shape picks the
# class of its own family (where it stands decides the family, which the network reads well).
FAMILIES = (
    ("accidentalFlat", "accidentalNatural", "accidentalSharp"),
    ("keyFlat", "keyNatural", "keySharp"),
)
# Every accidental class of every family.
CLASSES = tuple(name for family in FAMILIES for name in family)
FLAT, NATURAL, SHARP = 1, 2, 3
_SIDE = 0.3  # The share of the component's columns read as each side.
_STEM = 0.9  # A flat's left side spans at least this share of its height,
_BOWL = 0.5  # its right side less than this;
_HALF_STEMS = (0.6, 0.85)  # a natural's sides each span a share in this range,
# and its right side starts this share of its height lower than its left (naturals 0.18-0.33
# on the robustness set's validation pages, clean and degraded; sharps -0.42-0.11);
_OFFSET = 0.1
_FULL_STEMS = 0.85  # a sharp's sides each at least this.


def shape(symbols_mask: np.ndarray, boxes: np.ndarray, min_share: float = 0.0) -> np.ndarray:
    """i32[N] the shape of each box's accidental: `FLAT`, `NATURAL`, `SHARP`, or 0 where
    undecided.

    An accidental that fell apart (a photograph's faded stroke) is undecided: its largest
    piece, holding less than `min_share` of the box's ink (`ink.snap_symbols`' guard),
    reaches like another shape. (A piece small against the box is not refused as
    `snap_symbols` refuses it: a key's natural cut by the staff-line erasure still reads
    right from its larger half.)

    Args:
      symbols_mask: bool[H, W] the page's ink with its staff lines erased
        (`staves.erase_lines`), where an accidental is a component of its own.
      boxes: f32[N, 4] `[y0, x0, y1, x1]` page pixels, each over one accidental (its
        largest component inside the box is read).
      min_share: the least share of the box's ink the component must hold.
    """
    named = np.zeros(len(boxes), np.int32)
    height, width = symbols_mask.shape
    for i, (y0, x0, y1, x1) in enumerate(boxes):
        window = symbols_mask[
            max(int(round(y0)), 0) : min(int(round(y1)), height),
            max(int(round(x0)), 0) : min(int(round(x1)), width),
        ]
        components, count = ndimage.label(window, structure=np.ones((3, 3), bool))
        if not count:
            continue
        counts = np.bincount(components.ravel())[1:]
        if counts.max() < min_share * counts.sum():
            continue
        rows, cols = np.nonzero(components == counts.argmax() + 1)
        span = rows.max() - rows.min() + 1
        side = max(int(round(_SIDE * (cols.max() - cols.min() + 1))), 1)

        on_left, on_right = cols < cols.min() + side, cols > cols.max() - side

        def reach(on_side: np.ndarray, rows=rows, span=span) -> float:
            return (rows[on_side].max() - rows[on_side].min() + 1) / span

        left, right = reach(on_left), reach(on_right)
        lower = (rows[on_right].min() - rows[on_left].min()) / span
        if left >= _STEM and right < _BOWL:
            named[i] = FLAT
        elif all(_HALF_STEMS[0] <= r < _HALF_STEMS[1] for r in (left, right)) and lower >= _OFFSET:
            named[i] = NATURAL
        elif left >= _FULL_STEMS and right >= _FULL_STEMS:
            named[i] = SHARP
    return named

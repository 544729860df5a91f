"""C clefs named by the staff line they mark (classic OMR).

A C clef is one glyph whichever line it marks: the point between its two arcs sits on the
line that is middle C, and the glyph is symmetric about it, so its box's centre row is that
line. DeepScoresV2 names it by the line: `clefCTenor` on the second line from the top,
`clefCAlto` on any other (the alto's middle line, and the rarer soprano, mezzo-soprano and
baritone lines, which have no class of their own; both engravers of the embedded corpus label
them so). The network, reading a crop, gives a C clef either name at low scores, the wrong one
as often as not; the staves found on the ink give the line. Its decoded box can sit a third
of a staff space off the line, so the nearest line names it (re-measured on the ink first, as
a `config.omr.symbol_classes` member, it sits closer).
"""

from __future__ import annotations

import numpy as np

from dwd_jax import classes as classes_lib
from dwd_jax.omr import staves as staves_lib


def name_by_line(
    found: staves_lib.Staves, boxes: np.ndarray, classes: np.ndarray
) -> np.ndarray:
    """The classes with every C clef on a staff named by the staff line nearest its centre.

    A C-clef detection (`clefCAlto` or `clefCTenor`) whose centre lies within a staff's
    columns and within a staff space of its outer lines is named `clefCTenor` if the second
    line from the top is the nearest to its centre and `clefCAlto` otherwise; the others, and
    every detection where the ink shows no staff, keep the network's name. Boxes and scores are
    not changed: one clef named twice stays two detections (dropping the lower-scored one
    scored no higher on validation).

    Args:
      found: the page's staves (`staves.find`), on the page the boxes are in.
      boxes: f32[N, 4] `[y0, x0, y1, x1]`; classes: i32[N] model classes.

    Returns:
      i32[N] model classes.
    """
    alto, tenor = classes_lib.model_labels(("clefCAlto", "clefCTenor"))
    clef = np.flatnonzero((classes == alto) | (classes == tenor))
    if not len(clef) or not len(found.boxes):
        return classes
    cy = (boxes[clef, 0] + boxes[clef, 2]) / 2
    cx = (boxes[clef, 1] + boxes[clef, 3]) / 2
    lines = staves_lib.centres_at(found, cx)  # [K, S, 5]
    space = (lines[:, :, 4] - lines[:, :, 0]) / 4  # [K, S]
    on_staff = (
        (cx[:, None] >= found.boxes[:, 1])
        & (cx[:, None] <= found.boxes[:, 3])
        & (cy[:, None] >= lines[:, :, 0] - space)
        & (cy[:, None] <= lines[:, :, 4] + space)
    )
    staff = np.argmin(np.where(on_staff, np.abs(cy[:, None] - lines[:, :, 2]), np.inf), axis=1)
    k = np.arange(len(clef))
    nearest = np.argmin(np.abs(cy[:, None] - lines[k, staff]), axis=1)  # 0 = the top line.
    named = on_staff[k, staff]
    classes = classes.copy()
    classes[clef[named]] = np.where(nearest[named] == 1, tenor, alto)
    return classes

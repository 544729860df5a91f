"""C clefs named by the staff line they mark (classic OMR).

A C clef is one glyph whichever line it marks: the point between its two arcs sits on the
line that is middle C, and the glyph is symmetric about it. DeepScoresV2 names it by the line:
`clefCTenor` on the second line from the top, `clefCAlto` on any other (the alto's middle line,
and the rarer soprano, mezzo-soprano and baritone lines, which have no class of their own;
both engravers of the embedded corpus label them so). The network, reading a crop, gives a C
clef either name at low scores, the wrong one as often as not; the staves found on the ink
give the line. Its decoded box can sit half a staff space off the line (on the real
DeepScoresV2 page), so the line is read from the clef's thick bar on the ink, which spans the
glyph: the middle of the longest vertical ink run 3-5 staff spaces long in the box's columns
(a system's barline is longer, a stem shorter). A detection with no such run is no whole C
clef on the ink (a piece of one, or another symbol) and keeps the network's name.
"""

from __future__ import annotations

import numpy as np

from dwd_jax import classes as classes_lib
from dwd_jax.boxes import box_iou
from dwd_jax.omr import staves as staves_lib

# Two C-clef detections of one name overlapping by more than this are one clef.
DOUBLE_IOU = 0.5


def name_by_line(
    found: staves_lib.Staves,
    boxes: np.ndarray,
    classes: np.ndarray,
    ink_mask: np.ndarray | None = None,
) -> np.ndarray:
    """The classes with every C clef on a staff named by the staff line nearest its middle.

    A C-clef detection (`clefCAlto` or `clefCTenor`) whose middle (with `ink_mask`, its
    thick bar's, and a detection without one is left alone; else its box's centre) lies
    within a staff's columns and within a staff space of its outer lines is named
    `clefCTenor` if the second line from the top is the nearest to it and `clefCAlto`
    otherwise; the others, and every detection where the ink shows no staff, keep the
    network's name. Boxes and scores are not changed: a clef the network named twice is
    then two detections of one name, which `drop_doubles` makes one.

    Args:
      found: the page's staves (`staves.find`), on the page the boxes are in.
      boxes: f32[N, 4] `[y0, x0, y1, x1]`; classes: i32[N] model classes.
      ink_mask: bool[H, W] the page's ink with its staff lines (None: the boxes' centres).

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
    if ink_mask is not None:  # NaN where there is no bar: on no staff, so left alone.
        spacing = float(np.median(space))
        cy = np.array([_bar_middle(ink_mask, boxes[i], spacing) for i in clef])
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


def drop_doubles(
    boxes: np.ndarray, classes: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One detection per C clef: of C-clef detections of one name whose boxes overlap by more
    than `DOUBLE_IOU`, the highest-scored is kept.

    The network often gives one C clef both names (an alto and a tenor detection); once
    `name_by_line` names both by the line they are one clef twice, and the second is a false
    detection ranked with the true ones (on the larger copies of the robustness pages it put
    the tenor clef's AP@.5 below the network alone's, 0.65 against 0.73).

    Args:
      boxes: f32[N, 4] `[y0, x0, y1, x1]`; classes: i32[N] model classes; scores: f32[N].

    Returns:
      (boxes, classes, scores) without the dropped detections, in their order.
    """
    keep = np.ones(len(classes), bool)
    for label in classes_lib.model_labels(("clefCAlto", "clefCTenor")):
        same = np.flatnonzero(classes == label)
        order = same[np.argsort(-scores[same], kind="stable")]
        overlap = box_iou(boxes[order], boxes[order]) > DOUBLE_IOU
        for i, index in enumerate(order):
            if keep[index]:
                keep[order[i + 1 :][overlap[i, i + 1 :]]] = False
    return boxes[keep], classes[keep], scores[keep]


def _bar_middle(ink_mask: np.ndarray, box: np.ndarray, space: float) -> float:
    """The middle row of the longest vertical ink run 3-5 staff spaces long in the box's
    columns (a C clef's thick bar spans the glyph), searched a space beyond its rows; NaN if
    there is none."""
    h, w = ink_mask.shape
    r0, r1 = int(max(0, box[0] - space)), int(min(h, np.ceil(box[2] + space)))
    c0, c1 = int(max(0, box[1])), int(min(w, np.ceil(box[3])))
    if r1 <= r0 or c1 <= c0:
        return float("nan")
    sub = np.pad(ink_mask[r0:r1, c0:c1], ((1, 1), (0, 0)))
    edges = np.diff(sub.astype(np.int8), axis=0)
    best, middle = 0, float("nan")
    for col in range(sub.shape[1]):
        starts, ends = np.flatnonzero(edges[:, col] == 1), np.flatnonzero(edges[:, col] == -1)
        length = ends - starts
        ok = (length >= 3 * space) & (length <= 5 * space)
        if ok.any():
            k = np.argmax(np.where(ok, length, 0))
            if length[k] > best:
                best, middle = length[k], r0 + (starts[k] + ends[k]) / 2
    return float(middle)

"""Thin-line boxes re-measured on the page's ink (`config.decode.line_classes`).

A stem is about 2 px wide on a 2500-px page and a ledger line 2 px high: IoU 0.5 then needs
the thin side's centre within about 0.7 px, a sixth of the finest output stride (2 at scale
0.5 = 4 page pixels), which the centre offsets do not reach (on run D's model 63 % of matched
stems met IoU 0.5, 94 % with the true x centre; ledger lines 44 % and 86 % with the true y
centre). The page itself holds that precision: a rasteriser's anti-aliasing makes a column's
darkness its ink coverage, so summing a line's cross-profile gives its thickness and the
profile's mean its centre, to a fraction of a pixel. This is a post-processing step on the
page at its own resolution (after decoding, in page pixels), in numpy: pages differ in size,
and a jitted version would compile once per page size.

Only the thin side moves; the long side stays as decoded (giving stems their true height
lifted their share at IoU 0.5 by 3 points only).
"""

from __future__ import annotations

from collections.abc import Sequence

import ml_collections
import numpy as np

from dwd_jax import classes as classes_lib

# A line pixel must be dark along at least this share of the line's decoded length to count:
# the quantile 1 - share of each cross-position's darkness is its profile value. 0.75 keeps
# a ledger line's rows (dark along all of it) and drops the rows of the note head it crosses
# (dark along about 60 %), and a stem's column but not the note head at its end.
_ALONG_SHARE = 0.75
_STRONG = 0.5  # The line's core: profile at least this dark.
_FAINT = 0.05  # The line's extent: profile above this (anti-aliased edges).
_MARGIN = 3  # Search this many pixels beyond the decoded thickness on each side.


def line_labels(config: ml_collections.ConfigDict) -> np.ndarray:
    """i32[k] model classes named in `config.decode.line_classes` (KeyError on a bad name)."""
    return np.array(
        [classes_lib.label_of(name) + 1 for name in config.decode.line_classes], np.int32
    )


def snap_lines(
    page: np.ndarray, boxes: np.ndarray, classes: np.ndarray, line_classes: Sequence[int]
) -> np.ndarray:
    """Boxes of thin-line classes with their thin side re-measured on the page's ink.

    A box taller than wide is a vertical line (its columns are searched), otherwise a
    horizontal one (its rows). The cross-profile is read over the decoded length: each
    cross-position's darkness quantile that needs it dark along 75 % of the line. The line is
    the run of profile > 0.05 around the strong (>= 0.5) position nearest the decoded centre,
    within the decoded thickness plus 3 px on each side; its thickness is the run's summed
    darkness and its centre the midpoint of its edges, each read from its edge pixel's
    darkness (exact for a box-filtered rectangle). A box without such a run,
    or whose run reaches the search window's edge (something wider than a line), is kept.

    Args:
      page: u8[H, W] grey page, 0 = ink, at the boxes' resolution.
      boxes: f32[N, 4] `[y0, x0, y1, x1]` page pixels (pixel i covers [i, i + 1)).
      classes: i32[N] model classes.
      line_classes: model classes to re-measure.

    Returns:
      f32[N, 4], the other boxes unchanged.
    """
    dark = (255.0 - np.asarray(page, np.float32)) / 255.0
    out = np.array(boxes, np.float32, copy=True)
    for i in np.flatnonzero(np.isin(classes, np.asarray(line_classes))):
        y0, x0, y1, x1 = (float(v) for v in boxes[i])
        if y1 - y0 >= x1 - x0:  # Vertical: along = rows, across = columns.
            span = _snap_across(dark, (y0, x0, y1, x1))
            if span is not None:
                out[i, [1, 3]] = span
        else:
            span = _snap_across(dark.T, (x0, y0, x1, y1))
            if span is not None:
                out[i, [0, 2]] = span
    return out


def _snap_across(dark: np.ndarray, box: tuple[float, float, float, float]):
    """(start, end) of a vertical line's columns in `dark` (f32[H, W], 1 = ink) near `box`
    (y0, x0, y1, x1), or None where no line is found."""
    y0, x0, y1, x1 = box
    height, width = dark.shape
    r0, r1 = max(int(np.floor(y0)), 0), min(int(np.ceil(y1)), height)
    centre = (x0 + x1) / 2
    radius = int(np.ceil(x1 - x0)) + _MARGIN
    c0, c1 = max(int(np.floor(centre)) - radius, 0), min(int(np.floor(centre)) + radius + 1, width)
    if r1 <= r0 or c1 - c0 < 3:
        return None
    profile = np.quantile(dark[r0:r1, c0:c1], 1.0 - _ALONG_SHARE, axis=0)
    position = np.arange(c0, c1) + 0.5  # Pixel centres.
    strong = np.flatnonzero(profile >= _STRONG)
    if not len(strong):
        return None
    peak = strong[np.argmin(np.abs(position[strong] - centre))]
    faint = profile <= _FAINT
    before, after = np.flatnonzero(faint[:peak]), np.flatnonzero(faint[peak + 1 :])
    if not len(before) or not len(after):  # The run reaches the window's edge: not a line.
        return None
    left, right = before[-1], peak + 1 + after[0]
    # An edge pixel's coverage a puts the line's edge a pixel-width inside it: the run starts
    # at (its first pixel + 1 - a) and ends at (its last pixel + a). The two edges' midpoint is
    # the centre (a coverage-weighted mean of pixel centres is biased towards the fuller edge).
    first, last = left + 1, right - 1
    start = c0 + first + 1.0 - float(profile[first])
    end = c0 + last + float(profile[last])
    thickness = float(profile[first:right].sum())
    mid = (start + end) / 2
    return mid - thickness / 2, mid + thickness / 2

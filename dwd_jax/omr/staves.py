"""Staves found on the page's ink (classic OMR): the `staff` class, and staff-line removal.

A staff is five long, thin, evenly spaced horizontal lines. The network cannot box one: a
staff spans the page's width, many times the training crop (320 px at scale 0.5), so its box
size is never seen whole in training. The ink has the lines exactly, in numpy and in page
pixels, as `ink` does for thin lines and solids.

Method: horizontal ink runs of at least 4 staff spaces (longer than any note head or ledger
line) where the ink is at most 0.4 staff spaces thick (thinner than a beam) are staff-line
pixels. Their 8-connected pieces (a line is cut by every stem, note head and clef on it) join
into one line where their heights agree within a quarter space, however far apart; lines at
least 6 spaces long, five in a row one staff spacing apart (within 20 %) and spanning the
same x range (80 %), are a staff. A line's ends reach through the barlines that close it.
The staff's box is the union of its five lines, as DeepScores and our engraver box a staff.

A scan fed in skewed or a page photographed by a tilted camera has turned lines, converging
across the page (straight lines stay straight under perspective). Where the pieces' own
slopes, fitted as a slope that changes linearly down the page, drift by a quarter space or
more across it, heights are compared along that field (each piece's centre carried to the
page's middle column), and each joined line gets its own slope and centre, fitted through
its pixels (`Staves.tilts`). On a page whose lines are level nothing of this applies: its
lines are exactly those of the level method.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage

from dwd_jax import image as image_lib

_MIN_RUN = 4.0  # Staff spaces: shorter horizontal runs are symbols, not staff lines.
_MAX_THICK = 0.4  # Staff spaces: thicker vertical runs are beams or solids, not lines.
_MIN_LINE = 6.0  # Staff spaces: a shorter joined line is not a staff line.
_SPACING_TOLERANCE = 0.2  # A staff's line gaps are within 20 % of the page's staff space.
_LINES = 5
# Rows per column: a steeper piece is no staff line (a page turned by more than about 3
# degrees is beyond what `ink.refine` turns upright anyway).
_MAX_TILT = 0.09
# A staff's lines span the same x range (a line may lose an end under a clef); a long thin
# stroke above or below a staff (a beam's edge, a volta bracket) spans much less.
_OVERLAP = 0.8
# A line whose band meets ink right above and below in more than this share of its columns
# was not erased: its ink is thicker than measured (symbols cross a line in 5-20 % of its
# columns on the validation pages, clean or degraded; a noisy scan's unerased lines 50-80 %).
_ERASE_FAILED = 0.3


class Staves(NamedTuple):
    """A page's staves, top to bottom.

    Attributes:
      boxes: f32[S, 4] `[y0, x0, y1, x1]` page pixels (pixel i covers [i, i + 1)): the union
        of each staff's five lines.
      scores: f32[S] in (0, 1]: the mean share of the staff's width its five lines cover.
      lines: f32[S, 5, 4] each staff's line boxes, top line first: a line's extent, its
        thickness plus its drift along it where it is not level.
      tilts: f32[S, 5] each line's slope, rows per column (0 where the line is level): its
        centre row at column x is its box's middle row + tilt * (x - its middle column).
    """

    boxes: np.ndarray
    scores: np.ndarray
    lines: np.ndarray
    tilts: np.ndarray


def centres_at(found: Staves, x: np.ndarray) -> np.ndarray:
    """f32[N, S, 5]: each staff line's centre row at each column x (f32[N], page pixels)."""
    lines = found.lines
    middle_y = (lines[:, :, 0] + lines[:, :, 2]) / 2
    middle_x = (lines[:, :, 1] + lines[:, :, 3]) / 2
    x = np.asarray(x, np.float32).reshape(-1, 1, 1)
    return (middle_y + found.tilts * (x - middle_x)).astype(np.float32)


def thicknesses(found: Staves) -> np.ndarray:
    """f32[S, 5]: each staff line's thickness in rows (its box's height less its drift)."""
    lines = found.lines
    drift = np.abs(found.tilts) * (lines[:, :, 3] - lines[:, :, 1])
    return (lines[:, :, 2] - lines[:, :, 0] - drift).astype(np.float32)


def find(ink_mask: np.ndarray, staff_space: float) -> Staves:
    """The page's five-line staves.

    Args:
      ink_mask: bool[H, W] the page's ink (`page < ink.INK_BELOW`).
      staff_space: the page's staff spacing in its pixels (`detect.estimate_staff_space`).

    Returns:
      `Staves`, S >= 0.
    """
    lines = _lines(np.asarray(ink_mask, bool), staff_space)
    groups = []
    used = np.zeros(len(lines), bool)
    for i in range(len(lines)):
        if used[i]:
            continue
        chain = [i]
        while len(chain) < _LINES:
            nxt = _next_line(lines, chain[-1], staff_space, used)
            if nxt is None:
                break
            chain.append(nxt)
        if len(chain) == _LINES:
            used[chain] = True
            groups.append(lines[chain])
    if not groups:
        return Staves(
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.float32),
            np.zeros((0, 5, 4), np.float32),
            np.zeros((0, 5), np.float32),
        )
    group = np.stack(groups)  # [S, 5, 6]
    boxes = np.stack(
        [group[:, 0, 0], group[:, :, 1].min(1), group[:, -1, 2], group[:, :, 3].max(1)], axis=1
    )
    scores = group[:, :, 4].sum(1) / (_LINES * (boxes[:, 3] - boxes[:, 1]))
    return Staves(
        boxes.astype(np.float32),
        scores.astype(np.float32),
        group[..., :4].astype(np.float32),
        group[..., 5].astype(np.float32),
    )


def erase_lines(ink_mask: np.ndarray, staves: Staves) -> np.ndarray:
    """bool[H, W] `ink_mask` without its staff lines, except where a symbol crosses them.

    A line pixel stays where ink right above the line meets ink right below it across the
    pixel's column (or diagonally, one column aside): a note head or a sharp on a line, a
    slur across one. Everything else of the line goes, so a symbol that only touches a line
    (a whole note in a space, a rest on a line) comes away from it with its own box (classic
    staff removal). A line that this leaves in more than `_ERASE_FAILED` of its columns (a
    noisy scan's ragged rows, thicker on the ink than the finder measured) is erased up to a
    row thicker, except in columns where its run is longer.

    Args:
      ink_mask: bool[H, W] the page's ink.
      staves: `find`'s result on it.

    Returns:
      bool[H, W].
    """
    out = np.array(ink_mask, bool, copy=True)
    thick = thicknesses(staves).reshape(-1)
    for (y0, x0, y1, x1), tilt, t in zip(
        staves.lines.reshape(-1, 4), staves.tilts.reshape(-1), thick, strict=True
    ):
        cols = np.arange(int(x0), int(x1))
        centre = (y0 + y1) / 2 + tilt * (cols + 0.5 - (x0 + x1) / 2)
        band = _band(out, centre, cols, t)
        # A noisy scan's ragged line is thicker on the ink than the finder's whole rows, so
        # ink right above and below the band meets in many columns and the line stays: it is
        # then erased as thick as its median run, by a row at most (a warped line's runs, off
        # its fitted centre, are a symbol's), and kept where its run is longer (a symbol on
        # it, which the wider band would cut). A line mostly erased keeps the finder's band:
        # a wider one cuts thin strokes on it (a flat's bowl on a coarse capture).
        if len(band[0]) and band[3].mean() > _ERASE_FAILED:
            runs = _runs(out, centre, cols, t)
            inked = runs[runs > 0]
            wider = min(max(t, float(np.median(inked)) if len(inked) else 0.0), t + 1)
            if wider > t:
                band = _band(out, centre, cols, wider, runs)
        cols, top, bottom, keep = band
        for k in range(int((bottom - top).max()) if len(cols) else 0):
            on = top + k < bottom
            out[top[on] + k, cols[on]] &= keep[on]
    return out


def _band(
    mask: np.ndarray,
    centre: np.ndarray,
    cols: np.ndarray,
    thickness: float,
    runs: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A line's band on `mask`: (cols, top rows, rows past the bottom, keep), i64[C'] each
    and bool[C'], for the columns (of i64[C], centres f32[C]) whose band lies inside the
    page (nothing crosses a line on the page's edge); keep where ink right above and below
    the band meets (`_crossed`), or where `runs` (f32[C], `_runs`) is longer than the band
    by more than a row."""
    top, bottom = _rows(centre, thickness)
    inside = (top >= 1) & (bottom < mask.shape[0])
    cols, top, bottom = cols[inside], top[inside], bottom[inside]
    keep = _crossed(mask[top - 1, cols], mask[bottom, cols])
    if runs is not None:
        keep |= runs[inside] > thickness + 1
    return cols, top, bottom, keep


def _runs(mask: np.ndarray, centre: np.ndarray, cols: np.ndarray, thickness: float) -> np.ndarray:
    """f32[C]: the length of `mask`'s vertical ink run through a line's centre row at each
    column (centres f32[C] at columns i64[C]; 0 where the centre is not ink), read up to
    twice `thickness` + 2 rows each way."""
    height = mask.shape[0]
    rows = np.clip(np.floor(centre).astype(np.int64), 0, height - 1)
    on = mask[rows, cols]
    length = on.astype(np.float32)
    for step in (-1, 1):
        going = on.copy()
        for k in range(1, int(2 * thickness) + 3):
            r = rows + step * k
            going &= (r >= 0) & (r < height) & mask[np.clip(r, 0, height - 1), cols]
            length += going
    return length


def _crossed(above: np.ndarray, below: np.ndarray) -> np.ndarray:
    """bool[W]: columns where ink right above and right below a line meet across it, straight
    down or one column aside (a slanted stroke)."""
    out = above & below
    out[1:-1] |= (above[:-2] & below[2:]) | (above[2:] & below[:-2])
    return out


def _next_line(lines: np.ndarray, i: int, space: float, used: np.ndarray) -> int | None:
    """The line one staff space below line i (along it, where it is turned) that spans about
    the same x range, or None."""
    middle_x = (lines[:, 1] + lines[:, 3]) / 2
    # Every line's centre row at line i's middle column.
    centres = (lines[:, 0] + lines[:, 2]) / 2 + lines[:, 5] * (middle_x[i] - middle_x)
    gap = np.abs(centres - centres[i] - space) <= _SPACING_TOLERANCE * space
    overlap = np.minimum(lines[:, 3], lines[i, 3]) - np.maximum(lines[:, 1], lines[i, 1])
    longer = np.maximum(lines[:, 3] - lines[:, 1], lines[i, 3] - lines[i, 1])
    ok = gap & (overlap >= _OVERLAP * longer) & ~used
    ok[i] = False
    if not ok.any():
        return None
    return int(np.flatnonzero(ok)[np.argmax(overlap[ok])])


def _lines(ink_mask: np.ndarray, space: float) -> np.ndarray:
    """f32[L, 6] staff-line candidates `[y0, x0, y1, x1, covered columns, tilt]`, sorted by the
    height of their middles (`tilt`: as `Staves.tilts`; the box is the line's extent)."""
    long_runs = _keep_runs(ink_mask, min_length=_MIN_RUN * space)
    # Thin where the ink's own vertical run is thin: a stem, note head, clef or beam crossing a
    # line cuts it there, and a slanted beam's long rows are dropped whole.
    thick = _keep_runs(ink_mask.T, min_length=_MAX_THICK * space + 1).T
    labels, count = ndimage.label(long_runs & ~thick, structure=np.ones((3, 3), bool))
    if not count:
        return np.zeros((0, 6), np.float32)
    pieces = np.asarray(
        [[r.start, c.start, r.stop, c.stop] for r, c in ndimage.find_objects(labels)], np.float64
    )
    widths = pieces[:, 3] - pieces[:, 1]
    moments = _moments(labels, count)
    field = _tilt_field(moments, widths, ink_mask.shape, space)
    if field is None:
        heights = (pieces[:, 0] + pieces[:, 2]) / 2
    else:  # Each piece's centre carried along the page's lines to its middle column.
        x, y = moments[:, 1] / moments[:, 0], moments[:, 2] / moments[:, 0]
        heights = y - (field[0] + field[1] * y) * (x - ink_mask.shape[1] / 2)
    # Join the pieces of one line (cut by every stem and note head on it): pieces in order of
    # height join the line whose width-weighted height is within a quarter space, so a few
    # one-column slivers of a slur or hairpin cannot drag a line's height.
    sums: list[np.ndarray] = []  # Per line: [w, w*y0, w*y1, x0, x1, w*height], w = columns.
    members: list[list[int]] = []
    order = np.argsort(heights, kind="stable")
    for i in order:
        y0, x0, y1, x1 = pieces[i]
        width = widths[i]
        line = _line_at(sums, heights[i], 0.25 * space)
        if line is None:
            sums.append(np.array([width, width * y0, width * y1, x0, x1, width * heights[i]]))
            members.append([i])
        else:
            sums[line][[0, 1, 2, 5]] += width, width * y0, width * y1, width * heights[i]
            sums[line][3] = min(sums[line][3], x0)
            sums[line][4] = max(sums[line][4], x1)
            members[line].append(i)
    sums_arr = np.asarray(sums).reshape(-1, 6)
    x0, x1, covered = sums_arr[:, 3], sums_arr[:, 4], sums_arr[:, 0]
    top = np.round(sums_arr[:, 1] / covered)
    bottom = np.round(sums_arr[:, 2] / covered)
    centres, thickness = (top + bottom) / 2, bottom - top
    tilts = np.zeros(len(sums))
    if field is not None:  # A turned line's centre and slope fitted through its pixels.
        line_moments = np.stack([moments[m].sum(axis=0) for m in members])
        tilts = _slopes(line_moments)
        centres = _fit_at(line_moments, (x0 + x1) / 2)
        thickness = line_moments[:, 0] / covered
    # A level line's ends reach along its long runs, through the barlines that close it (cut
    # as thick); a turned line's last staircase step is shorter than a staff-line run, so
    # its ends reach along any ink on it.
    ends_on = long_runs if field is None else ink_mask
    out = []
    for i in np.flatnonzero(x1 - x0 >= _MIN_LINE * space):
        middle = (x0[i] + x1[i]) / 2

        def reaches(x: int, i: int = i, middle: float = middle) -> bool:
            top, bottom = _rows(centres[i] + tilts[i] * (x + 0.5 - middle), thickness[i])
            return bool(ends_on[max(top, 0) : bottom, x].any())


        left, right = int(x0[i]), int(x1[i])
        while left > 0 and reaches(left - 1):
            left -= 1
        while right < long_runs.shape[1] and reaches(right):
            right += 1
        ends = centres[i] + tilts[i] * (np.array([left, right]) - middle)
        half = thickness[i] / 2
        out.append([ends.min() - half, left, ends.max() + half, right, covered[i], tilts[i]])
    out_arr = np.asarray(out, np.float64).reshape(-1, 6)
    return out_arr[np.argsort((out_arr[:, 0] + out_arr[:, 2]) / 2, kind="stable")].astype(
        np.float32
    )


def _tilt_field(
    moments: np.ndarray, widths: np.ndarray, shape: tuple[int, int], space: float
) -> tuple[float, float] | None:
    """(a, b): the slope of the page's lines at row y is a + b * y (a turned page, or one
    photographed from a tilted camera, whose lines converge), fitted through the line
    pieces' own slopes (f64[P, 5] `_moments`, f32[P] widths) weighted by their widths; None
    where they drift less than a quarter space across the page: the lines are level."""
    slopes = _slopes(moments)
    y = moments[:, 2] / moments[:, 0]
    keep = np.abs(slopes) < _MAX_TILT
    coef = np.zeros(2)
    for _ in range(3):  # Pieces off the fit (a slur's, a hairpin's) are dropped, and refit.
        if keep.sum() < 2:
            return None
        design = np.stack([np.ones(keep.sum()), y[keep]], axis=1) * widths[keep, None]
        coef = np.linalg.lstsq(design, slopes[keep] * widths[keep], rcond=None)[0]
        residual = np.abs(slopes - coef[0] - coef[1] * y)
        spread = np.sqrt(np.average(residual[keep] ** 2, weights=widths[keep]))
        keep &= residual <= 2.5 * spread
    height, width = shape
    drift = width * max(abs(coef[0]), abs(coef[0] + coef[1] * height))
    return None if drift < 0.25 * space else (float(coef[0]), float(coef[1]))


def _line_at(sums: list[np.ndarray], height: float, tolerance: float) -> int | None:
    """The line (a row of `_lines`' sums, in order of height) whose width-weighted height is
    within `tolerance` of `height`, searching up from the last; None where there is none."""
    for i in range(len(sums) - 1, -1, -1):
        here = sums[i][5] / sums[i][0]
        if abs(height - here) <= tolerance:
            return i
        if height - here > tolerance:
            return None
    return None


def _moments(labels: np.ndarray, count: int) -> np.ndarray:
    """f64[count, 5]: per label 1..count, the pixel count and the sums of x, y, x * x and x * y
    over its pixels' centres (pixel (r, c) at (r + 0.5, c + 0.5))."""
    rows, cols = np.nonzero(labels)
    index = labels[rows, cols]
    x, y = cols + 0.5, rows + 0.5
    return np.stack(
        [np.bincount(index, w, minlength=count + 1)[1:] for w in (None, x, y, x * x, x * y)],
        axis=1,
    ).astype(np.float64)


def _slopes(moments: np.ndarray) -> np.ndarray:
    """f64[L]: the least-squares slope (rows per column) of each moment row's pixels."""
    n, sx, sy, sxx, sxy = moments.T
    return (sxy - sx * sy / n) / np.maximum(sxx - sx * sx / n, 1e-9)


def _fit_at(moments: np.ndarray, x: float | np.ndarray) -> np.ndarray:
    """f64[L]: each moment row's least-squares centre row at column position(s) x."""
    n, sx, sy = moments[:, 0], moments[:, 1], moments[:, 2]
    return sy / n + _slopes(moments) * (x - sx / n)


def _rows(centre: float | np.ndarray, thickness: float) -> tuple:
    """(first row, row past the last) holding a line `thickness` thick centred at `centre`
    (per column where `centre` is an array): every row it covers in part."""
    top = np.floor(np.asarray(centre) - thickness / 2).astype(np.int64)
    bottom = np.ceil(np.asarray(centre) + thickness / 2).astype(np.int64)
    bottom = np.maximum(bottom, top + 1)
    if top.ndim == 0:
        return int(top), int(bottom)
    return top, bottom


def _keep_runs(mask: np.ndarray, min_length: float) -> np.ndarray:
    """bool[H, W]: the pixels of `mask`'s horizontal runs at least `min_length` long: its
    opening by a 1 x ceil(min_length) line."""
    return image_lib.open_rect(mask, 1, max(int(np.ceil(min_length)), 1))

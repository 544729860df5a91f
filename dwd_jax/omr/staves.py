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
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage

_MIN_RUN = 4.0  # Staff spaces: shorter horizontal runs are symbols, not staff lines.
_MAX_THICK = 0.4  # Staff spaces: thicker vertical runs are beams or solids, not lines.
_MIN_LINE = 6.0  # Staff spaces: a shorter joined line is not a staff line.
_SPACING_TOLERANCE = 0.2  # A staff's line gaps are within 20 % of the page's staff space.
_LINES = 5
# A staff's lines span the same x range (a line may lose an end under a clef); a long thin
# stroke above or below a staff (a beam's edge, a volta bracket) spans much less.
_OVERLAP = 0.8


class Staves(NamedTuple):
    """A page's staves, top to bottom.

    Attributes:
      boxes: f32[S, 4] `[y0, x0, y1, x1]` page pixels (pixel i covers [i, i + 1)): the union
        of each staff's five lines.
      scores: f32[S] in (0, 1]: the mean share of the staff's width its five lines cover.
      lines: f32[S, 5, 4] each staff's line boxes, top line first.
    """

    boxes: np.ndarray
    scores: np.ndarray
    lines: np.ndarray


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
            np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 4), np.float32)
        )
    group = np.stack(groups)  # [S, 5, 5]
    boxes = np.stack(
        [group[:, 0, 0], group[:, :, 1].min(1), group[:, -1, 2], group[:, :, 3].max(1)], axis=1
    )
    scores = group[:, :, 4].sum(1) / (_LINES * (boxes[:, 3] - boxes[:, 1]))
    return Staves(
        boxes.astype(np.float32), scores.astype(np.float32), group[..., :4].astype(np.float32)
    )


def erase_lines(ink_mask: np.ndarray, staves: Staves) -> np.ndarray:
    """bool[H, W] `ink_mask` without its staff lines, except where a symbol crosses them.

    A line pixel stays where ink right above the line meets ink right below it across the
    pixel's column (or diagonally, one column aside): a note head or a sharp on a line, a
    slur across one. Everything else of the line goes, so a symbol that only touches a line
    (a whole note in a space, a rest on a line) comes away from it with its own box (classic
    staff removal).

    Args:
      ink_mask: bool[H, W] the page's ink.
      staves: `find`'s result on it.

    Returns:
      bool[H, W].
    """
    out = np.array(ink_mask, bool, copy=True)
    height = out.shape[0]
    for y0, x0, y1, x1 in staves.lines.reshape(-1, 4).astype(np.int64):
        if y0 < 1 or y1 >= height:
            continue  # A line on the page's edge: nothing crosses it from outside.
        out[y0:y1, x0:x1] &= _crossed(out[y0 - 1, x0:x1], out[y1, x0:x1])
    return out


def _crossed(above: np.ndarray, below: np.ndarray) -> np.ndarray:
    """bool[W]: columns where ink right above and right below a line meet across it, straight
    down or one column aside (a slanted stroke)."""
    out = above & below
    out[1:-1] |= (above[:-2] & below[2:]) | (above[2:] & below[:-2])
    return out


def _next_line(lines: np.ndarray, i: int, space: float, used: np.ndarray) -> int | None:
    """The line one staff space below line i that spans about the same x range, or None."""
    y = (lines[i, 0] + lines[i, 2]) / 2
    centres = (lines[:, 0] + lines[:, 2]) / 2
    gap = np.abs(centres - y - space) <= _SPACING_TOLERANCE * space
    overlap = np.minimum(lines[:, 3], lines[i, 3]) - np.maximum(lines[:, 1], lines[i, 1])
    longer = np.maximum(lines[:, 3] - lines[:, 1], lines[i, 3] - lines[i, 1])
    ok = gap & (overlap >= _OVERLAP * longer) & ~used
    ok[i] = False
    if not ok.any():
        return None
    return int(np.flatnonzero(ok)[np.argmax(overlap[ok])])


def _lines(ink_mask: np.ndarray, space: float) -> np.ndarray:
    """f32[L, 5] staff-line candidates `[y0, x0, y1, x1, covered columns]`, sorted by y."""
    long_runs = _keep_runs(ink_mask, min_length=_MIN_RUN * space)
    # Thin where the ink's own vertical run is thin: a stem, note head, clef or beam crossing a
    # line cuts it there, and a slanted beam's long rows are dropped whole.
    thick = _keep_runs(ink_mask.T, min_length=_MAX_THICK * space + 1).T
    labels, count = ndimage.label(long_runs & ~thick, structure=np.ones((3, 3), bool))
    if not count:
        return np.zeros((0, 5), np.float32)
    pieces = np.asarray(
        [[r.start, c.start, r.stop, c.stop] for r, c in ndimage.find_objects(labels)], np.float64
    )
    centres = (pieces[:, 0] + pieces[:, 2]) / 2
    # Join the pieces of one line (cut by every stem and note head on it): pieces in order of
    # height join the line whose width-weighted centre is within a quarter space, so a few
    # one-column slivers of a slur or hairpin cannot drag a line's height.
    sums: list[np.ndarray] = []  # Per line: [w, w*y0, w*y1, x0, x1] with w = covered columns.
    order = np.argsort(centres, kind="stable")
    for (y0, x0, y1, x1), centre in zip(pieces[order], centres[order], strict=True):
        width = x1 - x0
        line = _line_at(sums, centre, 0.25 * space)
        if line is None:
            sums.append(np.array([width, width * y0, width * y1, x0, x1]))
        else:
            line[:3] += width, width * y0, width * y1
            line[3], line[4] = min(line[3], x0), max(line[4], x1)
    sums_arr = np.asarray(sums).reshape(-1, 5)
    out = np.stack(
        [
            np.round(sums_arr[:, 1] / sums_arr[:, 0]),
            sums_arr[:, 3],
            np.round(sums_arr[:, 2] / sums_arr[:, 0]),
            sums_arr[:, 4],
            sums_arr[:, 0],
        ],
        axis=1,
    )
    out = out[out[:, 3] - out[:, 1] >= _MIN_LINE * space]
    for line in out:  # Ends through the barlines that close the line (cut as thick).
        rows = long_runs[int(line[0]) : int(line[2])].any(axis=0)
        x0, x1 = int(line[1]), int(line[3])
        while x0 > 0 and rows[x0 - 1]:
            x0 -= 1
        while x1 < len(rows) and rows[x1]:
            x1 += 1
        line[1], line[3] = x0, x1
    return out[np.argsort((out[:, 0] + out[:, 2]) / 2, kind="stable")].astype(np.float32)


def _line_at(sums: list[np.ndarray], centre: float, tolerance: float) -> np.ndarray | None:
    """The line (a row of `_lines`' sums, in order of height) whose weighted centre is within
    `tolerance` of `centre`, searching up from the last; None where there is none."""
    for line in reversed(sums):
        here = (line[1] + line[2]) / (2 * line[0])
        if abs(centre - here) <= tolerance:
            return line
        if centre - here > tolerance:
            return None
    return None


def _keep_runs(mask: np.ndarray, min_length: float) -> np.ndarray:
    """bool[H, W]: the pixels of `mask`'s horizontal runs at least `min_length` long."""
    height, width = mask.shape
    flat = np.pad(mask, ((0, 0), (1, 1))).ravel().astype(np.int8)
    steps = np.diff(flat)
    starts, ends = np.flatnonzero(steps == 1), np.flatnonzero(steps == -1)
    keep = ends - starts >= min_length
    marks = np.zeros(flat.size + 1, np.int32)
    np.add.at(marks, starts[keep] + 1, 1)
    np.add.at(marks, ends[keep] + 1, -1)
    padded = np.cumsum(marks[:-1]).reshape(height, width + 2).astype(bool)
    return padded[:, 1:-1]

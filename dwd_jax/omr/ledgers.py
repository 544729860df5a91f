"""Ledger lines read from the note heads the network found beyond a staff, measured on the ink.

Music notation fixes where ledger lines are: a note head k staff spaces above a staff's top
line (or below its bottom line) sits on, or just beyond, ledger lines 1..k, one space apart.
The network finds note heads almost perfectly but ledger lines poorly (it misses many and
reads staff lines beside note heads as ledger lines), since a ledger line is one pixel thick
at the model's half scale and often hidden under its note head. So each detected note head
beyond a staff gives its ledger lines, scored as the head; each line's rows come from
`ink.snap_lines` and its ends from the ink run along it. The network's own ledger
detections are replaced.
"""

from __future__ import annotations

import numpy as np

from dwd_jax import classes as classes_lib
from dwd_jax.omr import staves as staves_lib

# Note heads of every kind and size: all sit on or between lines and ledger lines alike.
HEAD_CLASSES = tuple(n for n in classes_lib.DEEPSCORES_CLASSES if n.startswith("notehead"))
_MAX_LEDGERS = 8  # Ledger lines beyond this are taken for a misplaced head, not music.
# A ledger line reaches past its note head by about 0.3 staff spaces on each side; its ink
# run along the line is read within this many staff spaces of the head's box.
_REACH = 1.0
# Staff spaces a decoded head box may overhang its ledger line's ends (a decoded box can be
# wider than the head's ink); an ink run that stops further inside the box is no ledger line.
_HEAD_SLACK = 0.15


def from_heads(
    ink_mask: np.ndarray,
    found: staves_lib.Staves,
    heads: np.ndarray,
    scores: np.ndarray,
    staff_space: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The ledger lines that note heads beyond a staff stand on.

    Each head is assigned to the staff whose x range holds its centre and whose outer line is
    nearest. Counted in half spaces beyond that staff's outer line, a head at step s >= 2 has
    s // 2 ledger lines between it and the staff, at whole spaces from the outer line's
    centre. A line's ends are its ink run's along its rows, cut off at `_REACH` spaces beyond
    the head; where no run there reaches (about) past the head on both sides there is no line
    (a misplaced head, or no note at all). Lines implied by several heads (a chord) are one
    line, with the best head's score.

    Args:
      ink_mask: bool[H, W] the page's ink.
      found: the page's staves (`staves.find`).
      heads: f32[N, 4] note-head boxes `[y0, x0, y1, x1]` page pixels.
      scores: f32[N] their scores.
      staff_space: the page's staff spacing in its pixels.

    Returns:
      (boxes f32[L, 4], scores f32[L]): ledger lines, rows as drawn at the staff lines'
      thickness (refine them with `ink.snap_lines`).
    """
    if not len(found.boxes) or not len(heads):
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    half_thick = float(np.median(staves_lib.thicknesses(found))) / 2
    cy, cx = (heads[:, 0] + heads[:, 2]) / 2, (heads[:, 1] + heads[:, 3]) / 2
    centres = staves_lib.centres_at(found, cx)  # [N, S, 5]: the lines at each head's column.
    spacing = (centres[:, :, -1] - centres[:, :, 0]) / 4  # [N, S]: each staff's own space.
    over = (cx[:, None] >= found.boxes[:, 1]) & (cx[:, None] < found.boxes[:, 3])  # [N, S]
    above = centres[:, :, 0] - cy[:, None]  # > 0: above the top line.
    below = cy[:, None] - centres[:, :, -1]  # > 0: below the bottom line.
    distance = np.where(over, np.maximum(np.maximum(above, below), 0.0), np.inf)
    staff = distance.argmin(axis=1)
    rows: dict[tuple[int, int, int], tuple[np.ndarray, float]] = {}
    for i in np.flatnonzero(np.isfinite(distance.min(axis=1))):
        s = staff[i]
        up = above[i, s] > 0
        beyond = above[i, s] if up else below[i, s]
        space = spacing[i, s]
        steps = int(np.floor(beyond / (space / 2) + 0.5))
        for k in range(1, min(steps // 2, _MAX_LEDGERS) + 1):
            y = centres[i, s, 0] - k * space if up else centres[i, s, -1] + k * space
            ends = _ends(ink_mask, y, heads[i], staff_space)
            if ends is None:
                continue
            x0, x1 = ends
            box = np.array([y - half_thick, x0, y + half_thick, x1], np.float32)
            key = (int(s), k if up else -k, _slot(rows, s, k if up else -k, box))
            if key not in rows or rows[key][1] < scores[i]:
                rows[key] = (box, float(scores[i]))
    if not rows:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    boxes, line_scores = zip(*rows.values(), strict=True)
    return np.stack(boxes), np.asarray(line_scores, np.float32)


def _slot(rows: dict, staff: int, level: int, box: np.ndarray) -> int:
    """An existing line's slot at (staff, level) that `box` overlaps in x, else a new one."""
    taken = [key[2] for key in rows if key[:2] == (staff, level)]
    for slot in taken:
        other = rows[(staff, level, slot)][0]
        if min(other[3], box[3]) > max(other[1], box[1]):
            return slot
    return len(taken)


def _ends(
    ink_mask: np.ndarray, y: float, head: np.ndarray, space: float
) -> tuple[float, float] | None:
    """(x0, x1) of the ink run along row `y` (or a row next to it) through the column under
    `head`'s centre (f32[4]), within `_REACH` spaces of the head; None where no such run
    reaches (about) past the head on both sides: no ledger line there (bare paper under a
    misplaced head or a false one)."""
    height, width = ink_mask.shape
    lo = max(int(np.floor(head[1] - _REACH * space)), 0)
    hi = min(int(np.ceil(head[3] + _REACH * space)), width)
    middle = int(np.clip(round((head[1] + head[3]) / 2), lo, hi - 1)) - lo
    for row in (int(np.floor(y)), int(np.floor(y)) - 1, int(np.floor(y)) + 1):
        ink_row = ink_mask[int(np.clip(row, 0, height - 1)), lo:hi]
        if ink_row[middle]:
            gaps = np.flatnonzero(~ink_row)
            left, right = gaps[gaps < middle], gaps[gaps > middle]
            x0 = lo + (left[-1] + 1 if len(left) else 0)
            x1 = lo + (right[0] if len(right) else len(ink_row))
            # A ledger line reaches past its note head on both sides: a run that stops well
            # inside the head's box is not one. The slack allows for a decoded head box wider
            # than the head's ink.
            slack = _HEAD_SLACK * space
            if x0 < head[1] + slack and x1 > head[3] - slack:
                return float(x0), float(x1)
    return None

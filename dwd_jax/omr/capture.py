"""How a page was captured, and its undoing: the paper's level and the page's skew.

The rules read the ink at a fixed grey level (`INK_BELOW`) and assume upright staves. A scan
or photograph breaks both: its paper is grey, and unevenly lit (a photograph's far corner can
be darker than 128), and it is turned by a degree or two. So before the rules:

- `flatten` divides the page by its paper's level, the brightest grey within a window wider
  than any solid symbol, smoothed. An engraved page's paper is 255 everywhere, so it comes
  back unchanged, bit for bit. (`even_light`, what the network reads, only evens the light.)
- `skew` measures the angle of the staff lines (the row profile of the ink is sharpest when
  the lines lie along rows), and `ink.refine` runs the rules on the page turned upright, its
  boxes turned with it and back.
"""

from __future__ import annotations

import cv2
import numpy as np

# Grey levels below this are ink, on a page whose paper is 255 (`flatten`).
INK_BELOW = 128
# The paper's level is taken over windows of this many staff spaces: wider than a note head
# or a beam's thickness. Without a staff space, of this share of the page's shorter side
# (about three staff spaces on a printed page).
WINDOW_SPACES = 3.0
_WINDOW_SHARE = 1 / 40
# The ink's level is the median of the flattened page's pixels darker than this.
_DARK = 64
# `even_light` brings the paper to this quantile of its level over the page: its lit part.
_EVEN_QUANTILE = 0.95
# Ink points the skew is measured on (a random subset beyond this, fixed by the page).
_MAX_POINTS = 200_000


def paper_level(page: np.ndarray, staff_space: float | None = None) -> np.ndarray:
    """f32[H, W]: the paper's grey level around each pixel of `page` (u8[H, W], 0 = ink).

    The brightest pixel within a square window of `WINDOW_SPACES` staff spaces (without
    `staff_space`, of `_WINDOW_SHARE` of the shorter side), after a 1-px blur so that noise
    does not lift it, box-averaged over the same window.
    """
    window = WINDOW_SPACES * staff_space if staff_space else min(page.shape) * _WINDOW_SHARE
    size = max(3, int(window)) | 1
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (size, size))
    paper = cv2.dilate(cv2.GaussianBlur(page, (0, 0), 1.0), kernel)
    return cv2.blur(paper.astype(np.float32), (size, size), borderType=cv2.BORDER_REPLICATE)


def flatten(page: np.ndarray, staff_space: float | None = None) -> np.ndarray:
    """u8[H, W]: `page` (u8[H, W], 0 = ink) divided by its paper's level (`paper_level`), so
    paper is 255.

    The ink's level, the median of what is then darker than a quarter grey, is stretched back
    to 0, so anti-aliased edges keep their share of ink. A page whose paper is 255 everywhere
    and whose ink is black is left as it is.
    """
    page = np.asarray(page, np.uint8)
    paper = paper_level(page, staff_space)
    if paper.min() >= 255:  # White paper: the page as it is, unless its ink is grey.
        dark = page[page < _DARK]
        if not dark.size or np.median(dark) <= 0:
            return page
    flat = page.astype(np.float32) * (255.0 / np.maximum(paper, 1.0))
    dark = flat[flat < _DARK]
    ink = float(np.median(dark)) if dark.size else 0.0
    flat = (flat - ink) * (255.0 / (255.0 - ink))
    return np.clip(np.rint(flat), 0, 255).astype(np.uint8)


def even_light(page: np.ndarray, staff_space: float | None = None) -> np.ndarray:
    """u8[H, W]: `page` (u8[H, W], 0 = ink) lit evenly: divided by its paper's level
    (`paper_level`) and multiplied by that level's `_EVEN_QUANTILE`, so a photograph's
    shadowed corner takes its lit paper's grey. Unlike `flatten`, the paper's own grey and
    the ink's are kept: the network is trained on grey, noisy scans, and stretching a blurred
    scan's ink to black thickens every stroke. An engraved page (paper 255 everywhere) comes
    back unchanged, bit for bit; a scan's evenly grey paper moves by a few levels at most.
    """
    page = np.asarray(page, np.uint8)
    paper = paper_level(page, staff_space)
    lit = float(np.quantile(paper, _EVEN_QUANTILE))
    if paper.min() >= lit:
        return page
    even = page.astype(np.float32) * (lit / np.maximum(paper, 1.0))
    return np.clip(np.rint(even), 0, 255).astype(np.uint8)


def ink_mask(page: np.ndarray, staff_space: float | None = None) -> np.ndarray:
    """bool[H, W]: the ink of a grey page (u8[H, W]) whatever its paper (`flatten`)."""
    return flatten(page, staff_space) < INK_BELOW


def skew(ink: np.ndarray, max_degrees: float = 3.0) -> float:
    """The angle (degrees, counter-clockwise as OpenCV turns a page) by which the page's
    lines are turned from the horizontal: turning the page by minus it makes them level.

    Of the candidate angles (a 0.1-degree grid in +-`max_degrees`, then 0.01 degrees around
    the best), the one whose turned ink has the sharpest row profile (largest sum of squared
    row counts): staff lines, a music page's longest strokes, then each fill one row.

    Args:
      ink: bool[H, W] the page's ink.
      max_degrees: the largest skew looked for.

    Returns:
      Degrees; 0.0 for a page without ink.
    """
    ys, xs = np.nonzero(ink)
    if len(ys) == 0:
        return 0.0
    if len(ys) > _MAX_POINTS:
        pick = np.random.default_rng(len(ys)).choice(len(ys), _MAX_POINTS, replace=False)
        ys, xs = ys[pick], xs[pick]
    height, width = ink.shape
    y = ys.astype(np.float64) - (height - 1) / 2
    x = xs.astype(np.float64) - (width - 1) / 2

    def sharpness(degrees: float) -> float:
        # Row of each point on the page turned by -degrees (OpenCV's y axis points down).
        t = np.deg2rad(degrees)
        rows = np.rint(y * np.cos(t) + x * np.sin(t)).astype(np.int64)
        counts = np.bincount(rows - rows.min())
        return float((counts.astype(np.float64) ** 2).sum())

    coarse = np.arange(-max_degrees, max_degrees + 1e-9, 0.1)
    best = coarse[np.argmax([sharpness(a) for a in coarse])]
    fine = best + np.arange(-0.1, 0.1 + 1e-9, 0.01)
    return float(np.round(fine[np.argmax([sharpness(a) for a in fine])], 2))

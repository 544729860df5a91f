"""Box geometry shared by every stage: boxes are `[y0, x0, y1, x1]` in pixels (docs/DESIGN.md)."""

from __future__ import annotations

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of two sets of boxes, as areas of continuous rectangles.

    Args:
      a: f[N, 4] [y0, x0, y1, x1].
      b: f[M, 4] [y0, x0, y1, x1].

    Returns:
      f64[N, M]; 0 where the union is empty.
    """
    a = np.asarray(a, np.float64)[:, None, :]
    b = np.asarray(b, np.float64)[None, :, :]
    ih = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    iw = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = ih * iw
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])
    union = area(a) + area(b) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)

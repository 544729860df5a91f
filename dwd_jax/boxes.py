"""Box geometry shared by every stage: boxes are `[y0, x0, y1, x1]` in pixels (docs/DESIGN.md)."""

from __future__ import annotations

import logging

import cv2
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


def remap(boxes: np.ndarray, move, points_per_edge: int = 2) -> np.ndarray:
    """The axis-aligned boxes of points on `boxes`' edges after a map of the plane.

    Args:
      boxes: f[M, 4] [y0, x0, y1, x1] pixels (pixel (i, j) covers [i, i + 1) x [j, j + 1)).
      move: a map of OpenCV point coordinates (pixel centres at integers), called as
        `move(x f32[M, P], y f32[M, P]) -> (x', y')`.
      points_per_edge: 2 takes the corners, exact for affine and perspective maps; a curved
        map needs more points along each edge.

    Returns:
      f32[M, 4].
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    t = np.linspace(0.0, 1.0, points_per_edge, dtype=np.float32)
    y0, x0, y1, x1 = (boxes[:, i : i + 1] for i in range(4))
    along_x, along_y = x0 + (x1 - x0) * t, y0 + (y1 - y0) * t
    ones = np.ones_like(t)
    edge_x = np.concatenate([along_x, along_x, x0 * ones, x1 * ones], 1)
    edge_y = np.concatenate([y0 * ones, y1 * ones, along_y, along_y], 1)
    new_x, new_y = move(edge_x - 0.5, edge_y - 0.5)  # Box edges -> centre coordinates.
    new_x, new_y = new_x + 0.5, new_y + 0.5
    return np.stack([new_y.min(1), new_x.min(1), new_y.max(1), new_x.max(1)], 1).astype(
        np.float32
    )


def rotation_matrix(shape: tuple[int, int], degrees: float) -> np.ndarray:
    """f64[2, 3]: OpenCV's affine map turning a page of `shape` (H, W) by `degrees`
    counter-clockwise about its centre ((W - 1) / 2, (H - 1) / 2 in pixel-centre
    coordinates)."""
    height, width = shape
    return cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), degrees, 1.0)


def rotate(boxes: np.ndarray, shape: tuple[int, int], degrees: float) -> np.ndarray:
    """f32[M, 4]: the axis-aligned boxes of f[M, 4] `boxes`' corners on a page of `shape`
    turned by `degrees` (`rotation_matrix`)."""
    m = rotation_matrix(shape, degrees)

    def move(x, y):
        return m[0, 0] * x + m[0, 1] * y + m[0, 2], m[1, 0] * x + m[1, 1] * y + m[1, 2]

    return remap(boxes, move)


def pad_objects(
    boxes: np.ndarray, classes: np.ndarray, max_objects: int, *, name: str = "crop"
) -> dict[str, np.ndarray]:
    """Objects padded (or truncated, with a warning) to a static count.

    Args:
      boxes: f32[N, 4]; classes: i32[N].
      max_objects: M.
      name: what to call the crop in the warning.

    Returns:
      `{"boxes": f32[M, 4], "classes": i32[M], "valid": bool[M]}`; padding rows have zero
      boxes, class 0 and valid False.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if len(boxes) > max_objects:
        logging.warning(
            "%s: %d objects, keeping the first %d; raise data.max_objects.",
            name, len(boxes), max_objects,
        )
    count = min(len(boxes), max_objects)
    out_boxes = np.zeros((max_objects, 4), np.float32)
    out_classes = np.zeros((max_objects,), np.int32)
    out_boxes[:count] = boxes[:count]
    out_classes[:count] = np.asarray(classes)[:count]
    return {
        "boxes": out_boxes,
        "classes": out_classes,
        "valid": np.arange(max_objects) < count,
    }

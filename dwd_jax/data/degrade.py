"""Degradations of scans and photographs, for training pages (`config.data.degrade`).

Engraved pages are perfectly clean; real ones are scanned or photographed: grey or textured
paper, the verso showing through, a slight skew, a camera's perspective, a page that does not
lie flat, uneven light, blur, a lower resolution, sensor noise, bilevel scans and JPEG
artefacts. Each family below is a pure function

    family(page: u8[H, W], boxes: f32[M, 4], rng, **params) -> (u8[H, W], f32[M, 4])

on a grey page (0 = ink, 255 = paper) and its boxes [y0, x0, y1, x1] in page pixels (pixel
(i, j) covers [i, i + 1) x [j, j + 1)). Only `rotation`, `perspective` and `warp` move the
boxes; the others return them as they are. Every random draw comes from `rng`, so a seed fixes
the result. `degrade` applies each family with its own probability, in the fixed order of
`FAMILIES`: first what happens to the paper (verso, paper tone, texture), then to its capture
(skew, perspective, warp, light, optics, sampling, sensor), then to the file (binarisation,
compression). Parameters are in pixels of the page as it is handed over (the training
pipeline degrades pages after `data.scale`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import cv2
import numpy as np

from dwd_jax import boxes as boxes_lib
from dwd_jax import image as image_lib


def _u8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, image_lib.WHITE).astype(np.uint8)


def _smooth_field(shape: tuple[int, int], cells: tuple[int, int], rng: np.random.Generator):
    """f32[H, W]: standard normal values on a `cells` grid, bicubically upsampled to `shape`."""
    grid = rng.standard_normal(cells).astype(np.float32)
    return cv2.resize(grid, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def noise(page, boxes, rng, *, sigma=(2.0, 12.0)):
    """Gaussian sensor noise with a standard deviation drawn from `sigma` (grey levels)."""
    std = rng.uniform(*sigma)
    grain = rng.standard_normal(page.shape, dtype=np.float32) * np.float32(std)
    return _u8(page + grain), boxes


def blur(page, boxes, rng, *, sigma=(0.3, 1.2)):
    """Gaussian blur (defocus, scanner optics) with a sigma in pixels drawn from `sigma`."""
    return cv2.GaussianBlur(page, (0, 0), rng.uniform(*sigma)), boxes


def jpeg(page, boxes, rng, *, quality=(30, 90)):
    """JPEG re-encoding at an integer quality drawn from the closed range `quality`."""
    level = int(rng.integers(quality[0], quality[1] + 1))
    ok, encoded = cv2.imencode(".jpg", page, [cv2.IMWRITE_JPEG_QUALITY, level])
    if not ok:
        raise ValueError(f"OpenCV could not JPEG-encode a page of shape {page.shape}.")
    return cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE), boxes


def threshold(page, boxes, rng, *, otsu_prob=0.5, level=(100, 180)):
    """Bilevel page (0 or 255): Otsu's threshold with probability `otsu_prob`, otherwise a
    fixed one drawn from `level`."""
    if rng.random() < otsu_prob:
        _, bilevel = cv2.threshold(
            page, 0, image_lib.WHITE, cv2.THRESH_BINARY + cv2.THRESH_OTSU
        )
    else:
        _, bilevel = cv2.threshold(
            page, rng.uniform(*level), image_lib.WHITE, cv2.THRESH_BINARY
        )
    return bilevel, boxes


def uneven_light(page, boxes, rng, *, darkest=(0.6, 0.9)):
    """The page times a smooth random light field whose brightest point is 1 and darkest a
    value drawn from `darkest` (a 3x3 grid of random levels, bicubically upsampled)."""
    low = rng.uniform(*darkest)
    field = _smooth_field(page.shape, (3, 3), rng)
    span = max(float(field.max() - field.min()), 1e-6)
    light = low + (1.0 - low) * (field - field.min()) / span
    return _u8(page * light), boxes


def grey_paper(page, boxes, rng, *, paper=(200, 245), ink=(0, 60)):
    """Grey levels mapped linearly so that white becomes a paper level drawn from `paper` and
    black an ink level drawn from `ink`."""
    paper_level, ink_level = rng.uniform(*paper), rng.uniform(*ink)
    scale = (paper_level - ink_level) / image_lib.WHITE
    return _u8(ink_level + page.astype(np.float32) * scale), boxes


def paper_texture(page, boxes, rng, *, strength=(4.0, 16.0), cell=(8, 32)):
    """Low-frequency paper noise added to the page: a random field on a grid of one value per
    `cell` pixels (drawn from the range), upsampled, with a standard deviation (grey levels)
    drawn from `strength`."""
    size = int(rng.integers(cell[0], cell[1] + 1))
    cells = (max(2, page.shape[0] // size), max(2, page.shape[1] // size))
    field = _smooth_field(page.shape, cells, rng) * np.float32(rng.uniform(*strength))
    return _u8(page + field), boxes


def bleed_through(page, boxes, rng, *, alpha=(0.05, 0.25), sigma=(1.0, 3.0)):
    """The verso showing through: the page mirrored left-right, blurred (sigma drawn from
    `sigma`) and multiplied in, so paper under its ink darkens by up to `alpha` (drawn)."""
    verso = cv2.GaussianBlur(np.ascontiguousarray(page[:, ::-1]), (0, 0), rng.uniform(*sigma))
    shade = 1.0 - rng.uniform(*alpha) * (1.0 - verso.astype(np.float32) / image_lib.WHITE)
    return _u8(page * shade), boxes


def rotation(page, boxes, rng, *, degrees=(-2.0, 2.0)):
    """A skew by an angle drawn from `degrees` (counter-clockwise positive) about the page
    centre, on white.

    The page keeps its size (corners leaving it are lost, those entering are white). Each box
    becomes the axis-aligned box of its four rotated corners, so it still holds its ink.
    """
    angle = rng.uniform(*degrees)
    return image_lib.rotate(page, angle), boxes_lib.rotate(boxes, page.shape, angle)


def perspective(page, boxes, rng, *, shift=(0.0, 0.015)):
    """A camera not square to the page: each page corner moved by up to a share of the page's
    size drawn from `shift`, in a random direction per axis, and the page warped so that its
    corners land there (on white). Boxes are re-boxed around their moved corners."""
    height, width = page.shape
    amount = rng.uniform(*shift)
    src = np.float32([[0, 0], [width - 1, 0], [0, height - 1], [width - 1, height - 1]])
    dst = src + rng.uniform(-1.0, 1.0, (4, 2)).astype(np.float32) * np.float32(
        [width, height]
    ) * np.float32(amount)
    matrix = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(
        page, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=image_lib.WHITE
    )

    def move(x, y):
        points = np.stack([x, y], -1).reshape(-1, 1, 2).astype(np.float64)
        out = cv2.perspectiveTransform(points, matrix).reshape(*x.shape, 2)
        return out[..., 0], out[..., 1]

    return warped, boxes_lib.remap(boxes, move)


def warp(page, boxes, rng, *, amplitude=(0.5, 2.0)):
    """A page that does not lie flat: a smooth displacement field (a random 3x3 grid per axis,
    bicubically upsampled) whose largest shift, in pixels, is drawn from `amplitude`. Boxes
    are re-boxed around points along their edges, each moved with the field."""
    height, width = page.shape
    size = rng.uniform(*amplitude)
    fields = []
    for _ in range(2):
        field = _smooth_field(page.shape, (3, 3), rng)
        fields.append(field * np.float32(size / max(float(np.abs(field).max()), 1e-6)))
    dy, dx = fields
    grid_y, grid_x = np.mgrid[0:height, 0:width].astype(np.float32)
    # remap samples the source at (x + dx, y + dy): ink at s appears near s - d(s).
    warped = cv2.remap(
        page, grid_x + dx, grid_y + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
        borderValue=image_lib.WHITE,
    )

    def move(x, y):
        i = np.clip(np.rint(y).astype(int), 0, height - 1)
        j = np.clip(np.rint(x).astype(int), 0, width - 1)
        return x - dx[i, j], y - dy[i, j]

    return warped, boxes_lib.remap(boxes, move, points_per_edge=9)


def resolution(page, boxes, rng, *, factor=(0.4, 0.8)):
    """A lower-resolution capture: the page shrunk by a factor drawn from `factor` (area
    averaging) and enlarged back to its size (bilinear); boxes unchanged."""
    scale = rng.uniform(*factor)
    height, width = page.shape
    small = cv2.resize(
        page,
        (max(1, round(width * scale)), max(1, round(height * scale))),
        interpolation=cv2.INTER_AREA,
    )
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR), boxes


# The families in the order `degrade` applies them; `config.data.degrade.<name>` holds `prob`
# and the function's keyword arguments.
FAMILIES: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "bleed_through": bleed_through,
    "grey_paper": grey_paper,
    "paper_texture": paper_texture,
    "rotation": rotation,
    "perspective": perspective,
    "warp": warp,
    "uneven_light": uneven_light,
    "blur": blur,
    "resolution": resolution,
    "noise": noise,
    "threshold": threshold,
    "jpeg": jpeg,
}


def degrade(
    page: np.ndarray,
    boxes: np.ndarray,
    rng: np.random.Generator,
    config: Mapping[str, Any],
) -> tuple[np.ndarray, np.ndarray]:
    """Each family of `FAMILIES`, in order, with probability `config[name].prob`.

    Args:
      page: u8[H, W] grey page, 0 = ink, 255 = paper.
      boxes: f32[M, 4] [y0, x0, y1, x1] page pixels.
      rng: the generator every draw comes from (one uniform per family, then its parameters).
      config: the `config.data.degrade` section (its `rate` is the caller's business).

    Returns:
      (u8[H, W] degraded page, f32[M, 4] boxes on the same ink).
    """
    for name, family in FAMILIES.items():
        params = dict(config[name])
        if rng.random() < params.pop("prob"):
            page, boxes = family(page, boxes, rng, **params)
    return page, boxes

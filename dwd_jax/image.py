"""The image path shared by the TFDS builder, training and inference: one grey conversion and
one resampler.

Grey (`to_grey`): 0 = black ink, 255 = white paper, 8 bits. Colour is ITU-R 601 luma (PIL's
"L"), 16-bit values are scaled to 8 bits, and transparent parts are composited onto white
paper (DeepScoresV2's pages are RGBA with transparent paper).

Resampling (`resize`): a model sees thin strokes (stems, ledger lines, staff lines: 1-3 px)
as its resampler draws them, so training and inference must resize alike. Shrinking averages
the source pixels each target pixel covers (`cv2.INTER_AREA`): no stroke vanishes between
samples, whatever the factor; at exactly 0.5 this is the 2x2 mean. Enlarging interpolates
bilinearly.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from dwd_jax import boxes as boxes_lib

WHITE = 255  # Paper's grey level (and the padding's).
_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}  # Channels -> PIL mode.


def to_grey(image: Image.Image | np.ndarray | bytes, *, name: str = "page") -> np.ndarray:
    """Any page image as grey, 0 = ink, 255 = paper.

    Args:
      image: a PIL image (any mode: grey, palette, RGB, RGBA/LA, 16-bit, 32-bit float),
        encoded bytes (PNG, JPEG, TIFF, ...), or an array `u8|u16[H, W]` or
        `u8|u16[H, W, C]` with C in 1..4 (grey, grey + alpha, RGB, RGBA).
      name: what to call the image in error messages (a file, a record).

    Returns:
      u8[H, W].

    Raises:
      ValueError: an array of another shape or dtype, naming `name`.
    """
    if isinstance(image, bytes):
        image = Image.open(io.BytesIO(image))
    if not isinstance(image, Image.Image):
        image = np.asarray(image)
        if image.dtype == np.uint8 and (image.ndim == 2 or image.shape[2:] == (1,)):
            return image.reshape(image.shape[:2])  # Already grey: what the builder stores.
        image = Image.fromarray(*_array_and_mode(image, name))
    return _pil_to_grey(image)


def _array_and_mode(image: np.ndarray, name: str) -> tuple[np.ndarray, str]:
    """An 8-bit array PIL can take, and its mode."""
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in _MODES:
        raise ValueError(
            f"{name}: image of shape {image.shape} is not [H, W] or [H, W, C] with C in 1..4; "
            "store pages as grey, RGB or RGBA PNGs."
        )
    if image.dtype == np.uint16:
        image = np.round(image / 257.0).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ValueError(f"{name}: image dtype {image.dtype} is not uint8 or uint16.")
    mode = _MODES[image.shape[-1]]
    return (image[..., 0] if mode == "L" else image), mode


def _pil_to_grey(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit PNGs and TIFFs open as "I;16*" or "I" (int32 holding 0..65535).
        return np.round(np.clip(np.asarray(im, np.float64), 0, 65535) / 257.0).astype(np.uint8)
    if im.mode == "F":
        return np.round(np.clip(np.asarray(im, np.float64), 0, 255)).astype(np.uint8)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        # Over white: grey * alpha + 255 * (1 - alpha). Grey conversion is linear, so taking
        # grey before compositing gives the same page (to rounding) at a fraction of the cost.
        la = np.asarray(im.convert("LA"), np.uint16)
        ink = (255 - la[..., 0]) * la[..., 1]
        return (255 - (ink + 127) // 255).astype(np.uint8)
    return np.asarray(im.convert("L"))


def scaled_shape(shape: tuple[int, int], scale: float) -> tuple[int, int]:
    """(round(H * scale), round(W * scale)), at least 1 each."""
    return max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale))


def resize(image: np.ndarray, scale: float) -> np.ndarray:
    """A grey page resized by `scale`.

    Args:
      image: u8[H, W].
      scale: size factor.

    Returns:
      u8[h, w] with (h, w) = `scaled_shape((H, W), scale)`; the image itself at scale 1.
    """
    h, w = scaled_shape(image.shape, scale)
    if (h, w) == image.shape:
        return image
    method = cv2.INTER_AREA if h <= image.shape[0] and w <= image.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(image, np.uint8), (w, h), interpolation=method)


def rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """u8[H, W]: a grey page turned by `degrees` counter-clockwise about its centre
    (`boxes.rotation_matrix`), keeping its size; corners entering it are paper (255)."""
    matrix = boxes_lib.rotation_matrix(image.shape, degrees)
    height, width = image.shape
    return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=255)


def open_rect(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """bool[H, W] `mask` opened by a `height` x `width` rectangle, exactly as
    `ndimage.binary_opening` with that structure (paper beyond the border): what survives is
    every pixel of some rectangle of that size wholly inside the mask. OpenCV's `morphologyEx`
    dilates with the erosion's own anchor, which shifts an even-sized opening by a pixel; the
    dilation here takes the mirrored anchor."""
    kernel = np.ones((height, width), np.uint8)
    anchor = (width // 2, height // 2)
    mirrored = (width - 1 - anchor[0], height - 1 - anchor[1])
    paper = {"borderType": cv2.BORDER_CONSTANT, "borderValue": 0}
    eroded = cv2.erode(np.ascontiguousarray(mask, np.uint8), kernel, anchor=anchor, **paper)
    return cv2.dilate(eroded, kernel, anchor=mirrored, **paper).astype(bool)

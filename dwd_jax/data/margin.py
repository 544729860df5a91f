"""Margin augmentation (spec section 5): a white strip along the top of a training crop,
filled with symbols of classes drawn uniformly, their boxes added to the crop's.

DeepScores is dominated by a few classes; the original put a 130-px strip above each crop
with twelve 80x130 cells of symbol crops, classes drawn uniformly, so every class is seen
within a few iterations. Here the strip takes the crop's top `height` rows (the page crop
moves down by as much: shapes stay static), and the symbols come from a bank cut from the
training pages themselves (`build_bank`), at the model's scale: the page's ink within a pixel
of the symbol's box, on white, so a neighbour comes along only where it crosses the box (staff
lines through a note head, a stem at its side) as it does on the page. It complements
`crop_page`'s class-balanced object-centred crops (`data.crop_object_prob`), which show rare
symbols in their page context; `config.data.margin.prob` sets the share of crops with a strip.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ml_collections
import numpy as np

from dwd_jax import boxes as boxes_lib
from dwd_jax import image as image_lib

# {model class: ((patch u8[h, w], box f32[4] in patch pixels), ...)}.
Bank = dict[int, tuple[tuple[np.ndarray, np.ndarray], ...]]


def build_bank(
    pages: Sequence[Callable[[], Mapping[str, np.ndarray]]] | Sequence[Mapping[str, Any]],
    margin: ml_collections.ConfigDict,
    *,
    seed: int,
) -> Bank:
    """Symbol patches per class, cut from training pages.

    Every object whose box fits a cell (`margin.cell_width` wide, `margin.height` high, less
    one pixel each side) is a candidate; each class keeps `margin.per_class` of its candidates
    drawn uniformly (reservoir sampling, seeded), so the bank is the same for any process.

    Args:
      pages: scaled pages `{"image": u8[H, W], "boxes": f32[N, 4], "classes": i32[N]}`, or
        callables returning them (read one at a time).
      margin: `config.data.margin`.
      seed: the reservoir's seed.

    Returns:
      {class: ((patch, box), ...)}: patch u8[h, w], the page within 1 px of the box; box
      (y0, x0, y1, x1) in patch pixels.
    """
    rng = np.random.default_rng(seed)
    per_class = int(margin.per_class)
    reservoir: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    seen: dict[int, int] = {}
    for item in pages:
        page = item() if callable(item) else item
        image = page["image"]
        height, width = image.shape
        for box, cls in zip(page["boxes"], page["classes"], strict=True):
            patch = _patch(image, box, height, width, margin)
            if patch is None:
                continue
            cls = int(cls)
            seen[cls] = seen.get(cls, 0) + 1
            kept = reservoir.setdefault(cls, [])
            if len(kept) < per_class:
                kept.append(patch)
            else:
                slot = int(rng.integers(seen[cls]))
                if slot < per_class:
                    kept[slot] = patch
    return {cls: tuple(reservoir[cls]) for cls in sorted(reservoir)}


def _patch(image, box, height, width, margin) -> tuple[np.ndarray, np.ndarray] | None:
    """The page within 1 px of the object's box, or None if that does not fit a cell."""
    y0, x0 = int(np.floor(box[0])) - 1, int(np.floor(box[1])) - 1
    y1, x1 = int(np.ceil(box[2])) + 1, int(np.ceil(box[3])) + 1
    if y1 - y0 > margin.height or x1 - x0 > margin.cell_width or box[2] <= box[0]:
        return None
    if y0 < 0 or x0 < 0 or y1 > height or x1 > width:
        return None  # Cut by the page's edge: the box is not all ink.
    patch = np.array(image[y0:y1, x0:x1], np.uint8)
    return patch, (np.asarray(box, np.float32) - np.float32([y0, x0, y0, x0]))


def add_margin(
    crop: Mapping[str, np.ndarray],
    rng: np.random.Generator,
    bank: Bank,
    margin: ml_collections.ConfigDict,
    *,
    name: str = "crop",
) -> dict[str, np.ndarray]:
    """`crop` moved down by `margin.height` rows under a strip of bank symbols.

    The page's boxes move down with it and keep `crop_page`'s rule: a box stays while its
    centre lies in the crop. Each of the strip's `S // margin.cell_width` cells holds one
    symbol of a class drawn uniformly from the bank, at a random place in its cell.

    Args:
      crop: from `crop_page`, `{"image": u8[S, S, 1], "boxes": f32[M, 4], "classes": i32[M],
        "valid": bool[M]}`.
      rng: the record's generator.
      bank: from `build_bank` (empty: the crop is only moved down).
      margin: `config.data.margin`.
      name: what to call the crop in warnings.

    Returns:
      The same structure; the strip's symbols follow the page's boxes in the padded rows.
    """
    image = crop["image"]
    side, max_objects = image.shape[0], crop["boxes"].shape[0]
    strip = int(margin.height)
    out = np.full_like(image, image_lib.WHITE)
    out[strip:] = image[: side - strip]
    boxes = crop["boxes"][crop["valid"]] + np.float32([strip, 0, strip, 0])
    classes = crop["classes"][crop["valid"]]
    kept = (boxes[:, 0] + boxes[:, 2]) / 2 < side
    boxes, classes = list(boxes[kept]), list(classes[kept])
    names = sorted(bank)
    cell = int(margin.cell_width)
    for left in range(0, side - cell + 1, cell) if names else ():
        cls = names[int(rng.integers(len(names)))]
        patch, box = bank[cls][int(rng.integers(len(bank[cls])))]
        h, w = patch.shape
        y = int(rng.integers(0, strip - h + 1))
        x = left + int(rng.integers(0, cell - w + 1))
        region = out[y : y + h, x : x + w, 0]
        np.minimum(region, patch, out=region)
        boxes.append(box + np.float32([y, x, y, x]))
        classes.append(cls)
    return {"image": out, **boxes_lib.pad_objects(boxes, classes, max_objects, name=name)}


def validate(margin: ml_collections.ConfigDict, crop_size: int) -> None:
    """Raises ValueError naming the `data.margin` field that cannot work with `crop_size`."""
    if not 0.0 <= margin.prob <= 1.0:
        raise ValueError(f"data.margin.prob={margin.prob} is not in [0, 1].")
    if margin.prob == 0:
        return
    if not 0 < margin.height < crop_size:
        raise ValueError(
            f"data.margin.height={margin.height} must be above 0 and below data.crop_size="
            f"{crop_size}: the strip takes the crop's top rows."
        )
    if not 0 < margin.cell_width <= crop_size:
        raise ValueError(
            f"data.margin.cell_width={margin.cell_width} must be in (0, data.crop_size="
            f"{crop_size}]."
        )
    if margin.per_class < 1:
        raise ValueError(f"data.margin.per_class={margin.per_class} must be at least 1.")

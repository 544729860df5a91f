"""Pictures: detection overlays, energy and class maps, training panels, learning curves.

Everything here takes numpy arrays on the host and returns `PIL.Image` RGB images (or writes a
PNG). Colours come from one fixed palette over the 137 model classes, so a class has the same
colour in every overlay, map and legend of a run. Matplotlib is used only for line plots, through
its object API on an Agg canvas, so importing this module never touches pyplot's global backend.
"""

from __future__ import annotations

import colorsys
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from etils import epath
from PIL import Image, ImageDraw, ImageFont

from dwd_jax.classes import DEEPSCORES_CLASSES

# Names indexed by model class (label + 1); model class 0 is background (docs/DESIGN.md).
MODEL_CLASS_NAMES: tuple[str, ...] = ("background", *DEEPSCORES_CLASSES)

_WHITE = (255, 255, 255)
_MISSED = (255, 0, 0)  # Pure red: no palette colour reaches full value and saturation.


def class_palette(num_classes: int = len(MODEL_CLASS_NAMES)) -> np.ndarray:
    """A fixed, distinguishable colour per model class.

    Hues step by the golden angle so neighbouring class ids (often related symbols, e.g. the
    notehead variants) get far-apart hues; saturation and value cycle through three levels so
    classes whose hues come close again still differ. Every colour is dark enough to read on
    white paper. Class 0 (background) is white.

    Args:
      num_classes: number of model classes, background included.

    Returns:
      u8[num_classes, 3] RGB colours.
    """
    golden = (math.sqrt(5.0) - 1.0) / 2.0
    colours = np.zeros((num_classes, 3), np.uint8)
    colours[0] = _WHITE
    for k in range(1, num_classes):
        hue = (k * golden) % 1.0
        sat = (1.0, 0.75, 0.9)[k % 3]
        val = (0.85, 0.6, 0.45)[(k // 3) % 3]
        colours[k] = np.round(np.array(colorsys.hsv_to_rgb(hue, sat, val)) * 255)
    return colours


_PALETTE = class_palette()


def _font(size: int) -> ImageFont.ImageFont:
    """Pillow's built-in scalable font (no font files needed), at `size` pixels."""
    return ImageFont.load_default(size=max(8, int(size)))


def _grey_to_rgb(image: np.ndarray) -> Image.Image:
    """u8 or float grey [H, W] or [H, W, 1] (0 black, 255 white) -> RGB PIL image."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim != 2:
        raise ValueError(
            f"expected a grey image of shape [H, W] or [H, W, 1], got shape {image.shape}; "
            "convert colour pages to grey first (dwd_jax.detection.detect.load_page does)"
        )
    if image.dtype != np.uint8:
        image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return Image.fromarray(image, mode="L").convert("RGB")


def _legend(
    entries: Sequence[tuple[str, tuple[int, int, int]]], *, height: int, font_size: int
) -> Image.Image:
    """A white column listing (name, colour) swatches, wrapped into several columns if needed."""
    font_size = int(font_size)
    font = _font(font_size)
    row = int(font_size * 1.5)
    pad = font_size // 2
    rows_per_col = max(1, (height - 2 * pad) // row)
    n_cols = max(1, math.ceil(len(entries) / rows_per_col))
    col_width = pad + row + max((int(font.getlength(name)) for name, _ in entries), default=0) + pad
    legend = Image.new("RGB", (n_cols * col_width + pad, height), _WHITE)
    draw = ImageDraw.Draw(legend)
    for i, (name, colour) in enumerate(entries):
        x = pad + (i // rows_per_col) * col_width
        y = pad + (i % rows_per_col) * row
        draw.rectangle([x, y, x + row - pad, y + row - pad], fill=colour)
        draw.text((x + row, y), name, fill=(0, 0, 0), font=font)
    return legend


def _hconcat(images: Sequence[Image.Image]) -> Image.Image:
    """Images side by side on white, top-aligned."""
    out = Image.new("RGB", (sum(i.width for i in images), max(i.height for i in images)), _WHITE)
    x = 0
    for im in images:
        out.paste(im, (x, 0))
        x += im.width
    return out


def draw_boxes(
    image: np.ndarray,
    boxes: np.ndarray,
    classes: np.ndarray,
    scores: np.ndarray | None = None,
    *,
    class_names: Sequence[str] = MODEL_CLASS_NAMES,
    legend: bool = True,
    missed: np.ndarray | None = None,
) -> Image.Image:
    """Class-coloured boxes on a grey page, with a legend of the classes present.

    Boxes are drawn with PIL's C rasteriser, one call per box, so a page with thousands of
    objects takes milliseconds. Line width and legend text grow with the page so both stay
    readable on a 2700x3800 DeepScores page and on a 480x480 crop.

    Args:
      image: u8[H, W] (or float) grey page, 0 = black ink, 255 = white paper.
      boxes: f32[N, 4] boxes [y0, x0, y1, x1] in pixels of `image`.
      classes: i32[N] model classes (DeepScores label + 1).
      scores: optional f32[N] in [0, 1]; a box's colour is faded toward white as its score falls
        (score 1 = full colour, score 0 = 70 % white), so confident detections stand out.
      class_names: names indexed by model class.
      legend: append a legend column (class colour, name and count) on the right.
      missed: optional f32[K, 4] ground-truth boxes no detection found (see
        `evaluate.found_objects`), drawn in red at twice the line width.

    Returns:
      RGB image of width W (+ legend) and height H.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    classes = np.asarray(classes).reshape(-1).astype(np.int64)
    if len(boxes) != len(classes) or (scores is not None and len(np.ravel(scores)) != len(boxes)):
        raise ValueError(
            f"draw_boxes: got {len(boxes)} boxes, {len(classes)} classes and "
            f"{'no' if scores is None else len(np.ravel(scores))} scores; pass one of each per box"
        )
    if len(classes) and (classes.min() < 0 or classes.max() >= len(class_names)):
        raise ValueError(
            f"draw_boxes: class ids must be model classes in [0, {len(class_names)}), got "
            f"{classes.min()}..{classes.max()}; add 1 to DeepScores labels (docs/DESIGN.md)"
        )
    canvas = _grey_to_rgb(image)
    draw = ImageDraw.Draw(canvas)
    scale = max(canvas.size) / 1000.0
    width = max(1, round(scale))
    colours = _PALETTE[classes].astype(np.float32)
    if scores is not None:
        fade = 0.7 * (1.0 - np.clip(np.ravel(scores), 0.0, 1.0))[:, None]
        colours = colours * (1.0 - fade) + 255.0 * fade
    colours = np.round(colours).astype(np.uint8)
    for (y0, x0, y1, x1), colour in zip(boxes.tolist(), colours.tolist(), strict=True):
        draw.rectangle(
            [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], outline=tuple(colour), width=width
        )
    missed = np.zeros((0, 4)) if missed is None else np.asarray(missed).reshape(-1, 4)
    for y0, x0, y1, x1 in missed.tolist():
        draw.rectangle(
            [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], outline=_MISSED, width=2 * width
        )
    if not legend:
        return canvas
    present, counts = np.unique(classes, return_counts=True)
    entries = [
        (f"{class_names[c]} ({n})", tuple(int(v) for v in _PALETTE[c]))
        for c, n in zip(present.tolist(), counts.tolist(), strict=True)
    ]
    if len(missed):
        entries.append((f"missed ground truth ({len(missed)})", _MISSED))
    return _hconcat(
        [canvas, _legend(entries, height=canvas.height, font_size=round(12 * max(1.0, scale)))]
    )


def _colour_map(name: str, n: int) -> np.ndarray:
    """u8[n, 3] lookup table sampled from a matplotlib colour map."""
    from matplotlib import colormaps  # Deferred: matplotlib's import costs ~0.3 s.

    return np.round(colormaps[name](np.linspace(0.0, 1.0, n))[:, :3] * 255).astype(np.uint8)


def energy_map_image(energy: np.ndarray, *, levels: int = 20) -> Image.Image:
    """Colour an energy-level map: 0 (background) black through 19 (symbol centre) yellow.

    Args:
      energy: i32[H, W] energy levels in [0, levels), e.g. the argmax of the energy logits
        or the energy target of one group.
      levels: number of energy levels (config.targets.energy_levels).

    Returns:
      RGB image [H, W] (inferno colour map).
    """
    energy = np.asarray(energy)
    if energy.ndim != 2:
        raise ValueError(f"energy map must be [H, W] levels, got shape {energy.shape}")
    lut = _colour_map("inferno", levels)
    return Image.fromarray(lut[np.clip(energy, 0, levels - 1).astype(np.int64)], mode="RGB")


def class_map_image(classes: np.ndarray) -> Image.Image:
    """Colour a model-class map with the class palette; background (0) is white.

    Args:
      classes: i32[H, W] model classes, e.g. the argmax of the class logits or a class target.

    Returns:
      RGB image [H, W].
    """
    classes = np.asarray(classes)
    if classes.ndim != 2:
        raise ValueError(f"class map must be [H, W] model classes, got shape {classes.shape}")
    return Image.fromarray(_PALETTE[np.clip(classes, 0, len(_PALETTE) - 1)], mode="RGB")


def training_panel(
    image: np.ndarray,
    pred_energy: np.ndarray,
    target_energy: np.ndarray,
    pred_class: np.ndarray,
    target_class: np.ndarray,
    *,
    levels: int = 20,
) -> Image.Image:
    """The trainer's periodic picture: input | energy target, prediction | class target, prediction.

    Maps may come at any output stride; every tile is shown at the maps' size (the image is
    resized to it), so a stride-2 panel of a 960x960 crop is 5 x 480 pixels wide. With an energy
    group axis (docs/DESIGN.md), each group gets its own row.

    Args:
      image: grey input [H, W] or [H, W, 1], 0 = ink, 255 = paper (float or u8).
      pred_energy: i32[h, w] or i32[h, w, G] predicted levels (argmax of the energy logits).
      target_energy: i32[h, w] or i32[h, w, G] energy targets.
      pred_class: i32[h, w] or i32[h, w, G] predicted model classes (argmax of class logits).
      target_class: i32[h, w] or i32[h, w, G] class targets.
      levels: number of energy levels.

    Returns:
      RGB image with a title row and G rows of 5 tiles.
    """
    maps = [np.asarray(m) for m in (target_energy, pred_energy, target_class, pred_class)]
    maps = [m[..., None] if m.ndim == 2 else m for m in maps]
    if any(m.ndim != 3 or m.shape != maps[0].shape for m in maps):
        raise ValueError(
            "training_panel: the four maps must share one shape [h, w] or [h, w, G]; got "
            f"{[m.shape for m in maps]}"
        )
    h, w, groups = maps[0].shape
    picture = _grey_to_rgb(image).resize((w, h), Image.Resampling.BILINEAR)
    font_size = max(10, w // 24)
    title_h = int(font_size * 1.6)
    panel = Image.new("RGB", (5 * w, title_h + groups * h), _WHITE)
    draw = ImageDraw.Draw(panel)
    titles = ("input", "energy target", "energy predicted", "class target", "class predicted")
    for col, title in enumerate(titles):
        draw.text((col * w + 4, 2), title, fill=(0, 0, 0), font=_font(font_size))
    for g in range(groups):
        tiles = (
            picture,
            energy_map_image(maps[0][..., g], levels=levels),
            energy_map_image(maps[1][..., g], levels=levels),
            class_map_image(maps[2][..., g]),
            class_map_image(maps[3][..., g]),
        )
        for col, tile in enumerate(tiles):
            panel.paste(tile, (col * w, title_h + g * h))
    return panel


def _read_records(records: epath.PathLike | Iterable[Mapping]) -> list[Mapping]:
    """Records from a JSONL file (one JSON object per line) or an iterable of dicts."""
    if not isinstance(records, (str, os.PathLike)):
        return list(records)
    out = []
    with epath.Path(records).open() as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(
                        f"{records}:{n}: not a JSON object ({e}); fix or drop the line"
                    ) from None
    return out


def _save(fig, out_png: epath.PathLike) -> epath.Path:
    """Render a matplotlib Figure to PNG through an Agg canvas (no pyplot state); `out_png`
    may be in a bucket, so the file is opened through epath."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    out_png = epath.Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    with out_png.open("wb") as f:
        fig.savefig(f, format="png", dpi=100)
    return out_png


def running_median(values: Sequence[float], window: int) -> np.ndarray:
    """The median of each value's trailing window of `window` values (fewer at the start).

    Batch-1 losses jump by 100x from crop to crop; a median shows the trend through spikes
    that a mean would follow.

    Args:
      values: f[n].
      window: values per median, at least 1.

    Returns:
      f64[n].
    """
    x = np.asarray(values, np.float64)
    return np.array([np.median(x[max(0, i - window + 1) : i + 1]) for i in range(len(x))])


# Validation figures the trainer logs (`train.train_and_evaluate`), drawn in one panel.
VALIDATION_KEYS = {
    "val_map50": "mAP@.5",
    "val_map": "mAP@[.5:.95]",
    "val_network_map50": "mAP@.5, network alone",
    "val_network_map": "mAP@[.5:.95], network alone",
}


def learning_curves(
    records: epath.PathLike | Iterable[Mapping],
    out_png: epath.PathLike,
    *,
    keys: Sequence[str] | None = None,
) -> epath.Path:
    """Plot each loss against step on a log axis, one panel per loss, and the validation
    mAPs (`VALIDATION_KEYS`, all classes) in a last panel; write a PNG.

    Every logged value is drawn faintly, and over it the running median of the last ~2 % of
    the values (at least 5): single-crop losses are noisy, the median is the trend.

    Args:
      records: path of the trainer's JSONL log, or an iterable of dicts; each record has a
        `step` and any number of numeric fields. Records without a given field are skipped for
        that curve (e.g. eval records mixed in with train records).
      out_png: where to write the plot.
      keys: fields to plot; default every numeric field whose name contains "loss".

    Returns:
      The PNG's path.
    """
    from matplotlib.figure import Figure

    rows = [r for r in _read_records(records) if "step" in r]
    if keys is None:
        keys = sorted(
            {k for r in rows for k, v in r.items() if "loss" in k and isinstance(v, (int, float))}
        )
    curves = {}
    for key in keys:
        pts = [
            (r["step"], r[key])
            for r in rows
            if isinstance(r.get(key), (int, float)) and math.isfinite(r[key]) and r[key] > 0
        ]
        if pts:
            curves[key] = tuple(np.asarray(v) for v in zip(*pts, strict=True))
    scores = {
        k: [(r["step"], r[k]) for r in rows if isinstance(r.get(k), (int, float))]
        for k in VALIDATION_KEYS
    }
    scores = {k: v for k, v in scores.items() if v}
    panels = len(curves) + bool(scores)
    fig = Figure(figsize=(8, 2.2 * max(1, panels) + 0.6))
    if not panels:
        ax = fig.add_subplot()
        ax.set_title(f"no positive values for {list(keys)} in {len(rows)} records")
    for i, (key, (steps, values)) in enumerate(curves.items()):
        ax = fig.add_subplot(panels, 1, i + 1)
        window = max(5, len(values) // 50)
        ax.plot(steps, values, color="tab:blue", alpha=0.2, linewidth=0.7, label="logged")
        ax.plot(
            steps, running_median(values, window), color="tab:blue", label=f"median of {window}"
        )
        ax.set_yscale("log")
        ax.set_ylabel(key)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="upper right", fontsize="small")
    if scores:
        ax = fig.add_subplot(panels, 1, panels)
        for key, pts in scores.items():
            steps, values = zip(*pts, strict=True)
            style = "--" if "network" in key else "-"
            ax.plot(steps, values, style, marker="o", markersize=3, label=VALIDATION_KEYS[key])
        ax.set_ylim(0, 1)
        ax.set_ylabel("validation")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize="small")
    fig.axes[-1].set_xlabel("step")
    fig.tight_layout()
    return _save(fig, out_png)


def precision_recall_plot(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]], out_png: epath.PathLike, *, title: str = ""
) -> epath.Path:
    """Plot precision against recall, one line per named curve, and write a PNG.

    Args:
      curves: name -> (recall f32[K], precision f32[K]).
      out_png: where to write the plot.
      title: plot title.

    Returns:
      The PNG's path.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 6))
    ax = fig.add_subplot()
    for name, (recall, precision) in curves.items():
        ax.plot(recall, precision, label=name)
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if curves:
        ax.legend(fontsize="small", loc="lower left", ncol=2 if len(curves) > 10 else 1)
    fig.tight_layout()
    return _save(fig, out_png)

"""One piece -> its page images and per-page DeepScoresV2 annotations (runs in a worker)."""

from __future__ import annotations

import dataclasses
import functools
import io
import os

import numpy as np
import verovio
from PIL import Image

from dwd_jax.classes import label_of
from dwd_jax.engrave import dsv2, dynamics, raster, svg_symbols
from dwd_jax.engrave.style import PageStyle

INK_THRESHOLD = 128  # Grey values below this count as ink (for `area`).


@dataclasses.dataclass(frozen=True)
class PieceTask:
    """Everything a worker needs to engrave one piece.

    Attributes:
      path: score file verovio loads (MusicXML, Humdrum, ABC, ...).
      key: `corpus.piece_key(path)`; names the piece's images and shard.
      style: how to engrave it.
      max_pages: pages engraved from the start of the piece, at most.
      images_dir, shard_path: where the PNGs and the piece's annotation shard go.
      engraver: which engraver's `engrave_piece` the workers hand it to ("verovio" or
        "lilypond", `generate.ENGRAVERS`).
      every_class: a generated piece is composed with every class's marks
        (`compose.compose(every_class=True)`).
    """

    path: str
    key: str
    style: PageStyle
    max_pages: int
    images_dir: str
    shard_path: str
    engraver: str = "verovio"
    every_class: bool = False


class EngraveError(RuntimeError):
    """verovio could not engrave a piece (it is skipped and counted)."""


@functools.cache
def toolkit() -> verovio.toolkit:
    """A verovio toolkit with its log silenced."""
    verovio.enableLog(verovio.LOG_OFF)  # import warnings would garble the progress bar
    return verovio.toolkit()


def image_filename(key: str, font: str, page: int) -> str:
    """DeepScoresV2-like page file name (theirs: `lg-5230237-aug-emmentaler--page-2.png`)."""
    return f"m21-{key}-{font.lower()}--page-{page}.png"


def engrave_piece(task: PieceTask) -> dict:
    """Engraves, rasterises and annotates the first pages of one piece; writes them.

    Images are written atomically, then the shard (so a shard on disk means its images are).

    Args:
      task: the piece.

    Returns:
      the shard: {"key", "pages": [{"filename", "width", "height", "annotations": [...]}]}.

    Raises:
      EngraveError: verovio cannot load the file or engraves no page.
    """
    tk = toolkit()
    tk.setOptions(task.style.verovio_options())
    if not tk.loadFile(task.path):
        raise EngraveError(f"verovio could not load {task.path}")
    onsets = {}
    for event in tk.renderToTimemap({"includeMeasures": False, "includeRests": False}):
        for note_id in event.get("on", []):
            onsets.setdefault(note_id, float(event["qstamp"]))
    width, height = task.style.width_px, task.style.height_px
    pages = []
    for number in range(1, min(tk.getPageCount(), task.max_pages) + 1):
        svg = dynamics.split_combined(tk.renderToSVG(number), task.style.font)
        symbols, view_box = svg_symbols.parse_page(svg, task.style.font)
        image = raster.rasterize(svg, width, height)
        annotations = page_annotations(symbols, view_box, image, tk, onsets)
        if annotations:
            pages.append(save_page(task, number, image, annotations))
    if not pages:
        raise EngraveError(f"verovio engraved no annotated page from {task.path}")
    return save_shard(task, pages)


def save_page(task: PieceTask, number: int, image: np.ndarray, annotations: list[dict]) -> dict:
    """Writes one page image (atomically) and returns its shard record.

    Args:
      task: the piece (names the file, gives the images folder and the font).
      number: the page's number in the piece, from 1.
      image: u8[H, W] the page.
      annotations: its records (`symbol_records`).

    Returns:
      {"filename", "width", "height", "annotations"}.
    """
    filename = image_filename(task.key, task.style.font, number)
    buf = io.BytesIO()
    # zlib level 1: about 1.5x quicker to write than the default 6, for ~30 % more disk.
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    dsv2.write_atomic(os.path.join(task.images_dir, filename), buf.getvalue())
    height, width = image.shape
    return {"filename": filename, "width": width, "height": height, "annotations": annotations}


def save_shard(task: PieceTask, pages: list[dict]) -> dict:
    """Writes the piece's shard (after its images, so a shard on disk means they are)."""
    shard = {"key": task.key, "pages": pages}
    dsv2.write_atomic(task.shard_path, dsv2.dumps(shard))
    return shard


def page_annotations(symbols: list[svg_symbols.Symbol], view_box, image: np.ndarray,
                     tk: verovio.toolkit, onsets: dict[str, float]) -> list[dict]:
    """DeepScoresV2 annotation records of one page.

    Args:
      symbols: from `svg_symbols.parse_page` (viewBox units).
      view_box: (x, y, w, h) of the page SVG.
      image: u8[H, W] rendered page (255 = paper).
      tk: the toolkit holding the piece (for note durations).
      onsets: MEI note id -> onset in quarter notes from the piece's start.

    Returns:
      records as `symbol_records`.
    """
    return symbol_records(symbols, view_box, image,
                          [_notehead_comments(sym, tk, onsets) for sym in symbols])


def symbol_records(symbols: list[svg_symbols.Symbol], view_box, image: np.ndarray,
                   comments: list[str]) -> list[dict]:
    """DeepScoresV2 annotation records of boxed symbols, whichever engraver drew them.

    Args:
      symbols: class names and boxes in the page SVG's viewBox units.
      view_box: (x, y, w, h) of the page SVG.
      image: u8[H, W] rendered page (255 = paper).
      comments: one DeepScores `comments` string per symbol ("" for most).

    Returns:
      records {"a_bbox", "o_bbox", "cat_id", "area", "comments"}; boxes in pixels, clipped to
      the page; symbols wholly outside it are dropped.
    """
    height, width = image.shape
    scale, dx, dy = raster.page_transform(view_box, width, height)
    # DeepScoresV2's `area` is the pixel count of the symbol's own mask; ours counts all ink
    # in its box (neighbours overlap a box's corners only, except staff lines under glyphs).
    ink = image < INK_THRESHOLD
    out = []
    for sym, comment in zip(symbols, comments, strict=True):
        x0, y0, x1, y1 = (sym.box[0] * scale + dx, sym.box[1] * scale + dy,
                          sym.box[2] * scale + dx, sym.box[3] * scale + dy)
        x0, y0, x1, y1 = max(x0, 0.0), max(y0, 0.0), min(x1, width), min(y1, height)
        if x1 <= x0 or y1 <= y0:
            continue
        c0, r0 = int(x0), int(y0)
        c1, r1 = max(int(np.ceil(x1)), c0 + 1), max(int(np.ceil(y1)), r0 + 1)
        area = int(np.count_nonzero(ink[r0:r1, c0:c1]))
        box = [round(v, 3) for v in (x0, y0, x1, y1)]
        out.append({
            "a_bbox": box,
            # Axis-aligned symbols: the oriented box is the same rectangle, in DeepScoresV2's
            # corner order (x1,y1), (x1,y0), (x0,y0), (x0,y1).
            "o_bbox": [box[2], box[3], box[2], box[1], box[0], box[1], box[0], box[3]],
            "cat_id": str(label_of(sym.name) + 1),
            "area": area,
            "comments": comment,
        })
    return out


def _notehead_comments(sym: svg_symbols.Symbol, tk: verovio.toolkit,
                       onsets: dict[str, float]) -> str:
    """DeepScores-extended `onset:..;rel_position:..;duration:..;` of a notehead, else ""."""
    if not sym.note_id:
        return ""
    fields = []
    if sym.note_id in onsets:
        fields.append(f"onset:{onsets[sym.note_id]:g}")
    fields.append(f"rel_position:{sym.rel_position}")
    dur = tk.getElementAttr(sym.note_id).get("dur")
    if dur is None and sym.chord_id:
        dur = tk.getElementAttr(sym.chord_id).get("dur")
    if dur is not None and dur.isdigit():  # MEI @dur: 1 whole, 2 half, 4 quarter, ...
        fields.append(f"duration:{int(dur)}")
    return "".join(f + ";" for f in fields)

"""Pages in, detections out: loading, staff-space rescaling, tiling, proposals and overlays.

Real pages come at any resolution, so each page is rescaled until its staff-line spacing equals
the spacing the model was trained at (`config.detect.staff_space`, in model-input pixels). The
spacing is measured on the page itself, from the period of its horizontal strokes and its
vertical run lengths (`estimate_staff_space`), or a fixed `config.detect.scale` overrides it.
A page still larger than `config.detect.max_pixels` at model scale is cut into full-width
horizontal bands that overlap by `config.detect.overlap` pixels; each band keeps the
detections whose centre lies in its own share of the overlap, so every object is reported once.
Bands span the full width because staffs, beams and slurs are wide; only a page too wide even
for a thin band is scaled down further, with a message.

The model is reached through a `Predictor` (`submit(bands u8[B, h, w])`, see the class): grey
bands at model scale (0 = ink, 255 = paper, padded white to `data.pad_multiple`), and per band
its valid detections in that band's pixels (boxes [y0, x0, y1, x1], model classes, scores),
optionally with the decoder's status ("overflow", "ccl_converged": bools). A plain
`predict_fn(band u8[h, w]) -> {"boxes", "classes", "scores"}` serves as a predictor of batch
size 1. `detect_stream` runs many pages through it: host work (loading, rescaling, refining)
overlaps the device's, and bands of one padded shape share a batch. `inference.Detector` is
the trained model's predictor; this module never imports the model.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import cv2
import ml_collections
import numpy as np
import scipy.fft
import tqdm
from etils import epath
from PIL import Image, UnidentifiedImageError

from dwd_jax import classes as classes_lib
from dwd_jax import hosts, omr, visualize
from dwd_jax import image as image_lib
from dwd_jax import paths as paths_lib
from dwd_jax.omr import capture

PredictFn = Callable[[np.ndarray], Mapping[str, np.ndarray]]

_log = logging.getLogger(__name__)


class PageError(ValueError):
    """A page cannot be read or measured; the message names the file and what to do."""


# --- Loading ------------------------------------------------------------------------------------


# Files a folder is searched for (recursively); any other file named directly is still tried.
PAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".pdf")


class PageRef(NamedTuple):
    """One page of an input file: `index` of `count` pages (PDFs and TIFFs hold several);
    `error` says why the file gives no page."""

    path: Path
    index: int = 0
    count: int = 1
    error: str | None = None

    @property
    def name(self) -> str:
        """How outputs name the page: the file name, with `#<page>` in a multi-page file."""
        return self.path.name if self.count == 1 else f"{self.path.name}#{self.index + 1}"

    @property
    def stem(self) -> str:
        return self.path.stem if self.count == 1 else f"{self.path.stem}_p{self.index + 1}"


def page_refs(paths: Sequence[str | Path]) -> list[PageRef]:
    """The pages of files and folders (searched recursively for `PAGE_SUFFIXES`, in name
    order); a file that cannot be opened, or a folder with no page, is one ref with its error."""
    refs = []
    for path in map(Path, paths):
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in PAGE_SUFFIXES)
            if not files:
                error = f"{path}: a folder with no page ({', '.join(PAGE_SUFFIXES)}) in it"
                refs.append(PageRef(path, error=error))
            for file in files:
                refs += _file_refs(file)
        else:
            refs += _file_refs(path)
    return refs


def _file_refs(path: Path) -> list[PageRef]:
    try:
        count = _page_count(path)
    except PageError as e:
        return [PageRef(path, error=str(e))]
    if count == 0:
        return [PageRef(path, error=f"{path}: the document has no pages; nothing to detect")]
    return [PageRef(path, i, count) for i in range(count)]


def _page_count(path: Path) -> int:
    _check_file(path)
    if path.suffix.lower() == ".pdf":
        with _open_pdf(path) as pdf:
            return len(pdf)
    try:
        with Image.open(path) as im:
            return getattr(im, "n_frames", 1)
    except UnidentifiedImageError:
        raise PageError(
            f"{path}: not an image Pillow can read; pass PNG, JPEG, TIFF or PDF pages"
        ) from None
    except (OSError, SyntaxError) as e:
        raise PageError(f"{path}: unreadable image ({e}); re-export or re-download it") from None


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise PageError(f"{path}: no such file or folder; check the path")
    if path.stat().st_size == 0:
        raise PageError(f"{path}: the file is empty (0 bytes); re-export or re-download it")


@contextlib.contextmanager
def _open_pdf(path: Path):
    import pypdfium2

    try:
        pdf = pypdfium2.PdfDocument(str(path))
    except pypdfium2.PdfiumError as e:
        # PDFium refuses a document without pages as malformed too.
        raise PageError(
            f"{path}: not a readable PDF, or one with no pages ({e}); re-export or re-download it"
        ) from None
    try:
        yield pdf
    finally:
        pdf.close()


def load_page(path: str | Path, index: int = 0, *, dpi: float = 300.0) -> np.ndarray:
    """Read a page as 8-bit grey, 0 = black ink, 255 = white paper.

    PNG, JPEG, TIFF (and anything else Pillow reads); grey, palette, RGB, RGBA/LA (composited
    on white, so transparent paper becomes white paper, as DeepScoresV2's RGBA pages need),
    16-bit (0..65535 scaled to 0..255) and 32-bit float (clipped to 0..255); PDF pages
    rendered at `dpi` (pypdfium2). `index` picks a page of a multi-page TIFF or PDF.

    Args:
      path: image or PDF file.
      index: the page, from 0.
      dpi: resolution PDF pages are rendered at.

    Returns:
      u8[H, W].

    Raises:
      PageError: the file is missing, not an image, truncated, or has zero size.
    """
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() == ".pdf":
        with _open_pdf(path) as pdf:
            if not 0 <= index < len(pdf):
                raise PageError(f"{path}: no page {index + 1} in a {len(pdf)}-page PDF")
            bitmap = pdf[index].render(scale=dpi / 72.0, grayscale=True)
            return image_lib.to_grey(bitmap.to_numpy(), name=f"{path} page {index + 1}")
    if 0 in _png_size(path):
        raise PageError(f"{path}: the image has zero width or height; nothing to detect")
    try:
        with Image.open(path) as im:
            im.seek(index)
            im.load()
            page = image_lib.to_grey(im, name=str(path))
    except UnidentifiedImageError:
        raise PageError(
            f"{path}: not an image Pillow can read; pass PNG, JPEG, TIFF or PDF pages"
        ) from None
    except EOFError:
        raise PageError(f"{path}: no page {index + 1} in this image file") from None
    except (OSError, SyntaxError, Image.DecompressionBombError) as e:
        raise PageError(f"{path}: unreadable image ({e}); re-export or re-download it") from None
    if page.size == 0:
        raise PageError(f"{path}: the image has zero size {page.shape}; nothing to detect")
    return page


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG header; (-1, -1) for other files.

    Pillow refuses to open a PNG of zero width or height as "not an image"; reading the header
    lets `load_page` name the real problem.
    """
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or len(head) < 24:
        return -1, -1
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


# --- Staff space and scale ---------------------------------------------------------------------


def _vertical_runs(mask: np.ndarray) -> np.ndarray:
    """Lengths of the vertical runs of True in a bool[H, W] mask, column by column."""
    # Column-major with a False row at each end, so runs never join across columns.
    flat = np.pad(mask.T, ((0, 0), (1, 1))).ravel().astype(np.int8)
    steps = np.diff(flat)
    return np.flatnonzero(steps == -1) - np.flatnonzero(steps == 1)


def _refined_mode(lengths: np.ndarray) -> float:
    """The most common run length, refined to sub-pixel by its two neighbouring bins.

    A line 2.4 px thick, or a gap of 20.5 px, shows up as runs of two neighbouring integer
    lengths; the count-weighted mean of the mode and its neighbours recovers the fraction.
    """
    counts = np.bincount(lengths).astype(np.float64)
    counts[0] = 0
    mode = int(counts.argmax())
    lo, hi = max(mode - 1, 1), min(mode + 2, len(counts))
    bins = np.arange(lo, hi)
    return float((bins * counts[lo:hi]).sum() / counts[lo:hi].sum())


def _line_autocorrelation(flat: np.ndarray, column_step: int = 4) -> np.ndarray:
    """Vertical autocorrelation of a page's long horizontal strokes, summed over its columns.

    Grey opening with a horizontal segment a hundredth of the page wide keeps staff lines (and
    beams) and removes note heads, stems and text, whose blobs would otherwise give the
    autocorrelation a broad hump that hides a faint staff's peak.

    Args:
      flat: u8[H, W] flattened page (`capture.flatten`), 0 = ink.
      column_step: every this many columns are read (the lines span the page).

    Returns:
      f32[H // 2] autocorrelation at lags 0.., normalised to 1 at lag 0 (0 on a blank page).
    """
    dark = 255 - flat
    segment = np.ones((1, max(3, flat.shape[1] // 100)), np.uint8)
    # Columns as contiguous rows, in float32: scipy's transform keeps the precision (numpy's
    # would compute in float64, at five times the cost).
    lines = cv2.morphologyEx(dark, cv2.MORPH_OPEN, segment)[:, ::column_step]
    lines = np.ascontiguousarray(lines.T)
    lines = lines.astype(np.float32) - lines.mean(axis=1, keepdims=True, dtype=np.float32)
    height = lines.shape[1]
    size = scipy.fft.next_fast_len(2 * height, real=True)  # Zero-padded: no wrap-around.
    spectrum = scipy.fft.rfft(lines, n=size, axis=1)
    # The columns' autocorrelations summed: one inverse transform of their summed power.
    power = (spectrum.real**2 + spectrum.imag**2).sum(axis=0)
    corr = scipy.fft.irfft(power, n=size)[: height // 2]
    return (corr / corr[0] if corr[0] > 0 else np.zeros_like(corr)).astype(np.float32)


def _spacing_score(corr: np.ndarray, spacing: np.ndarray | float) -> np.ndarray:
    """How much the autocorrelation peaks at each `spacing` (f32[N] or a float) over a
    quarter of it either side: the lines of a staff coincide at lags of one spacing and fall
    between at 0.75 and 1.25."""
    lags = np.arange(len(corr))
    below, at, above = (np.interp(f * np.asarray(spacing), lags, corr) for f in (0.75, 1, 1.25))
    return at - (below + above) / 2


_PERIOD_STEP = 0.25  # px between the spacings `_staff_period` first scores...
_FINE_STEP = 0.05  # ...and between those it refines the winner over.
_RUNS_NEAR = 0.1  # A peak within this relative distance of a run spacing bears it out.
_OCTAVE = 0.5  # The half of the best borne-out peak wins with this share of its score.
_STRONG_PEAK = 0.25  # Else: the smallest peak with this share of the top score that
_HARMONIC = 0.35  # repeats at twice its lag with this share of its own score.
_RUNS_AGREE = 0.02  # Relative distance within which a run spacing replaces the period.


def _run_spacings(flat: np.ndarray) -> list[float]:
    """Staff spacings that the page's vertical runs suggest (classic OMR), in pixels.

    Staff lines dominate a clean music page's vertical runs: the most common black run is the
    line thickness and the most common white run the gap between two lines, so the spacing
    (line centre to line centre) is their sum. Read at the fixed ink level and at the
    flattened page's Otsu level (a blurred capture's lines can be lighter than the fixed
    level); each sum and its half (on pages dense with beamed notes the runs give twice the
    spacing).

    Args:
      flat: u8[H, W] flattened page, 0 = ink.

    Returns:
      Up to four spacings, the fixed level's first; none where no level's runs look like
      lines (thinner than the gaps between them).
    """
    # OpenCV puts greys up to Otsu's level in the dark class.
    level, _ = cv2.threshold(flat, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    spacings = []
    for ink_mask in (flat < capture.INK_BELOW, flat <= level):
        black, white = _vertical_runs(ink_mask), _vertical_runs(~ink_mask)
        if black.size and white.size:
            thickness, gap = _refined_mode(black), _refined_mode(white)
            if thickness < gap < ink_mask.shape[0] / 8:  # Else beams or noise, not lines.
                spacings += [thickness + gap, (thickness + gap) / 2]
    return spacings


def _repeats(score: np.ndarray, grid: np.ndarray, i: int) -> bool:
    """Whether the `_spacing_score` peak at grid[i] recurs at about twice its lag with at
    least `_HARMONIC` of its score."""
    twice = score[(grid >= 1.9 * grid[i]) & (grid <= 2.1 * grid[i])]
    return bool(twice.size) and twice.max() >= _HARMONIC * score[i]


def _staff_period(corr: np.ndarray, runs: Sequence[float]) -> float | None:
    """The staff-line spacing that the horizontal strokes' autocorrelation bears out, in px.

    Candidates are the peaks of `_spacing_score` that bear out a run spacing (within 10 %: on a
    page dense with beams the peak shifts off the lines' spacing); the highest wins, or its half
    where that is a candidate too and scores about as high (`_OCTAVE`), since a staff's lines
    also coincide at two spacings. Where no run spacing is borne out (the runs measured beams,
    or noise, on a blurred or photographed page), the smallest strong peak that repeats at twice
    its lag wins: a staff's lines are one and two spacings apart, while a beam's thickness or a
    burst of noise makes a peak that does not repeat. Not simply the highest peak: on a regular
    page the distance from one staff to the next repeats more strongly still, so no peak beyond
    a twentieth of the page is taken. Where neither holds, the run spacing at which the strokes
    repeat most. The winner is then refined within 5 % to the spacing whose first four multiples
    (a five-line staff's lags) score highest together, which averages out lines that lie on
    whole pixels (gaps of 12 and 13 px where the staff's spacing is 12.5).

    Args:
      corr: f32[L] `_line_autocorrelation`.
      runs: `_run_spacings` of the same page.

    Returns:
      The spacing in pixels, or None where no lag scores above 0 (no repeating strokes) or
      neither a peak nor a run spacing qualifies.
    """
    grid = np.arange(2.0, (len(corr) - 1) / 1.25, _PERIOD_STEP)
    if grid.size < 3:
        return None
    score = _spacing_score(corr, grid)
    top = score.max()
    if top <= 0:
        return None
    inner = score[1:-1]
    peaks = 1 + np.flatnonzero((inner >= score[:-2]) & (inner >= score[2:]) & (inner > 0))
    borne_out = {}  # Peak index -> score, for the best peak near each run spacing.
    for spacing in runs:
        near = [i for i in peaks if abs(grid[i] - spacing) <= _RUNS_NEAR * spacing]
        if near:
            best = max(near, key=lambda i: score[i])
            borne_out[best] = score[best]
    if borne_out:
        peak = grid[max(borne_out, key=borne_out.get)]
        # The lines coincide at twice their spacing too: a borne-out peak at about half the
        # winner's lag that scores about as high is the spacing.
        halves = [i for i in borne_out if abs(2 * grid[i] - peak) <= _RUNS_NEAR * peak]
        halves = [i for i in halves if borne_out[i] >= _OCTAVE * max(borne_out.values())]
        peak = min([grid[i] for i in halves] + [peak])
    else:
        # The staff-to-staff distance repeats at twice its lag too: a peak beyond a tenth
        # of the correlation (a twentieth of the page) is not taken for the spacing.
        strong = [i for i in peaks if grid[i] <= len(corr) / 10 and score[i] >= _STRONG_PEAK * top]
        repeating = [i for i in strong if _repeats(score, grid, i)]
        if repeating:
            peak = grid[repeating[0]]
        elif runs:  # Neither bears the other out: the best-scoring run spacing.
            peak = max(runs, key=lambda spacing: float(_spacing_score(corr, spacing)))
        else:
            return None
    fine = np.arange(0.95 * peak, 1.05 * peak, _FINE_STEP)
    multiples = [k for k in range(1, 5) if 1.25 * k * fine[-1] < len(corr) - 1] or [1]
    together = sum(_spacing_score(corr, k * fine) for k in multiples)
    return float(fine[together.argmax()])


def estimate_staff_space(page: np.ndarray) -> float:
    """Staff-line spacing of a page in pixels: the period of its horizontal strokes
    (`_staff_period`), made exact by its vertical runs (`_run_spacings`) where they agree.

    The runs are exact on a clean page, but on a blurred, photographed or beam-laden page
    they may measure beams or noise; the period holds wherever the staff lines show at all,
    if only as faint grey. The first run spacing within 2 % of the period is returned, else
    the period.

    Args:
      page: u8[H, W] grey page, 0 = ink.

    Returns:
      Staff spacing in pixels of `page`.

    Raises:
      PageError: the page is one grey (blank or all ink), or has no horizontal strokes that
        repeat down the page.
    """
    flat = capture.flatten(page)
    if flat.min() == flat.max():
        raise PageError(
            f"no staff lines found on a page of shape {flat.shape} (it is blank or all "
            "ink); set config.detect.scale to rescale it by a fixed factor"
        )
    runs = _run_spacings(flat)
    period = _staff_period(_line_autocorrelation(flat), runs)
    if period is None:
        raise PageError(
            f"no staff-line pattern found on a page of shape {flat.shape} (no horizontal "
            "strokes that repeat down the page); set config.detect.scale instead"
        )
    return next((r for r in runs if abs(r - period) <= _RUNS_AGREE * period), period)


def page_scale(page: np.ndarray, config: ml_collections.ConfigDict) -> tuple[float, float | None]:
    """The factor that brings a page to the model's staff spacing.

    Args:
      page: u8[H, W].
      config: uses detect.scale (> 0: fixed, skips the estimate) and detect.staff_space.

    Returns:
      (scale, measured staff space in page pixels, or None when the scale was fixed).
    """
    if config.detect.scale > 0:
        return float(config.detect.scale), None
    space = estimate_staff_space(page)
    return config.detect.staff_space / space, space


# --- Bands for big pages -----------------------------------------------------------------------


def band_layout(
    height: int, width: int, *, max_pixels: int, overlap: int, multiple: int
) -> tuple[int, list[tuple[int, int, int]]]:
    """Cut a page into overlapping full-width bands of one height, each under `max_pixels`.

    Args:
      height, width: page size at model scale.
      max_pixels: most pixels one forward pass may see (after padding to `multiple`).
      overlap: rows shared by neighbouring bands; at least the tallest object's height, so an
        object cut by one band's edge lies whole in the other.
      multiple: band heights are multiples of this (config.data.pad_multiple).

    Returns:
      (band height, [(start, keep_from, keep_to)] per band): a band is rows
      [start, start + band height) and keeps detections whose centre row is in
      [keep_from, keep_to); the keep ranges partition [0, height). A page that fits is one band
      (0, 0, height) of its own height.

    Raises:
      ValueError: the page is too wide for a band of 2 * overlap rows (see `max_band_width`).
    """
    padded_w = math.ceil(width / multiple) * multiple
    if math.ceil(height / multiple) * multiple * padded_w <= max_pixels:
        return height, [(0, 0, height)]
    band = (max_pixels // padded_w) // multiple * multiple
    if band < 2 * overlap:
        raise ValueError(
            f"a {width}-pixel-wide page leaves bands of {band} rows under max_pixels="
            f"{max_pixels}, less than twice the overlap {overlap}; scale the page down to at "
            f"most {max_band_width(max_pixels=max_pixels, overlap=overlap, multiple=multiple)} px"
        )
    step = band - overlap
    starts = list(range(0, height - band, step)) + [height - band]
    bounds = [0] + [(s + t + band) // 2 for s, t in zip(starts, starts[1:], strict=False)]
    keep = zip(starts, bounds, bounds[1:] + [height], strict=True)
    return band, list(keep)


def max_band_width(*, max_pixels: int, overlap: int, multiple: int) -> int:
    """Widest page (model-scale pixels) that `band_layout` can cut into bands."""
    rows = math.ceil(2 * overlap / multiple) * multiple
    return max_pixels // rows // multiple * multiple


# --- One page ----------------------------------------------------------------------------------


def pad_white(pages: np.ndarray, multiple: int) -> np.ndarray:
    """Pads [..., h, w] with paper (255) at the bottom and right to multiples of `multiple`."""
    h, w = pages.shape[-2:]
    pad = [(0, 0)] * (pages.ndim - 2) + [(0, -h % multiple), (0, -w % multiple)]
    return np.pad(pages, pad, constant_values=255)


def _check_prediction(pred: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """predict_fn's output as (boxes f32[N, 4], classes i32[N], scores f32[N]), validated."""
    missing = {"boxes", "classes", "scores"} - set(pred)
    if missing:
        raise ValueError(
            f"predict_fn returned no {sorted(missing)}; it must return boxes, "
            "classes and scores of the valid detections"
        )
    boxes = np.asarray(pred["boxes"], np.float32).reshape(-1, 4)
    classes = np.asarray(pred["classes"]).reshape(-1).astype(np.int32)
    scores = np.asarray(pred["scores"], np.float32).reshape(-1)
    if not len(boxes) == len(classes) == len(scores):
        raise ValueError(
            f"predict_fn returned {len(boxes)} boxes, {len(classes)} classes and {len(scores)} "
            "scores; drop padded detections (valid == False) and return one of each per object"
        )
    return boxes, classes, scores


class Layout(NamedTuple):
    """How a page was brought to model scale and cut into bands (`prepare_page`)."""

    page_shape: tuple[int, int]
    scaled_shape: tuple[int, int]
    scale: float
    staff_space: float | None
    bands: list[tuple[int, int, int]]
    notes: list[str]


def prepare_page(
    page: np.ndarray, *, config: ml_collections.ConfigDict
) -> tuple[np.ndarray, Layout]:
    """A page at model scale, cut into bands of one padded shape: the host half of detection.

    With `detect.even_light` the page is first lit evenly (`capture.even_light`: a
    photograph's shadows taken out; an engraved page stays as it is, bit for bit). It is
    rescaled (`page_scale`, `image.resize`: the training resampler), cut into bands if large
    (`band_layout`), and each band padded white to `data.pad_multiple`, which is also the
    bucket that batches pages of similar sizes into one compiled shape.

    Args:
      page: u8[H, W] grey page (e.g. from `load_page`).
      config: uses detect.* and data.pad_multiple.

    Returns:
      (bands u8[n, h, w], layout).

    Raises:
      PageError: no staff lines to measure the page's scale by.
    """
    d = config.detect
    scale, space = page_scale(page, config)
    if d.even_light:
        page = capture.even_light(page, space)
    notes = []
    multiple = config.data.pad_multiple
    widest = max_band_width(max_pixels=d.max_pixels, overlap=d.overlap, multiple=multiple)
    if round(page.shape[1] * scale) > widest:
        shrink = (widest - 1) / (page.shape[1] * scale)
        notes.append(
            f"page is {round(page.shape[1] * scale)} px wide at model scale, wider than the "
            f"{widest} px that detect.max_pixels={d.max_pixels} allows; scaled by a further "
            f"{shrink:.3f}, so symbols are smaller than in training and detection may suffer"
        )
        scale *= shrink
    scaled = image_lib.resize(page, scale)
    h, w = scaled.shape
    band_h, bands = band_layout(h, w, max_pixels=d.max_pixels, overlap=d.overlap, multiple=multiple)
    if len(bands) > 1:
        notes.append(f"page is {h}x{w} px at model scale; detected in {len(bands)} bands")
    images = pad_white(np.stack([scaled[s : s + band_h] for s, _, _ in bands]), multiple)
    return images, Layout(page.shape, (h, w), scale, space, bands, notes)


def assemble(
    page: np.ndarray,
    layout: Layout,
    predictions: Sequence[Mapping[str, np.ndarray]],
    *,
    config: ml_collections.ConfigDict,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """The bands' predictions as one page's detections in its own pixels (`network_detections`).

    Args:
      page: u8[H, W], the page `layout` was made from.
      layout: from `prepare_page`.
      predictions: one per band, as a predictor's (see the module docstring).
      config: uses detect.staff_space.
    """
    out, overflow, converged = [], False, True
    for (start, keep_from, keep_to), pred in zip(layout.bands, predictions, strict=True):
        overflow |= bool(pred.get("overflow", False))
        converged &= bool(pred.get("ccl_converged", True))
        boxes, classes, scores = _check_prediction(pred)
        boxes = boxes + np.float32([start, 0, start, 0])
        centre = (boxes[:, 0] + boxes[:, 2]) / 2
        keep = (centre >= keep_from) & (centre < keep_to)
        out.append((boxes[keep], classes[keep], scores[keep]))
    (h, w), (page_h, page_w) = layout.scaled_shape, layout.page_shape
    # Per-axis factors: rounding the page size makes them differ slightly from `scale`.
    factors = np.float32([h / page_h, w / page_w] * 2)
    limits = np.float32([page_h, page_w] * 2)
    boxes = np.clip(np.concatenate([o[0] for o in out]) / factors, 0, limits)
    for note in layout.notes:
        _log.info(note)
    page_space = layout.staff_space
    if page_space is None:  # A fixed scale: the post-processing still needs the page's own.
        try:
            page_space = estimate_staff_space(page)
        except PageError:
            page_space = config.detect.staff_space / layout.scale  # No staff lines: nominal.
    info = {
        "staff_space": layout.staff_space,
        "page_staff_space": page_space,
        "scale": layout.scale,
        "bands": len(layout.bands),
        "overflow": overflow,
        "ccl_converged": converged,
        "notes": layout.notes,
    }
    classes = np.concatenate([o[1] for o in out])
    return boxes.astype(np.float32), classes, np.concatenate([o[2] for o in out]), info


# --- Batches of pages on the device -------------------------------------------------------------


class Predictor(Protocol):
    """The model as the page path sees it: bands in, predictions out, in batches.

    `submit(bands u8[batch_size, h, w])` starts the model on a batch of equally shaped bands
    (padded white) and returns at once a function that waits for the results: one prediction
    per band, as `{"boxes", "classes", "scores"[, "overflow", "ccl_converged"]}` (see the
    module docstring). Returning before the results are ready lets the host prepare the next
    pages and refine the last ones while the device works (`inference.Detector`).
    """

    batch_size: int

    def submit(self, bands: np.ndarray) -> Callable[[], Sequence[Mapping[str, np.ndarray]]]: ...


class _PerBand:
    """A `PredictFn` (one band per call, synchronous) as a `Predictor` of batch size 1."""

    batch_size = 1

    def __init__(self, predict_fn: PredictFn):
        self._predict_fn = predict_fn

    def submit(self, bands: np.ndarray) -> Callable[[], list[Mapping[str, np.ndarray]]]:
        results = [self._predict_fn(band) for band in bands]
        return lambda: results


def as_predictor(model: Predictor | PredictFn) -> Predictor:
    """`model` itself if it has `submit`, else the one-band function wrapped as a Predictor."""
    return model if hasattr(model, "submit") else _PerBand(model)


class Done(NamedTuple):
    """One input of `detect_stream`, finished: its `payload` from the loader, the page, and
    `network_detections`' output, or the error that stopped it (page and detections None)."""

    index: int
    payload: Any
    page: np.ndarray | None
    detections: tuple[np.ndarray, np.ndarray, np.ndarray, dict] | None
    error: Exception | None


Loader = Callable[[], tuple[np.ndarray, Any]]


def detect_stream(
    loaders: Sequence[Loader],
    model: Predictor | PredictFn,
    *,
    config: ml_collections.ConfigDict,
    prefetch: int = 4,
) -> Iterator[Done]:
    """The network's detections of many pages, batched on the device, in input order.

    A worker thread loads and prepares the next `prefetch` pages (`prepare_page`) while the
    device runs; bands of one padded shape are batched `model.batch_size` at a time (the last
    or a long-waiting batch is filled with white bands), and up to two batches are in flight.
    A page whose loading, preparation or batch fails is yielded with its error; the rest go on.

    Args:
      loaders: one per page: `loader() -> (u8[H, W] page, payload)`; the payload (e.g. the
        page's ground truth or file) is handed back with the detections.
      model: a `Predictor` (e.g. `inference.Detector`) or a one-band `PredictFn`.
      config: uses detect.*, data.pad_multiple.
      prefetch: pages loaded and prepared ahead.

    Yields:
      `Done` per loader, in the loaders' order.
    """
    predictor = as_predictor(model)
    size = predictor.batch_size
    # A page waits in a partial batch until its shape fills one; past this many waiting pages
    # the oldest shape's batch goes padded, so memory stays bounded on a folder of odd sizes.
    max_waiting = max(4 * size, prefetch)

    def prepare(loader: Loader):
        page, payload = loader()
        return page, payload, *prepare_page(page, config=config)

    waiting: dict[int, list] = {}  # index -> [page, payload, layout, predictions by band]
    queues: dict[tuple[int, ...], list[tuple[int, int, np.ndarray]]] = {}
    in_flight: collections.deque = collections.deque()
    finished: dict[int, Done] = {}

    def fail(index: int, error: Exception) -> None:
        payload = waiting.pop(index)[1] if index in waiting else None
        finished[index] = Done(index, payload, None, None, error)

    def dispatch(shape: tuple[int, ...]) -> None:
        entries = queues.pop(shape)
        bands = np.stack([band for _, _, band in entries])
        if len(entries) < size:
            blank = np.full((size - len(entries), *shape), 255, np.uint8)
            bands = np.concatenate([bands, blank])
        try:
            in_flight.append((entries, predictor.submit(bands)))
        except Exception as e:  # The batch's pages fail; the others go on.
            for index in {i for i, _, _ in entries}:
                fail(index, e)
        if len(in_flight) > 2:
            complete()

    def complete() -> None:
        entries, result = in_flight.popleft()
        try:
            predictions = list(result())
        except Exception as e:
            for index in {i for i, _, _ in entries}:
                if index in waiting:
                    fail(index, e)
            return
        for (index, band, _), pred in zip(entries, predictions, strict=False):
            if index not in waiting:  # Failed in another batch.
                continue
            state = waiting[index]
            state[3][band] = pred
            if all(p is not None for p in state[3]):
                page, payload, layout, preds = waiting.pop(index)
                try:
                    found = assemble(page, layout, preds, config=config)
                    finished[index] = Done(index, payload, page, found, None)
                except Exception as e:
                    finished[index] = Done(index, payload, None, None, e)

    def oldest_queue() -> tuple[int, ...]:
        return min(queues, key=lambda shape: queues[shape][0][0])

    next_out = 0
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        ahead = collections.deque(
            pool.submit(prepare, loader) for loader in loaders[:prefetch]
        )
        for index in range(len(loaders)):
            future = ahead.popleft()
            if index + prefetch < len(loaders):
                ahead.append(pool.submit(prepare, loaders[index + prefetch]))
            try:
                page, payload, bands, layout = future.result()
            except Exception as e:
                finished[index] = Done(index, None, None, None, e)
            else:
                waiting[index] = [page, payload, layout, [None] * len(bands)]
                for band, image in enumerate(bands):
                    queues.setdefault(image.shape, []).append((index, band, image))
                    if len(queues[image.shape]) == size:
                        dispatch(image.shape)
                while queues and len(waiting) > max_waiting:
                    dispatch(oldest_queue())
                while in_flight and len(waiting) > max_waiting:
                    complete()
            while next_out in finished:
                yield finished.pop(next_out)
                next_out += 1
        while queues:
            dispatch(oldest_queue())
        while in_flight:
            complete()
    while next_out in finished:
        yield finished.pop(next_out)
        next_out += 1


def network_detections(
    page: np.ndarray, model: Predictor | PredictFn, *, config: ml_collections.ConfigDict
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """The network's detections of one page (no re-measure on the ink), in the page's pixels.

    `prepare_page`, the model on each band, then `assemble`; `detect_stream` does the same
    for many pages at once.

    Args:
      page: u8[H, W] grey page (e.g. from `load_page`).
      model: a `Predictor` or a one-band `PredictFn` (see the module docstring).
      config: uses detect.* and data.pad_multiple.

    Returns:
      (boxes f32[N, 4] [y0, x0, y1, x1] in page pixels, classes i32[N] model classes,
      scores f32[N], info) where info records staff_space (measured for the rescale, page
      pixels, or None where the scale was fixed), page_staff_space (the page's own, measured
      when it has staff lines, else the nominal one; what post-processing uses), scale,
      bands, overflow (a band had more foreground or detections than the decoder's budget),
      ccl_converged (False if a band's connected components did not converge) and notes.

    Raises:
      PageError: the page cannot be measured; or whatever the model raised.
    """
    (done,) = detect_stream([lambda: (page, None)], model, config=config, prefetch=1)
    if done.error is not None:
        raise done.error
    return done.detections


def refine(
    page: np.ndarray,
    detections: tuple[np.ndarray, np.ndarray, np.ndarray, dict],
    *,
    config: ml_collections.ConfigDict,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`network_detections`' output re-measured on the page's ink (`omr.refine`, nothing when
    `config.omr.enabled` is off)."""
    *found, info = detections
    return omr.refine(page, tuple(found), config.omr, staff_space=info["page_staff_space"])


def detect_page(
    page: np.ndarray, model: Predictor | PredictFn, *, config: ml_collections.ConfigDict
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Detect the symbols of one page: `network_detections`, then `refine`.

    Args:
      page: u8[H, W] grey page (e.g. from `load_page`).
      model: a `Predictor` or a one-band `PredictFn` (see the module docstring).
      config: uses detect.*, decode.* and data.pad_multiple.

    Returns:
      (boxes f32[N, 4] [y0, x0, y1, x1] in page pixels, classes i32[N] model classes,
      scores f32[N], info) with info as in `network_detections`.
    """
    detections = network_detections(page, model, config=config)
    return (*refine(page, detections, config=config), detections[3])


# --- Many pages, files out ---------------------------------------------------------------------


def min_score_table(config: ml_collections.ConfigDict) -> np.ndarray:
    """f32[C]: the least score a detection of each model class needs to be written by
    `detect_pages`: `config.detect.class_min_scores` where it names the class, else
    `config.detect.min_score`.

    Raises:
      KeyError: naming an unknown class.
      ValueError: if an entry is not (class_name, score) with a score in [0, 1].
    """
    table = np.full(classes_lib.num_model_classes(config), config.detect.min_score, np.float32)
    for entry in config.detect.class_min_scores:
        if len(entry) != 2 or not 0.0 <= float(entry[1]) <= 1.0:
            raise ValueError(
                f"config.detect.class_min_scores entry {entry!r} must be (class_name, score) "
                "with a score in [0, 1]; benchmarks/score_thresholds.py prints a tuned one"
            )
        table[classes_lib.model_class(config, entry[0])] = float(entry[1])
    return table


def detect_pages(
    paths: Sequence[str | Path],
    model: Predictor | PredictFn,
    *,
    config: ml_collections.ConfigDict,
    out_dir: epath.PathLike,
    image_ids: Sequence[int] | None = None,
) -> dict:
    """Detect every page of files and folders and write proposals, COCO results and overlays.

    Inputs are expanded by `page_refs` (folders recursively; every page of a PDF, rendered at
    `config.detect.pdf_dpi`, or of a multi-page TIFF). A file or page that fails (missing,
    unreadable, not an image, no staff lines, a model error) is reported in the summary
    with its error, and the rest are still processed.

    Detections scored below their class's least score (`min_score_table`) are left out of
    every file.

    Writes to `out_dir`:
      proposals.json: DeepScoresV2 proposals (`obb_anns` format): {"annotation_set":
        "deepscores", "proposals": [{"img_id", "cat_id", "bbox": [x0, y0, x1, y1], "score"}]},
        cat_id = the DSv2 `deepscores` category id (= model class);
      coco_results.json: [{"image_id", "category_id", "bbox": [x, y, w, h], "score"}];
      <page stem>_overlay.png: class-coloured boxes and a legend, per page;
      detect_summary.json: the returned summary.

    Args:
      paths: image or PDF files, or folders of them.
      model: a `Predictor` (pages batched on the device) or a one-band `PredictFn`.
      config: uses detect.* and data.pad_multiple.
      out_dir: output folder (created), local or a bucket URI.
      image_ids: ids written as img_id / image_id, one per page (a failed file counts one),
        e.g. DeepScoresV2 image ids; default 1..n.

    Returns:
      {"pages": [{"path", "page", "name", "img_id", "ok", "error", "num_detections",
      "seconds", "staff_space", "scale", "bands", "overflow", "ccl_converged", "notes",
      "overlay"}], "proposals": path, "coco_results": path, "num_pages", "num_failed",
      "skipped": ["<name>: <error>"], "min_score", "class_min_scores": [[name, score]],
      "symbols_per_class": {name: count}, "seconds_per_page": float}.
    """
    out_dir = epath.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    refs = page_refs(paths)
    image_ids = list(image_ids) if image_ids is not None else list(range(1, len(refs) + 1))
    if len(image_ids) != len(refs):
        raise ValueError(f"{len(refs)} pages but {len(image_ids)} image_ids; pass one per page")
    names = visualize.MODEL_CLASS_NAMES
    min_scores = min_score_table(config)
    proposals, coco, pages, counts = [], [], [], collections.Counter()

    def loader(ref: PageRef) -> Loader:
        def load():
            if ref.error:
                raise PageError(ref.error)
            return load_page(ref.path, ref.index, dpi=config.detect.pdf_dpi), None

        return load

    start = last = time.perf_counter()
    mine = hosts.share(range(len(refs)))  # Each process its share; gathered below.
    stream = detect_stream([loader(refs[i]) for i in mine], model, config=config)
    for done in tqdm.tqdm(stream, total=len(mine), desc="detect", unit="page"):
        ref, img_id = refs[mine[done.index]], image_ids[mine[done.index]]
        report = {"path": str(ref.path), "page": ref.index + 1, "name": ref.name,
                  "img_id": img_id, "ok": False, "error": ref.error}
        try:
            if done.error is not None:
                raise done.error
            boxes, classes, scores = refine(done.page, done.detections, config=config)
            shown = scores >= min_scores[classes]
            boxes, classes, scores = boxes[shown], classes[shown], scores[shown]
            overlay = out_dir / f"{ref.stem}_overlay.png"
            page_overlay = visualize.draw_boxes(done.page, boxes, classes, scores)
            paths_lib.write_png(page_overlay, overlay)
        except Exception as e:  # One bad page must not stop the others; its error is kept.
            if not isinstance(e, PageError):
                _log.error("page %s failed", ref.name, exc_info=e)
            report["error"] = str(e) if isinstance(e, PageError) else f"{type(e).__name__}: {e}"
            pages.append(report)
            continue
        for (y0, x0, y1, x1), c, s in zip(
            boxes.tolist(), classes.tolist(), scores.tolist(), strict=True
        ):
            proposals.append({"img_id": img_id, "cat_id": c, "bbox": [x0, y0, x1, y1], "score": s})
            coco.append(
                {
                    "image_id": img_id,
                    "category_id": c,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "score": s,
                }
            )
        counts.update(names[c] if c < len(names) else str(c) for c in classes.tolist())
        now = time.perf_counter()
        report.update(ok=True, num_detections=len(classes), seconds=now - last,
                      overlay=str(overlay), **done.detections[3])
        last = now
        pages.append(report)
    elapsed = time.perf_counter() - start
    if hosts.is_multiprocess():
        shares = hosts.gather((pages, proposals, coco, counts, elapsed))
        pages = hosts.unshare([share[0] for share in shares])
        position = {img_id: i for i, img_id in enumerate(image_ids)}  # Page order again.
        proposals = sorted((p for sh in shares for p in sh[1]), key=lambda p: position[p["img_id"]])
        coco = sorted((c for sh in shares for c in sh[2]), key=lambda c: position[c["image_id"]])
        counts = sum((share[3] for share in shares), collections.Counter())
        elapsed = max(share[4] for share in shares)
    done = [p for p in pages if p["ok"]]
    summary = {
        "pages": pages,
        "proposals": str(out_dir / "proposals.json"),
        "coco_results": str(out_dir / "coco_results.json"),
        "num_pages": len(done),
        "num_failed": len(pages) - len(done),
        "skipped": [f"{p['name']}: {p['error']}" for p in pages if not p["ok"]],
        "min_score": float(config.detect.min_score),
        "class_min_scores": [list(e) for e in config.detect.class_min_scores],
        "symbols_per_class": dict(counts.most_common()),
        "seconds_per_page": elapsed / max(len(done), 1),
    }
    for line in summary["skipped"]:
        _log.warning("skipped %s", line)
    if hosts.is_primary():
        (out_dir / "proposals.json").write_text(
            json.dumps({"annotation_set": "deepscores", "proposals": proposals})
        )
        (out_dir / "coco_results.json").write_text(json.dumps(coco))
        (out_dir / "detect_summary.json").write_text(json.dumps(summary, indent=1))
    hosts.barrier("detections written")
    return summary

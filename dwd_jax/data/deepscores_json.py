"""Read and validate DeepScoresV2 annotation files into per-page records.

The one parser of the DeepScoresV2 (DSv2) annotation schema in this project: the `deep_scores`
TFDS builder uses it for the real release and for our engraved corpus alike. Pure Python and
numpy; no TFDS, no images.

The schema (see tests/data/deepscores_v2_sample/README.md and DWD_SPEC.md section 8):
`images` is a list of `{id, filename, width, height, ...}`; `annotations` is a dict keyed by
annotation id of `{a_bbox, o_bbox, cat_id, area, img_id, comments}`; `categories` is a dict
keyed by category id of `{name, annotation_set, ...}`; `cat_id` is a list with one category id
per annotation set (an entry may be null). Only the `deepscores` annotation set is read.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dwd_jax.classes import label_of

ANNOTATION_SET = "deepscores"

# `deepscores_train.json` -> "train", `deepscores_v2_sample.json` -> "v2_sample". An optional
# `-<chunk>` after `deepscores` (e.g. `deepscores-complete-3_train.json`) lets a release split
# one split over several files; all files of a split are read, in name order.
_ANNOTATION_FILE = re.compile(r"^deepscores(?:-[^_]*)?_(?P<split>[A-Za-z0-9_]+)\.json$")

# DeepScores-extended `comments` keys -> Page field. Other keys (the release stores e.g.
# instance colours there) are ignored.
_COMMENT_FIELDS = {"onset": "onsets", "rel_position": "staff_positions", "duration": "durations"}


class AnnotationError(ValueError):
    """A DeepScoresV2 annotation file is malformed; the message names the file and the item."""


@dataclasses.dataclass(frozen=True)
class Page:
    """One page of a DeepScoresV2 annotation file, its `deepscores` objects as arrays.

    Attributes:
      filename: image file name, relative to the release's `images/` folder.
      id: the page's image id.
      width: page width in pixels.
      height: page height in pixels.
      boxes: f32[N, 4] `[y0, x0, y1, x1]` pixels, from `a_bbox` (`[x0, y0, x1, y1]`), clipped
        to the page.
      labels: i32[N] DeepScores labels 0..135 (`deepscores` category id - 1).
      oboxes: f32[N, 8] oriented box corners `(x, y) * 4` in pixels, as `o_bbox` stores them.
      areas: f32[N] symbol mask pixel count (`area`; not the box area).
      onsets: f32[N] onset from `comments`, NaN where absent.
      staff_positions: f32[N] `rel_position` from `comments`, NaN where absent.
      durations: f32[N] duration from `comments`, NaN where absent.
    """

    filename: str
    id: int
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    oboxes: np.ndarray
    areas: np.ndarray
    onsets: np.ndarray
    staff_positions: np.ndarray
    durations: np.ndarray


def annotation_files(folder: str | Path) -> dict[str, list[Path]]:
    """The annotation files of a DSv2 folder, by split name.

    Args:
      folder: a folder in DSv2 layout (`deepscores_<split>.json` files beside `images/`).

    Returns:
      `{split: [json paths in name order]}`; empty if the folder holds no annotation file.
    """
    splits: dict[str, list[Path]] = {}
    for path in sorted(Path(folder).glob("deepscores*.json")):
        match = _ANNOTATION_FILE.match(path.name)
        if match:
            splits.setdefault(match["split"], []).append(path)
    return splits


def load_pages(path: str | Path) -> list[Page]:
    """Reads one DSv2 annotation file into pages, in the file's `images` order.

    Args:
      path: a `deepscores_<split>.json` file.

    Returns:
      One `Page` per entry of `images` (pages without annotations have N = 0).

    Raises:
      AnnotationError: the file is not valid JSON (truncated?) or breaks the schema; the
        message names the file, the item and what to do.
    """
    return parse_pages(_read_json(Path(path)), source=str(path))


def page_filenames(path: str | Path) -> list[str]:
    """The image file names of a DSv2 annotation file's pages (`images[*].filename`), in file
    order, without validating the rest of the file.

    Raises:
      AnnotationError: the file is not valid JSON, has no `images` list, or an entry has no
        `filename`.
    """
    data = _read_json(Path(path))
    images = data.get("images") if isinstance(data, Mapping) else None
    if not isinstance(images, list):
        raise AnnotationError(f"{path}: missing the `images` list of a DeepScoresV2 file")
    return [str(_field(im, "filename", f"{path}: images[{i}]")) for i, im in enumerate(images)]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except json.JSONDecodeError as e:
        raise AnnotationError(
            f"{path}: not valid JSON: {e.msg} (line {e.lineno}, column {e.colno}, character "
            f"{e.pos} of {len(e.doc)}). The file is probably truncated or corrupt: extract it "
            "again from the download (or regenerate the engraved corpus)."
        ) from None


def parse_pages(data: Any, *, source: str) -> list[Page]:
    """Validates a decoded DSv2 annotation file and groups its `deepscores` objects by page.

    Args:
      data: the decoded JSON document.
      source: where it came from (a file name), used in error messages.

    Returns:
      One `Page` per entry of `data["images"]`, in that order.

    Raises:
      AnnotationError: a missing key, an annotation of an unknown page, an unknown category
        id or class name, or a malformed box or comment; the message names the item.
    """
    if not isinstance(data, Mapping):
        raise AnnotationError(f"{source}: expected a JSON object, got {type(data).__name__}")
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise AnnotationError(
                f"{source}: missing top-level key {key!r}; a DeepScoresV2 annotation file has "
                "`images`, `annotations` and `categories`"
            )
    labels_by_category = _deepscores_labels(data["categories"], source)
    category_ids = {str(c) for c in data["categories"]}
    if not isinstance(data["images"], list):
        raise AnnotationError(f"{source}: `images` must be a list of page records")
    pages = [_page_header(image, i, source) for i, image in enumerate(data["images"])]
    index_of = {page["id"]: i for i, page in enumerate(pages)}
    if len(index_of) != len(pages):
        raise AnnotationError(f"{source}: `images` repeats a page id; ids must be unique")
    objects: list[list[tuple]] = [[] for _ in pages]

    annotations = data["annotations"]
    if not isinstance(annotations, Mapping):
        raise AnnotationError(
            f"{source}: `annotations` must be an object keyed by annotation id, got "
            f"{type(annotations).__name__}"
        )
    for ann_id, ann in annotations.items():
        where = f"{source}: annotation {ann_id}"
        cat_ids = _field(ann, "cat_id", where)
        label = _deepscores_label(cat_ids, labels_by_category, category_ids, where)
        if label is None:
            continue  # Belongs to other annotation sets only (e.g. muscima++).
        image_id = _int(_field(ann, "img_id", where), f"{where}: img_id")
        if image_id not in index_of:
            raise AnnotationError(
                f"{where}: img_id {image_id} is not in `images`; the file is inconsistent "
                "(truncated `images`?): extract it again or regenerate it"
            )
        page = pages[index_of[image_id]]
        objects[index_of[image_id]].append(
            (
                _box(_field(ann, "a_bbox", where), page, where),
                label,
                _floats(_field(ann, "o_bbox", where), 8, f"{where}: o_bbox"),
                _floats([_field(ann, "area", where)], 1, f"{where}: area")[0],
                *_comment_values(ann.get("comments", ""), where),
            )
        )
    return [_page(header, objs) for header, objs in zip(pages, objects, strict=True)]


def parse_comments(comments: str, *, where: str = "comments") -> dict[str, float]:
    """Parses DeepScores-extended `comments`, e.g. `"onset:1.5;rel_position:-2;duration:4;"`.

    Args:
      comments: `key:value;` pairs in any order; `""` means none.
      where: the item the comment belongs to, used in error messages.

    Returns:
      `{"onset", "rel_position", "duration"}` values present in the comment, as floats.

    Raises:
      AnnotationError: a pair without `:` or a non-numeric value of a known key.
    """
    values = {}
    for pair in filter(None, (p.strip() for p in comments.split(";"))):
        key, sep, value = pair.partition(":")
        if not sep:
            raise AnnotationError(f"{where}: comment part {pair!r} is not `key:value`")
        key = key.strip()
        if key in _COMMENT_FIELDS:
            try:
                values[key] = float(value)
            except ValueError:
                raise AnnotationError(f"{where}: comment {key}:{value!r} is not a number") from None
    return values


def _comment_values(comments: Any, where: str) -> tuple[float, float, float]:
    """(onset, staff position, duration) of an annotation, NaN where absent."""
    if not isinstance(comments, str):
        raise AnnotationError(f"{where}: `comments` must be a string, got {comments!r}")
    values = parse_comments(comments, where=where)
    return tuple(values.get(key, math.nan) for key in _COMMENT_FIELDS)


def _deepscores_labels(categories: Any, source: str) -> dict[str, int]:
    """`{category id: DeepScores label}` for the file's `deepscores` categories."""
    if not isinstance(categories, Mapping):
        raise AnnotationError(f"{source}: `categories` must be an object keyed by category id")
    labels = {}
    for cat_id, category in categories.items():
        where = f"{source}: category {cat_id}"
        if _field(category, "annotation_set", where) != ANNOTATION_SET:
            continue
        name = _field(category, "name", where)
        try:
            labels[str(cat_id)] = label_of(name)
        except KeyError as e:
            raise AnnotationError(f"{where}: {e.args[0]}") from None
    if not labels:
        raise AnnotationError(
            f"{source}: no category has annotation_set {ANNOTATION_SET!r}; only DeepScoresV2 "
            "`deepscores` annotations can be read"
        )
    return labels


def _deepscores_label(
    cat_ids: Any, labels: dict[str, int], category_ids: set[str], where: str
) -> int | None:
    """The DeepScores label among an annotation's per-set category ids; None if it has none."""
    if not isinstance(cat_ids, list):
        raise AnnotationError(f"{where}: cat_id must be a list of ids, got {cat_ids!r}")
    unknown = [c for c in cat_ids if c is not None and str(c) not in category_ids]
    if unknown:
        raise AnnotationError(f"{where}: cat_id {unknown} not in the file's `categories`")
    found = [labels[str(c)] for c in cat_ids if c is not None and str(c) in labels]
    if len(found) > 1:
        raise AnnotationError(f"{where}: cat_id {cat_ids} has more than one `deepscores` id")
    return found[0] if found else None


def _page_header(image: Any, index: int, source: str) -> dict[str, Any]:
    where = f"{source}: images[{index}]"
    header = {
        "filename": str(_field(image, "filename", where)),
        "id": _int(_field(image, "id", where), f"{where}: id"),
        "width": _int(_field(image, "width", where), f"{where}: width"),
        "height": _int(_field(image, "height", where), f"{where}: height"),
    }
    if header["width"] <= 0 or header["height"] <= 0:
        raise AnnotationError(f"{where}: page size {header['width']}x{header['height']}")
    return header


def _page(header: dict[str, Any], objects: list[tuple]) -> Page:
    columns = list(zip(*objects, strict=True)) or [()] * 7
    boxes, labels, oboxes, areas, onsets, positions, durations = columns
    return Page(
        **header,
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        labels=np.asarray(labels, np.int32),
        oboxes=np.asarray(oboxes, np.float32).reshape(-1, 8),
        areas=np.asarray(areas, np.float32),
        onsets=np.asarray(onsets, np.float32),
        staff_positions=np.asarray(positions, np.float32),
        durations=np.asarray(durations, np.float32),
    )


def _box(a_bbox: Any, page: dict[str, Any], where: str) -> tuple[float, float, float, float]:
    """`a_bbox` [x0, y0, x1, y1] -> [y0, x0, y1, x1], clipped to the page.

    Clipping: TFDS stores boxes normalised and rejects coordinates outside [0, 1]; a box that
    pokes past the border loses nothing by clipping, but one wholly off the page or inverted
    means wrong coordinates or a wrong page size, which we refuse.
    """
    x0, y0, x1, y1 = _floats(a_bbox, 4, f"{where}: a_bbox")
    w, h = page["width"], page["height"]
    if not (x0 <= x1 and y0 <= y1 and x0 <= w and y0 <= h and x1 >= 0 and y1 >= 0):
        raise AnnotationError(
            f"{where}: a_bbox {a_bbox} ([x0, y0, x1, y1]) is inverted or outside its "
            f"{w}x{h} page {page['filename']!r}"
        )
    return (max(y0, 0.0), max(x0, 0.0), min(y1, float(h)), min(x1, float(w)))


def _field(item: Any, key: str, where: str) -> Any:
    if not isinstance(item, Mapping):
        raise AnnotationError(f"{where}: expected an object, got {item!r}")
    if key not in item:
        raise AnnotationError(
            f"{where}: missing key {key!r} (has {sorted(item)}); the file is not in the "
            "DeepScoresV2 schema"
        )
    return item[key]


def _int(value: Any, where: str) -> int:
    """DSv2 writes ids sometimes as ints, sometimes as digit strings."""
    try:
        return int(str(value))
    except ValueError:
        raise AnnotationError(f"{where}: {value!r} is not an integer") from None


def _floats(values: Any, n: int, where: str) -> tuple[float, ...]:
    if not isinstance(values, list) or len(values) != n:
        raise AnnotationError(f"{where}: expected a list of {n} numbers, got {values!r}")
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise AnnotationError(f"{where}: expected {n} numbers, got {values!r}") from None
    if not all(math.isfinite(v) for v in out):
        raise AnnotationError(f"{where}: non-finite coordinate in {values!r}")
    return out

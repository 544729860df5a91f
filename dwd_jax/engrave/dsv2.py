"""The DeepScoresV2 annotation JSON: per-piece shards and the assembled split files.

Schema (as `deepscores_v2_sample.json` of the real release): `info`, `annotation_sets`,
`categories` keyed by string id ({name, annotation_set, color}), `images` (a list of {id,
filename, width, height, ann_ids}), `annotations` keyed by string id ({a_bbox [x0, y0, x1, y1],
o_bbox 8 floats, cat_id list of string ids (one per annotation set), area, img_id, comments}).
We write the `deepscores` annotation set only.
"""

from __future__ import annotations

import json
import os

from dwd_jax.classes import DEEPSCORES_CLASSES

ANNOTATION_SET = "deepscores"

INFO = {
    "description": "DeepScores-format pages engraved from music21's corpus with verovio",
    "version": "2.0",
    "year": 2026,
    "contributor": "dwd-jax engraver",
    "date_created": "",
    "url": "",
}


def categories() -> dict[str, dict]:
    """The 136 `deepscores` categories: id = DeepScores label + 1, as in DeepScoresV2."""
    return {
        str(i + 1): {"name": name, "annotation_set": ANNOTATION_SET, "color": i + 1}
        for i, name in enumerate(DEEPSCORES_CLASSES)
    }


def write_atomic(path: str, data: bytes) -> bool:
    """Writes `data` to `path` via a temporary file and rename; skips identical content.

    Returns:
      whether the file was (re)written.
    """
    if os.path.exists(path):
        with open(path, "rb") as f:
            if f.read() == data:
                return False
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return True


def assemble(pages: list[dict]) -> dict:
    """One DeepScoresV2 annotation file from page records.

    Args:
      pages: [{"image_id": int, "filename", "width", "height", "annotations": [{"a_bbox",
        "o_bbox", "cat_id": str, "area", "comments"}, ...]}, ...]; annotation ids are numbered
        in page order from 1 + the annotations of earlier pages (`first_ann_id` per page).

    Returns:
      the JSON object.
    """
    images, annotations = [], {}
    for page in pages:
        ann_ids = []
        for k, ann in enumerate(page["annotations"]):
            ann_id = str(page["first_ann_id"] + k)
            ann_ids.append(ann_id)
            annotations[ann_id] = {
                "a_bbox": ann["a_bbox"],
                "o_bbox": ann["o_bbox"],
                "cat_id": [ann["cat_id"]],
                "area": ann["area"],
                "img_id": str(page["image_id"]),
                "comments": ann["comments"],
            }
        images.append({"id": page["image_id"], "filename": page["filename"],
                       "width": page["width"], "height": page["height"], "ann_ids": ann_ids})
    return {"info": INFO, "annotation_sets": [ANNOTATION_SET], "categories": categories(),
            "images": images, "annotations": annotations}


def dumps(obj: dict) -> bytes:
    """Canonical JSON bytes (stable across runs)."""
    return json.dumps(obj, separators=(",", ":")).encode()

"""Host-side cost of detecting one real page, outside the model: the work
`dwd_jax.detection.detect` adds.

On the DeepScoresV2 sample page (2707x3828 RGBA PNG, 547 objects) it times loading to grey
(`load_page`), the staff-space estimate, rescaling to model scale, and drawing the overlay of
547 class-coloured boxes with its legend, each against the reference measured in the same run:
Pillow decoding the same PNG and nothing else.

Run: `python benchmarks/detect_page_prep.py [--rounds 5]`; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image
from timing import best_of

from configs import default
from dwd_jax import image, visualize
from dwd_jax.detection import detect

SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "data" / "deepscores_v2_sample"
PAGE = SAMPLE / "images" / "lg-5230237-aug-emmentaler--page-2.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    anns = json.loads((SAMPLE / "deepscores_v2_sample.json").read_text())["annotations"]
    boxes = np.array([[a["a_bbox"][i] for i in (1, 0, 3, 2)] for a in anns.values()], np.float32)
    classes = np.array([int(a["cat_id"][0]) for a in anns.values()])
    config = default.get_config()
    page = detect.load_page(PAGE)
    scale, space = detect.page_scale(page, config)

    def decode():
        with Image.open(PAGE) as im:
            im.load()

    rows = [
        ("Pillow decode of the PNG (reference)", decode),
        ("load_page (decode, composite on white, grey)", lambda: detect.load_page(PAGE)),
        ("estimate_staff_space", lambda: detect.estimate_staff_space(page)),
        (
            f"image.resize to staff space {config.detect.staff_space}",
            lambda: image.resize(page, scale),
        ),
        ("draw_boxes: 547 boxes + legend", lambda: visualize.draw_boxes(page, boxes, classes)),
    ]
    times = [best_of(fn, args.rounds) for _, fn in rows]
    print(f"Page {page.shape[1]}x{page.shape[0]}, staff space {space:.2f} px, scale {scale:.3f};")
    print(f"best of {args.rounds}.\n")
    print("| step | ms | time x reference |")
    print("|---|---:|---:|")
    for (name, _), t in zip(rows, times, strict=True):
        print(f"| {name} | {t * 1e3:.0f} | {t / times[0]:.2f} |")


if __name__ == "__main__":
    main()

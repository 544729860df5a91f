"""Time of the ink re-measure (`dwd_jax.ink.refine`) per page, against the model's forward
pass and decoding of the same page (the reference, in the same run).

For each of the first test pages of a trained run: the page's staff-space estimate and
`ink.refine` with the run's config, and `inference.Predictor` on the page at model scale
(compiled once before timing), each best of 3. Prints a Markdown table of the medians.

Run: `python benchmarks/ink_refine.py --workdir=workdir/default [--pages 10]`.
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import trained_run  # noqa: E402
from timing import best_of  # noqa: E402

from dwd_jax import detect, inference, ink, input_pipeline  # noqa: E402


def time_page(predictor: inference.Predictor, page: np.ndarray, scale: float) -> tuple:
    """(pixels, detections, forward s, staff-space s, refine s) of one u8[H, W] page."""
    scaled = input_pipeline.scale_page({"image": page, "boxes": np.zeros((0, 4))}, scale)
    scaled = scaled["image"]
    pred = predictor(scaled)  # Also compiles for this page size.
    factor = np.float32([page.shape[0] / scaled.shape[0], page.shape[1] / scaled.shape[1]] * 2)
    boxes, staff = pred["boxes"] * factor, detect.estimate_staff_space(page)
    forward = best_of(lambda: predictor(scaled), 3)
    space = best_of(lambda: detect.estimate_staff_space(page), 3)
    refine = best_of(
        lambda: ink.refine(
            page,
            boxes,
            pred["classes"],
            pred["scores"],
            config=predictor.config,
            staff_space=staff,
        ),
        3,
    )
    return page.size, len(boxes), forward, space, refine


def main() -> None:
    args, config, params, step = trained_run.load(__doc__, pages=10, classes="")
    predictor = inference.Predictor(config, params)
    source = input_pipeline.open_source(config.data, "test")
    rows = [
        time_page(
            predictor, input_pipeline.parse_page(source[i], name=str(i))["image"], config.data.scale
        )
        for i in range(min(args.pages, len(source)))
    ]
    pixels, dets, forward, space, refine = (np.median(c) for c in zip(*rows, strict=True))
    print(f"{args.workdir} (step {step}), first {len(rows)} test pages, medians:\n")
    print(
        "| page pixels | detections | forward + decode | staff space | ink.refine "
        "| (staff space + refine) / forward |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {pixels / 1e6:.1f} M | {dets:.0f} | {forward * 1e3:.0f} ms | {space * 1e3:.0f} ms "
        f"| {refine * 1e3:.0f} ms | {(space + refine) / forward:.2f} |"
    )


if __name__ == "__main__":
    main()

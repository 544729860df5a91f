"""Time of the post-processing on the ink (`dwd_jax.omr.refine`) per page, against the model's
forward pass and decoding of the same page (the reference, in the same run).

For each of the first validation pages of a trained run: the page's staff-space estimate and
`omr.refine` with the run's config, and `inference.Detector.predict` on the page at model
scale (compiled once before timing), each best of 3. Prints a Markdown table of the medians.

Run: `python benchmarks/ink_refine.py --workdir=workdir/default [--pages 10]`.
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import trained_run  # noqa: E402
from timing import best_of  # noqa: E402

from dwd_jax import image, omr
from dwd_jax.data import input_pipeline
from dwd_jax.detection import detect, inference  # noqa: E402
from dwd_jax.eval import evaluation


def time_page(detector: inference.Detector, page: np.ndarray) -> tuple:
    """(pixels, detections, forward s, staff-space s, refine s) of one u8[H, W] page."""
    scale, _ = detect.page_scale(page, detector.config)
    scaled = image.resize(page, scale)
    pred = detector.predict(scaled)  # Also compiles for this page size.
    factor = np.float32([page.shape[0] / scaled.shape[0], page.shape[1] / scaled.shape[1]] * 2)
    found = (pred["boxes"] / factor, pred["classes"], pred["scores"])
    staff = detect.estimate_staff_space(page)
    forward = best_of(lambda: detector.predict(scaled), 3)
    space = best_of(lambda: detect.estimate_staff_space(page), 3)
    refine = best_of(
        lambda: omr.refine(page, found, detector.config.omr, staff_space=staff), 3
    )
    return page.size, len(found[0]), forward, space, refine


def main() -> None:
    args, config, params, step = trained_run.load(__doc__, pages=10, classes="")
    detector = inference.Detector(config, params)
    source = input_pipeline.open_source(config.data, config.data.eval_split)
    pages = evaluation.split_pages(source, range(min(args.pages, len(source))))
    rows = [time_page(detector, load().image) for load in pages]
    pixels, dets, forward, space, refine = (np.median(c) for c in zip(*rows, strict=True))
    print(f"{args.workdir} (step {step}), first {len(rows)} validation pages, medians:\n")
    print(
        "| page pixels | detections | forward + decode | staff space | omr.refine "
        "| (staff space + refine) / forward |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {pixels / 1e6:.1f} M | {dets:.0f} | {forward * 1e3:.0f} ms | {space * 1e3:.0f} ms "
        f"| {refine * 1e3:.0f} ms | {(space + refine) / forward:.2f} |"
    )


if __name__ == "__main__":
    main()

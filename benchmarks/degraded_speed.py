"""Seconds per page on degraded pages against the clean page, side by side: the real
DeepScoresV2 sample page clean and under robustness conditions (`config.robustness`), through
the whole shipped pipeline (`inference.Detector`: rescale, network, decoder, post-processing),
and the post-processing (`detect.refine`) alone.

Every page size is compiled before timing; each figure is the median of `--repeats` runs,
interleaved so that machine noise falls on every condition alike. Ratios are to the clean
page in the same run.

Run: `python benchmarks/degraded_speed.py [--repeats 3] [--workdir workdir/default]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import default  # noqa: E402
from dwd_jax.detection import detect, inference  # noqa: E402
from dwd_jax.eval import robustness

SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "data" / "deepscores_v2_sample"
CONDITIONS = ("scan", "photo", "rotated", "bilevel", "low_resolution")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default="workdir/default")
    args = parser.parse_args()
    config = default.get_config()
    detector = inference.Detector.from_workdir(config, args.workdir)
    (image,) = [detect.load_page(p) for p in sorted((SAMPLE / "images").glob("*.png"))]
    pages = {"clean": image}
    for name in CONDITIONS:
        rng = np.random.default_rng([config.robustness.seed, zlib.crc32(name.encode()), 0])
        spec = config.robustness.conditions[name].to_dict()
        pages[name], _ = robustness.apply(image, np.zeros((0, 4), np.float32), spec, rng)
    found = {
        name: detect.network_detections(page, detector, config=config)
        for name, page in pages.items()
    }
    whole = {name: [] for name in pages}
    refine = {name: [] for name in pages}
    for _ in range(args.repeats):
        for name, page in pages.items():
            start = time.perf_counter()
            detector(page)
            whole[name].append(time.perf_counter() - start)
            start = time.perf_counter()
            detect.refine(page, found[name], config=config)
            refine[name].append(time.perf_counter() - start)
    clean_whole = statistics.median(whole["clean"])
    clean_refine = statistics.median(refine["clean"])
    print(f"\n{detector.source}, median of {args.repeats}\n")
    print("| page | s per page | x clean | post-processing s | x clean |")
    print("|---|---:|---:|---:|---:|")
    for name in pages:
        w, r = statistics.median(whole[name]), statistics.median(refine[name])
        print(f"| {name} | {w:.2f} | {w / clean_whole:.2f} | {r:.2f} | {r / clean_refine:.2f} |")


if __name__ == "__main__":
    main()

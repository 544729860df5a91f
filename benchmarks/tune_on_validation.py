"""The tuned choices, measured on the validation split: each row changes one setting of the
default (the page's rescale rule, a decoder threshold, one post-processing rule) and gives
mAP@.5 and mAP@[.5:.95] over all classes, shipped and network alone.

The model and decoder run once per page for each rescale rule and decoder setting (holding
raw outputs would take about 0.4 GB a page); post-processing rows re-apply `detect.refine` to
the default's detections, by the evaluation protocol (`evaluation.evaluate_pages`). The test
split is never read. Prints a Markdown table.

Run: `python benchmarks/tune_on_validation.py --workdir=workdir/default [--pages 24]
[--only TEXT] [--data_dir DIR]`.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time

import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import default  # noqa: E402
from dwd_jax import omr
from dwd_jax.data import input_pipeline
from dwd_jax.detection import detect, inference
from dwd_jax.eval import evaluate, evaluation

# (row, {section.field: value}): one change from the default per row.
ROWS = (
    ("default", {}),
    ("decode.foreground_threshold 0.2", {"decode.foreground_threshold": 0.2}),
    ("decode.foreground_threshold 0.4", {"decode.foreground_threshold": 0.4}),
    ("decode.box_size max", {"decode.box_size": "max"}),
    ("decode.class_split peaks", {"decode.class_split": "peaks"}),
    ("decode.class_split none", {"decode.class_split": "none"}),
    ("decode.saddle_depth 2", {"decode.saddle_depth": 2.0}),
    ("decode.saddle_depth 4", {"decode.saddle_depth": 4.0}),
    *((f"without omr.{k}", {f"omr.{k}": v}) for k, v in omr.OFF.items()),
    ("omr.symbol_max_change inf", {"omr.symbol_max_change": float("inf")}),
    ("omr.symbol_min_share 0", {"omr.symbol_min_share": 0.0}),
    ("omr.accidentals_max_score inf", {"omr.accidentals_max_score": float("inf")}),
    ("omr.accidentals_max_change 2", {"omr.accidentals_max_change": 2.0}),
    ("rescale: fixed data.scale (0.5), no staff-space estimate", {"detect.scale": 0.5}),
    # Training pages' staff spaces at scale 0.5 span 7.3-13.5 px; 8.5 is DeepScoresV2's.
    *(
        (f"rescale: detect.staff_space {s}", {"detect.staff_space": s})
        for s in (8.5, 9.5, 10.0, 11.0, 12.0)
    ),
)
_RESCALE = ("detect.",)
_DECODE = ("decode.foreground_threshold", "decode.box_size", "decode.class_split",
           "decode.saddle_depth")


def _apply(config, overrides: dict):
    c = copy.deepcopy(config)
    for key, value in overrides.items():
        section, field = key.split(".")
        c[section][field] = value
    return c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="workdir/default")
    parser.add_argument("--pages", type=int, default=0, help="First validation pages; 0 = all.")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--only", default="", help="Rows whose name contains this.")
    parser.add_argument("--data_dir", default="", help="TFDS data dir (default: the config's).")
    args = parser.parse_args()
    base = default.get_config()
    base.data.data_dir = args.data_dir or base.data.data_dir
    params, step = inference.restore_params(base, args.workdir)
    source = input_pipeline.open_source(base.data, args.split)
    count = len(source) if not args.pages else min(args.pages, len(source))
    pages = list(evaluation.split_pages(source, range(count)))
    print(f"\n{args.workdir} (step {step}), {count} {args.split} pages, all classes:\n")
    print("| setting | mAP@.5 | mAP | network alone mAP@.5 | network alone mAP | s |")
    print("|---|---:|---:|---:|---:|---:|")
    detections: dict[tuple, list] = {}  # Rescale + decode overrides -> network detections.
    for name, overrides in ROWS:
        if args.only not in name and name != "default":
            continue
        start = time.perf_counter()
        config = _apply(base, overrides)
        rescale = tuple(sorted((k, v) for k, v in overrides.items() if k.startswith(_RESCALE)))
        decoding = tuple(sorted((k, v) for k, v in overrides.items() if k in _DECODE))
        key = rescale + decoding
        if key not in detections:  # The model and decoder run again (compiles per page size).
            detector = inference.Detector(config, params)
            detections[key] = [
                detect.network_detections(load().image, detector, config=config)
                for load in tqdm.tqdm(pages, desc="network", unit="page", leave=False)
            ]
        shipped, network = [], []
        for load, found in zip(pages, detections[key], strict=True):
            gt = load()
            refined = detect.refine(gt.image, found, config=config)
            network.append(evaluate.Page(gt.boxes, gt.classes, *found[:3], name=gt.name))
            shipped.append(evaluate.Page(gt.boxes, gt.classes, *refined, name=gt.name))
        s, n = evaluate.evaluate(shipped), evaluate.evaluate(network)
        seconds = time.perf_counter() - start
        print(
            f"| {name} | {s['map50']:.3f} | {s['map']:.3f} | {n['map50']:.3f} | "
            f"{n['map']:.3f} | {seconds:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()

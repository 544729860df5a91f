"""The post-processing on degraded pages: per condition of the robustness set
(`config.robustness`), mAP@.5 / mAP over all classes of the network alone and of the shipped
pipeline with the rules reading the page as it is, flattened to white paper
(`omr.flatten`), and flattened and turned upright (`omr.deskew`, the default); and how many
classes each lowers below the network alone by more than one object's worth. With `--rules`,
the columns are instead the shipped pipeline and the shipped pipeline without each rule
(`omr.OFF`), and each row ends with the classes the shipped pipeline lowers.

The network runs once per page and condition; the variants re-apply `detect.refine` to its
detections. Pages come from the eval split (validation) or a DeepScoresV2-layout folder.

Run: `python benchmarks/omr_robustness.py --workdir=workdir/default [--pages 8] [--rules]
[--conditions photo,scan] [--folder tests/data/deepscores_v2_sample --split v2_sample]
[--data_dir ...]`.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import zlib

import numpy as np
import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import default  # noqa: E402
from dwd_jax import omr
from dwd_jax.data import input_pipeline
from dwd_jax.detection import detect, inference
from dwd_jax.eval import evaluate, evaluation, robustness

VARIANTS = {
    "as it is": {"flatten": False, "deskew": False},
    "flattened": {"flatten": True, "deskew": False},
    "flattened, upright": {"flatten": True, "deskew": True},
}


def _worse(shipped: dict, alone: dict) -> int:
    return len(robustness.worse_with_post_processing({**shipped, "network_alone": alone}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="workdir/default")
    parser.add_argument("--pages", type=int, default=0, help="First pages; 0 = all.")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--folder", default="", help="A DeepScoresV2-layout folder instead.")
    parser.add_argument("--data_dir", default="", help="TFDS data dir (default: the config's).")
    parser.add_argument("--rules", action="store_true", help="One column per rule switched off.")
    parser.add_argument("--conditions", default="", help="Comma-separated; default: all.")
    args = parser.parse_args()
    config = default.get_config()
    config.data.data_dir = args.data_dir or config.data.data_dir
    detector = inference.Detector.from_workdir(config, args.workdir)
    if args.folder:
        annotations = evaluation.folder_annotations(args.folder, args.split)
        pages = evaluation.folder_pages(args.folder, annotations)
    else:
        source = input_pipeline.open_source(config.data, args.split)
        pages = evaluation.split_pages(source, range(len(source)))
    pages = pages[: args.pages or len(pages)]
    columns = VARIANTS
    if args.rules:
        columns = {"shipped": {}, **{f"without {k}": {k: v} for k, v in omr.OFF.items()}}
    variants = {}
    for name, fields in columns.items():
        variants[name] = copy.deepcopy(config)
        variants[name].omr.update(fields)
    print(f"\n{detector.source}, {len(pages)} pages of {args.folder or args.split}\n")
    print("| condition | network alone | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    conditions = {robustness.CLEAN: {}, **config.robustness.conditions.to_dict()}
    if args.conditions:
        conditions = {k: v for k, v in conditions.items() if k in args.conditions.split(",")}
    for condition_name, condition in conditions.items():
        seed = (config.robustness.seed, zlib.crc32(condition_name.encode()))
        loaders = robustness.degraded_pages(pages, condition, seed) if condition else pages
        network, shipped = [], {name: [] for name in columns}
        for load in tqdm.tqdm(loaders, desc=condition_name, unit="page", leave=False):
            gt = load()
            try:
                found = detect.network_detections(gt.image, detector, config=config)
            except detect.PageError:  # As in evaluation: a page not measured, all missed.
                found = (np.zeros((0, 4), np.float32), np.zeros(0, np.int32), np.zeros(0), None)
            network.append(evaluate.Page(gt.boxes, gt.classes, *found[:3], name=gt.name))
            for name, c in variants.items():
                refined = detect.refine(gt.image, found, config=c) if found[3] else found[:3]
                shipped[name].append(evaluate.Page(gt.boxes, gt.classes, *refined, name=gt.name))
        alone = evaluate.evaluate(network)
        cells, scores = [], {}
        for name in columns:
            scores[name] = s = evaluate.evaluate(shipped[name])
            cells.append(f"{s['map50']:.3f} / {s['map']:.3f} ({_worse(s, alone)} worse)")
        print(
            f"| {condition_name} | {alone['map50']:.3f} / {alone['map']:.3f} | "
            + " | ".join(cells) + " |",
            flush=True,
        )
        if args.rules:
            worse = robustness.worse_with_post_processing(
                {**scores["shipped"], "network_alone": alone}
            )
            print("  lowered: " + ", ".join(
                f"{n} {s:.2f} < {a:.2f} ({c})" for n, s, a, c in worse
            ), flush=True)


if __name__ == "__main__":
    main()

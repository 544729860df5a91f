"""Which part of a box misses IoU 0.5: centre or size, per axis, for chosen classes.

Each ground-truth box of a class is matched to its best same-class detection (IoU >= 0.1) on
the first validation pages of a trained run (shipped pipeline, or with --network-alone the
network's own boxes); "unmatched" is the share of ground truth with no such detection (a
symbol not found at all, or found too far off to correct). For the matched pairs it
prints the share at IoU >= 0.5 as decoded, then with one thing corrected at a time (the true
centre on y or x, the true height or width): the correction that lifts the share most is the
error to fix. The median detected / true height and width show a class-wide size bias (what
`model.class_size_prior` exists to remove).

Run: `python benchmarks/localisation.py --workdir=workdir/default [--pages 10]
[--classes stem,beam,...] [--network-alone]`; prints a Markdown table.
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import trained_run  # noqa: E402

from dwd_jax import boxes as boxes_lib  # noqa: E402
from dwd_jax import classes as classes_lib  # noqa: E402
from dwd_jax.data import input_pipeline
from dwd_jax.detection import detect, inference  # noqa: E402
from dwd_jax.eval import evaluation

CLASSES = "stem,beam,staff,ledgerLine,slur,tie,noteheadBlackOnLine,clefG,augmentationDot"


def corrected(det: np.ndarray, gt: np.ndarray) -> list[np.ndarray]:
    """The detection with, in turn, the true centre on y, on x, the true height, width."""
    out = []
    for what in ("centre", "size"):
        for axis in (0, 1):
            box = det.copy()
            if what == "centre":
                box[[axis, axis + 2]] += (gt[axis] + gt[axis + 2] - det[axis] - det[axis + 2]) / 2
            else:
                mid, half = (det[axis] + det[axis + 2]) / 2, (gt[axis + 2] - gt[axis]) / 2
                box[[axis, axis + 2]] = mid - half, mid + half
            out.append(box)
    return out


def main() -> None:
    args, config, params, step = trained_run.load(
        __doc__, pages=10, classes=CLASSES, network_alone=True
    )
    detector = inference.Detector(config, params)
    source = input_pipeline.open_source(config.data, config.data.eval_split)
    names = args.classes.split(",")
    hits = {name: [] for name in names}
    unmatched = dict.fromkeys(names, 0)
    find = detect.network_detections if args.network_alone else detect.detect_page
    for load in evaluation.split_pages(source, range(min(args.pages, len(source)))):
        page = load()
        det_boxes, det_classes, _, _ = find(page.image, detector.predict, config=config)
        for name in names:
            k = classes_lib.label_of(name) + 1
            dets = det_boxes[det_classes == k]
            for gt in page.boxes[page.classes == k]:
                overlap = boxes_lib.box_iou(dets, gt[None])[:, 0]
                if not len(overlap) or overlap.max() < 0.1:
                    unmatched[name] += 1
                    continue
                det = dets[overlap.argmax()]
                variants = [det, *corrected(det, gt)]
                hit = boxes_lib.box_iou(np.stack(variants), gt[None])[:, 0] >= 0.5
                # log(detected / true) height and width: a class-wide bias shows in the median.
                log_ratio = np.log((det[2:] - det[:2]) / np.maximum(gt[2:] - gt[:2], 1e-6))
                hits[name].append(np.concatenate([hit, log_ratio]))
    boxes = "network-alone" if args.network_alone else "shipped"
    print(f"{args.workdir} (step {step}), {boxes} boxes, first {args.pages} validation pages:")
    print("share of ground truth without a detection at IoU >= 0.1; of the matched, the share at")
    print("IoU >= 0.5 as decoded and with one thing corrected; then the median detected / true")
    print("height and width (1.00 = no class-wide bias).\n")
    print(
        "| class | ground truth | unmatched | as decoded | true y centre | true x centre "
        "| true h | true w | h ratio | w ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, rows in hits.items():
        rows = np.array(rows).reshape(-1, 7)
        total = len(rows) + unmatched[name]
        share = rows[:, :5].mean(axis=0) if len(rows) else [float("nan")] * 5
        ratio = np.exp(np.median(rows[:, 5:], axis=0)) if len(rows) else [float("nan")] * 2
        missed = unmatched[name] / total if total else float("nan")
        print(
            f"| {name} | {total} | {missed:.2f} | "
            + " | ".join(f"{v:.2f}" for v in [*share, *ratio]) + " |"
        )


if __name__ == "__main__":
    main()

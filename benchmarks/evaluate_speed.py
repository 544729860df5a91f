"""Evaluation time per page, against pycocotools run with its default area ranges.

Pages are copies of the real DeepScoresV2 sample page's ground truth (547 objects, 35 classes);
detections are that ground truth jittered by 1 px, with 5 % dropped and 3 % given a wrong
class, and random scores. `dwd_jax.eval.evaluate.evaluate` (pycocotools with one area range and
maxDets 10000, plus the VOC AP, per-class and per-page tables) is timed against the reference:
pycocotools' COCOeval alone with COCO's four default area ranges (maxDets raised the same way,
or recall would be capped at 100 objects per class and page).

Run: `python benchmarks/evaluate_speed.py [--pages 20]`; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path

import numpy as np
from timing import best_of

from dwd_jax.eval import evaluate

SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "data" / "deepscores_v2_sample"


def sample_pages(n: int, seed: int = 0) -> list[evaluate.Page]:
    """n pages holding the sample page's ground truth and perturbed detections."""
    anns = json.loads((SAMPLE / "deepscores_v2_sample.json").read_text())["annotations"]
    gt = np.array([[a["a_bbox"][i] for i in (1, 0, 3, 2)] for a in anns.values()], np.float32)
    classes = np.array([int(a["cat_id"][0]) for a in anns.values()])
    rng = np.random.default_rng(seed)
    pages = []
    for i in range(n):
        keep = rng.random(len(gt)) > 0.05
        det = gt[keep] + rng.normal(0, 1.0, (keep.sum(), 4)).astype(np.float32)
        det_cls = classes[keep].copy()
        wrong = rng.random(len(det_cls)) < 0.03
        det_cls[wrong] = rng.choice(np.unique(classes), wrong.sum())
        scores = rng.random(len(det_cls)).astype(np.float32)
        pages.append(evaluate.Page(gt, classes, det, det_cls, scores, f"page{i}"))
    return pages


def reference(pages: list[evaluate.Page]) -> None:
    """pycocotools with COCO's default area ranges (4 matching passes), maxDets raised."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def anns(boxes, classes, scores=None):
        out = []
        for j, (b, c) in enumerate(zip(boxes.tolist(), classes.tolist(), strict=True)):
            xywh = [b[1], b[0], b[3] - b[1], b[2] - b[0]]
            out.append({"bbox": xywh, "category_id": c, "area": xywh[2] * xywh[3], "iscrowd": 0})
            if scores is not None:
                out[-1]["score"] = float(scores[j])
        return out

    gts, dts = [], []
    for i, p in enumerate(pages):
        gts += [dict(a, image_id=i) for a in anns(p.gt_boxes, p.gt_classes)]
        dts += [dict(a, image_id=i) for a in anns(p.det_boxes, p.det_classes, p.det_scores)]
    cats = [{"id": int(c)} for c in np.unique(np.concatenate([p.gt_classes for p in pages]))]
    coco_gt, coco_dt = COCO(), COCO()
    for coco, items in ((coco_gt, gts), (coco_dt, dts)):
        for k, a in enumerate(items, 1):
            a["id"] = k
        coco.dataset = {
            "images": [{"id": i} for i in range(len(pages))],
            "categories": cats,
            "annotations": items,
        }
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
    ev = COCOeval(coco_gt, coco_dt, "bbox")
    ev.params.maxDets = list(evaluate.COCO_MAX_DETS)
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    pages = sample_pages(args.pages)
    objects = sum(len(p.gt_classes) for p in pages)
    ref = best_of(lambda: reference(pages), args.rounds)
    ours = best_of(lambda: evaluate.evaluate(pages), args.rounds)
    print(f"{args.pages} pages, {objects} objects, best of {args.rounds}.\n")
    print("| evaluation | s per page | time x reference |")
    print("|---|---:|---:|")
    print(f"| pycocotools, 4 default area ranges (reference) | {ref / args.pages:.3f} | 1.00 |")
    print(
        f"| dwd_jax.eval.evaluate.evaluate (COCO + VOC + tables) | {ours / args.pages:.3f} | "
        f"{ours / ref:.2f} |"
    )


if __name__ == "__main__":
    main()

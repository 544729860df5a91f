"""Detection quality: COCO mAP (pycocotools), the original's VOC AP, per-class and per-page tables.

The inputs are host numpy arrays, one `Page` per image: ground-truth and detected boxes
`[y0, x0, y1, x1]` in the pixels of one image (docs/DESIGN.md), model classes (DeepScores
label + 1, which is also the DeepScoresV2 `deepscores` category id and so our COCO category id)
and detection scores. `pages_from_padded` strips the padding of batched arrays.

Two families of numbers, as DWD_SPEC.md section 7 asks:
- COCO mAP@[.5:.95] and mAP@.5 from pycocotools (101-point interpolated precision), what
  detection users compare today;
- the original's Pascal-VOC all-point AP at IoU 0.5 and 0.25, with the paper's table of the 20
  classes most frequent in the ground truth.
Headline means are over every class with ground truth in the pages evaluated. A second,
labelled mean over the classes with at least `min_instances` ground-truth objects is given
beside it: a class seen twice gives an AP of 0, 0.5 or 1, so that mean is steadier, but it
leaves out exactly the rare classes a detector finds hardest.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from etils import epath

from dwd_jax import boxes as boxes_lib
from dwd_jax import visualize

# pycocotools defaults to at most 100 detections per image and class; a DeepScores page has
# hundreds of stems or noteheads, so the cap would silently drop true positives. The last entry
# is what every AP below uses.
COCO_MAX_DETS = (1, 100, 10000)
# One area range, [0, inf): no symbol is ignored for being tiny. COCO's small/medium/large split
# (32^2 and 96^2 px) would put nearly every music symbol in "small", and each extra range costs
# a full pass of pycocotools' Python matching loop, quadratic in the objects of a class on a page.
COCO_AREA_RANGE = (0.0, 1e10)
VOC_IOUS = (0.5, 0.25)
HEADLINE = ("map", "map50", "voc_map50", "voc_map25")  # The means `evaluate` gives.
TOP_CLASSES = 20  # The paper's tables list the 20 most frequent classes (DWD_SPEC.md section 7).


class Page(NamedTuple):
    """Ground truth and detections of one image, in that image's pixels.

    Attributes:
      gt_boxes: f32[M, 4] [y0, x0, y1, x1].
      gt_classes: i32[M] model classes (1..136).
      det_boxes: f32[N, 4] [y0, x0, y1, x1].
      det_classes: i32[N] model classes.
      det_scores: f32[N] confidence, higher is surer.
      name: how reports name the page (e.g. its file name).
    """

    gt_boxes: np.ndarray
    gt_classes: np.ndarray
    det_boxes: np.ndarray
    det_classes: np.ndarray
    det_scores: np.ndarray
    name: str = ""


def pages_from_padded(
    gt_boxes: np.ndarray,
    gt_classes: np.ndarray,
    gt_valid: np.ndarray,
    det_boxes: np.ndarray,
    det_classes: np.ndarray,
    det_scores: np.ndarray,
    det_valid: np.ndarray,
    names: Sequence[str] | None = None,
) -> list[Page]:
    """Split a padded batch (a data batch and decoded `Detections`) into `Page`s.

    Args:
      gt_boxes: f32[B, M, 4]; gt_classes: i32[B, M]; gt_valid: bool[B, M].
      det_boxes: f32[B, N, 4]; det_classes: i32[B, N]; det_scores: f32[B, N];
      det_valid: bool[B, N].
      names: optional B page names.

    Returns:
      B pages holding only the valid rows.
    """
    gt_valid, det_valid = np.asarray(gt_valid, bool), np.asarray(det_valid, bool)
    gt_boxes, gt_classes = np.asarray(gt_boxes), np.asarray(gt_classes)
    det_boxes, det_classes, det_scores = map(np.asarray, (det_boxes, det_classes, det_scores))
    names = names if names is not None else [str(b) for b in range(len(gt_valid))]
    return [
        Page(
            gt_boxes[b][gt_valid[b]],
            gt_classes[b][gt_valid[b]],
            det_boxes[b][det_valid[b]],
            det_classes[b][det_valid[b]],
            det_scores[b][det_valid[b]],
            name,
        )
        for b, name in enumerate(names)
    ]


def _check(page: Page, index: int) -> Page:
    """Validate one page's shapes and return it with canonical dtypes."""
    gb = np.asarray(page.gt_boxes, np.float64).reshape(-1, 4)
    gc = np.asarray(page.gt_classes).reshape(-1).astype(np.int64)
    db = np.asarray(page.det_boxes, np.float64).reshape(-1, 4)
    dc = np.asarray(page.det_classes).reshape(-1).astype(np.int64)
    ds = np.asarray(page.det_scores, np.float64).reshape(-1)
    where = f"page {index} ({page.name!r})"
    if len(gb) != len(gc):
        raise ValueError(f"{where}: {len(gb)} ground-truth boxes but {len(gc)} classes")
    if not len(db) == len(dc) == len(ds):
        raise ValueError(f"{where}: {len(db)} detections, {len(dc)} classes, {len(ds)} scores")
    if (gc < 1).any() or (dc < 1).any():
        raise ValueError(
            f"{where}: classes must be model classes >= 1 (background 0 is never an object); "
            "add 1 to DeepScores labels and drop padding rows (see pages_from_padded)"
        )
    if not np.isfinite(ds).all():
        raise ValueError(f"{where}: non-finite detection scores")
    return Page(gb, gc, db, dc, ds, page.name)


# --- COCO ---------------------------------------------------------------------------------------


def _coco_eval(pages: Sequence[Page]):
    """Run pycocotools' COCOeval on in-memory pages; returns the evaluated COCOeval."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def xywh(boxes):
        return np.stack(
            [boxes[:, 1], boxes[:, 0], boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]], 1
        )

    images = [{"id": i} for i in range(len(pages))]
    cats = sorted({int(c) for p in pages for c in np.concatenate([p.gt_classes, p.det_classes])})
    categories = [{"id": c} for c in cats]
    gts, dts = [], []
    for i, p in enumerate(pages):
        for box, c in zip(xywh(p.gt_boxes).tolist(), p.gt_classes.tolist(), strict=True):
            gts.append({"image_id": i, "category_id": c, "bbox": box, "area": box[2] * box[3]})
        for box, c, s in zip(
            xywh(p.det_boxes).tolist(), p.det_classes.tolist(), p.det_scores.tolist(), strict=True
        ):
            dts.append(
                {"image_id": i, "category_id": c, "bbox": box, "area": box[2] * box[3], "score": s}
            )
    # Built directly rather than through COCO.loadRes, which fails on an empty result list.
    coco_gt, coco_dt = COCO(), COCO()
    for coco, anns in ((coco_gt, gts), (coco_dt, dts)):
        for k, ann in enumerate(anns, 1):
            ann.update(id=k, iscrowd=0)
        coco.dataset = {"images": images, "categories": categories, "annotations": anns}
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress.
            coco.createIndex()
    ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
    ev.params.maxDets = list(COCO_MAX_DETS)
    ev.params.areaRng = [list(COCO_AREA_RANGE)]
    ev.params.areaRngLbl = ["all"]
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
    # COCOeval.summarize() is not used: its first AP hard-codes maxDets=100 and prints.
    return ev


def _mean_valid(x: np.ndarray) -> float:
    """Mean of the entries > -1 (pycocotools' marker for 'no ground truth'), or NaN."""
    x = x[x > -1]
    return float(x.mean()) if x.size else float("nan")


# --- VOC (the original's metric) ---------------------------------------------------------------


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Pascal-VOC (2010+) all-point AP: area under the monotone precision envelope.

    Args:
      recall: f[K] non-decreasing recall at each operating point.
      precision: f[K] precision at the same points.

    Returns:
      AP in [0, 1].
    """
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    step = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[step + 1] - mrec[step]) * mpre[step + 1]))


def _voc_matches(page: Page, cls: int, iou: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """VOC greedy matching of one class on one page.

    Detections, highest score first, each take the ground truth they overlap most; if that one is
    already taken, or the overlap is below `iou`, the detection is a false positive (the VOC
    devkit's rule, which the original used; DWD_SPEC.md section 7). We match at IoU >= `iou`
    like pycocotools (the devkit used >), so both families agree on boundary cases.

    Returns:
      (scores f64[D], true_positive bool[D]) of the page's D detections of class `cls`, and
      found bool[G] of its G ground-truth objects of that class.
    """
    d = page.det_classes == cls
    scores, boxes = page.det_scores[d], page.det_boxes[d]
    gt = page.gt_boxes[page.gt_classes == cls]
    tp = np.zeros(len(scores), bool)
    taken = np.zeros(len(gt), bool)
    if len(gt) and len(scores):
        order = np.argsort(-scores, kind="stable")
        overlaps = boxes_lib.box_iou(boxes[order], gt)
        best, best_iou = overlaps.argmax(1), overlaps.max(1)
        for k in range(len(order)):
            if best_iou[k] >= iou and not taken[best[k]]:
                taken[best[k]] = True
                tp[order[k]] = True
    return scores, tp, taken


def class_matches(
    pages: Sequence[Page], iou: float = 0.5
) -> dict[int, tuple[np.ndarray, np.ndarray, int]]:
    """Every class's detections over all pages, matched by VOC's greedy rule at `iou`.

    Returns:
      {class: (scores f64[D], true_positive bool[D], ground-truth count)} for every class
      with ground truth or detections.
    """
    pages = [_check(p, i) for i, p in enumerate(pages)]
    found = np.unique(np.concatenate([c for p in pages for c in (p.gt_classes, p.det_classes)]))
    out = {}
    for c in found.tolist():
        matched = [_voc_matches(p, c, iou) for p in pages]
        out[c] = (
            np.concatenate([m[0] for m in matched]).astype(np.float64),
            np.concatenate([m[1] for m in matched]),
            int(sum(len(m[2]) for m in matched)),
        )
    return out


def best_f1_threshold(scores: np.ndarray, tp: np.ndarray, n_gt: int) -> tuple[float, float]:
    """The least score to keep that maximises F1 = 2 TP / (ground truth + kept).

    Greedy matching takes detections in score order, so dropping those below a score leaves
    the others' matches as they were: F1 at every cut follows from one sort.

    Args:
      scores: f64[D] detection scores.
      tp: bool[D] whether each is a true positive.
      n_gt: ground-truth objects.

    Returns:
      (score, F1 keeping the detections scored at least it); (1.0, 0.0) without detections.
    """
    if not len(scores):
        return 1.0, 0.0
    order = np.argsort(-scores, kind="stable")
    s, hits = scores[order], np.cumsum(tp[order])
    f1 = 2.0 * hits / (n_gt + np.arange(1, len(s) + 1))
    last = np.append(s[1:] != s[:-1], True)  # A cut keeps every detection of a tied score.
    best = int(np.flatnonzero(last)[np.argmax(f1[last])])
    return float(s[best]), float(f1[best])


def found_objects(page: Page, iou: float = 0.5) -> np.ndarray:
    """Which ground-truth objects a detection of their class found (VOC matching at `iou`).

    For overlays of bad pages: draw `page.gt_boxes[~found]` as the misses
    (`visualize.draw_boxes(..., missed=...)`).

    Args:
      page: one page.
      iou: overlap a match needs.

    Returns:
      bool[M] over `page.gt_boxes`.
    """
    page = _check(page, 0)
    found = np.zeros(len(page.gt_classes), bool)
    for c in np.unique(page.gt_classes):
        found[page.gt_classes == c] = _voc_matches(page, int(c), iou)[2]
    return found


def page_overlay(image: np.ndarray, page: Page, *, iou: float = 0.5):
    """A page's detections, class-coloured, with the ground truth they missed in red.

    Args:
      image: u8[H, W] grey image the page's boxes belong to.
      page: its ground truth and detections.
      iou: overlap a detection needs to count as finding an object.

    Returns:
      PIL RGB image with a legend (see `visualize.draw_boxes`).
    """
    found = found_objects(page, iou)
    return visualize.draw_boxes(
        image,
        page.det_boxes,
        page.det_classes,
        page.det_scores,
        missed=np.asarray(page.gt_boxes).reshape(-1, 4)[~found],
    )


def _pr_curve(scores: np.ndarray, tp: np.ndarray, n_gt: int) -> tuple[np.ndarray, np.ndarray]:
    """Recall and precision at each distinct score, highest first.

    Detections with equal scores form one operating point (all taken or none), so the AP does
    not depend on the order of ties. The original wrote the class index as the score, making
    every detection of a class tie and its AP depend on list order (DWD_SPEC.md section 6).
    """
    order = np.argsort(-scores, kind="stable")
    scores, tp = scores[order], tp[order]
    last_of_tie = np.flatnonzero(np.append(scores[1:] != scores[:-1], True))
    ctp = np.cumsum(tp)[last_of_tie]
    return ctp / max(n_gt, 1), ctp / (last_of_tie + 1)


def _voc_class_ap(pages: Sequence[Page], cls: int, iou: float) -> float:
    """VOC AP of one class pooled over all pages."""
    matched = [_voc_matches(p, cls, iou)[:2] for p in pages]
    scores = np.concatenate([m[0] for m in matched])
    tp = np.concatenate([m[1] for m in matched])
    n_gt = sum(int((p.gt_classes == cls).sum()) for p in pages)
    if n_gt == 0:
        return float("nan")
    return voc_ap(*_pr_curve(scores, tp, n_gt)) if len(scores) else 0.0


# --- Everything together -----------------------------------------------------------------------


def _page_stats(page: Page) -> dict:
    """Class-aware counts at IoU 0.5 over all detections of one page (for finding bad pages)."""
    tp = int(found_objects(page, 0.5).sum())
    n_gt, n_det = len(page.gt_classes), len(page.det_classes)
    recall = tp / n_gt if n_gt else 1.0
    precision = tp / n_det if n_det else 1.0
    f1 = 2 * recall * precision / (recall + precision) if recall + precision else 0.0
    return {
        "name": page.name,
        "n_gt": n_gt,
        "n_det": n_det,
        "tp50": tp,
        "recall50": recall,
        "precision50": precision,
        "f1_50": f1,
    }


def evaluate(
    pages: Sequence[Page],
    *,
    min_instances: int = 20,
    num_worst_pages: int = 8,
    class_names: Sequence[str] = visualize.MODEL_CLASS_NAMES,
) -> dict:
    """COCO and VOC metrics, per-class and per-page tables for a list of pages.

    Args:
      pages: ground truth and detections per image (see `Page`).
      min_instances: the filtered means use classes with at least this many ground-truth
        objects.
      num_worst_pages: how many pages, lowest F1 at IoU 0.5 first, to list for overlays.
      class_names: names indexed by model class.

    Returns:
      A JSON-serialisable dict:
        "map", "map50": COCO mAP@[.5:.95] and mAP@.5 over every class with ground truth;
        "voc_map50", "voc_map25": the original's VOC AP means over the same classes;
        "filtered": {"min_instances", "map", "map50", "voc_map50", "voc_map25", "classes"}:
          the same means over the classes with >= min_instances ground-truth objects;
        "coco_stats": COCO average recall at each of COCO_MAX_DETS detections per class/page;
        "per_class": one row per class with ground truth or detections, most frequent first
          (class, name, n_gt, n_det, ap, ap50, voc_ap50, voc_ap25; NaN where undefined);
        "top20": the rows of the 20 most frequent ground-truth classes (the paper's table);
        "pr50": class name -> 101-point COCO precision at IoU 0.5 for the top-20 classes;
        "pages": per-page counts, recall, precision and F1 at IoU 0.5;
        "worst_pages": indices into `pages`, lowest F1 first.
    """
    pages = [_check(p, i) for i, p in enumerate(pages)]
    gt_all = np.concatenate([p.gt_classes for p in pages]) if pages else np.zeros(0, int)
    det_all = np.concatenate([p.det_classes for p in pages]) if pages else np.zeros(0, int)
    n_gt = np.bincount(gt_all, minlength=len(class_names))
    n_det = np.bincount(det_all, minlength=len(class_names))
    if len(n_gt) > len(class_names):
        raise ValueError(f"class ids up to {len(n_gt) - 1} but only {len(class_names)} names")

    ev = _coco_eval(pages) if len(gt_all) else None
    rows = []
    for c in np.flatnonzero(n_gt + n_det):
        row = {
            "class": int(c),
            "name": class_names[c],
            "n_gt": int(n_gt[c]),
            "n_det": int(n_det[c]),
        }
        if ev is not None and c in ev.params.catIds:
            k = ev.params.catIds.index(c)
            prec = ev.eval["precision"][:, :, k, 0, -1]  # [IoU, recall], area all, maxDets last.
            row["ap"], row["ap50"] = _mean_valid(prec), _mean_valid(prec[0])
        else:
            row["ap"] = row["ap50"] = float("nan")
        for iou in VOC_IOUS:
            row[f"voc_ap{round(iou * 100)}"] = _voc_class_ap(pages, int(c), iou)
        rows.append(row)
    rows.sort(key=lambda r: (-r["n_gt"], r["class"]))

    def mean(key: str, threshold: int) -> float:
        vals = [r[key] for r in rows if r["n_gt"] >= max(threshold, 1)]
        return float(np.mean(vals)) if vals else float("nan")

    page_rows = [_page_stats(p) for p in pages]
    top = [r for r in rows if r["n_gt"] > 0][:TOP_CLASSES]
    stats, pr50 = {}, {}
    if ev is not None:
        for m_i, m in enumerate(COCO_MAX_DETS):
            stats[f"ar_maxdets{m}"] = _mean_valid(ev.eval["recall"][:, :, 0, m_i])
        for r in top:
            k = ev.params.catIds.index(r["class"])
            pr50[r["name"]] = ev.eval["precision"][0, :, k, 0, -1].tolist()
    worst = sorted(range(len(pages)), key=lambda i: page_rows[i]["f1_50"])
    return {
        "num_pages": len(pages),
        "map": mean("ap", 1),
        "map50": mean("ap50", 1),
        "voc_map50": mean("voc_ap50", 1),
        "voc_map25": mean("voc_ap25", 1),
        "filtered": {
            "min_instances": min_instances,
            **{k: mean(k.replace("map", "ap"), min_instances) for k in HEADLINE},
            "classes": [r["class"] for r in rows if r["n_gt"] >= max(min_instances, 1)],
        },
        "coco_stats": stats,
        "per_class": rows,
        "top20": top,
        "pr50": pr50,
        "pages": page_rows,
        "worst_pages": worst[:num_worst_pages],
    }


def _fmt(x: float) -> str:
    return "n/a" if x != x else f"{x:.3f}"


def markdown_report(results: dict) -> str:
    """The results of `evaluate` as a Markdown report: headline, top-20 table, per class, pages.

    With `results["network_alone"]` (the `evaluate` results of the same pages without the
    re-measure on the ink) every figure is given both ways.
    """
    r = results
    alone = r.get("network_alone")
    f = r["filtered"]
    both = lambda a, b: f"{_fmt(a)} | {_fmt(b)}" if alone else _fmt(a)
    filt = f"classes with >= {f['min_instances']} ground-truth objects ({len(f['classes'])})"
    names = (
        ("map", "COCO mAP@[.5:.95]"),
        ("map50", "COCO mAP@.5"),
        ("voc_map50", "VOC mAP@.5 (original)"),
        ("voc_map25", "VOC mAP@.25 (original)"),
    )
    n_classes = sum(c["n_gt"] > 0 for c in r["per_class"])
    lines = [
        "# Detection evaluation",
        "",
        f"{r['num_pages']} pages; means over all {n_classes} classes with ground truth, and, "
        f"labelled, over the {filt}.",
        "",
        "| metric | shipped pipeline | network alone |" if alone else "| metric | value |",
        "|---|---|---|" if alone else "|---|---|",
    ]
    lines += [f"| {n}, all classes | {both(r[k], alone and alone[k])} |" for k, n in names]
    lines += [
        f"| {n}, {filt} | {both(f[k], alone and alone['filtered'][k])} |" for k, n in names[:2]
    ]
    for key, what in (
        ("overflow_pages", "overflowed"),
        ("unconverged_pages", "did not converge"),
        ("failed_pages", "could not be measured and score no detections"),
    ):
        if r.get(key):
            lines += ["", f"**{len(r[key])} pages {what}**: {', '.join(r[key])}."]
    net_ap = {c["class"]: c["ap50"] for c in alone["per_class"]} if alone else {}
    extra = " network AP@.5 |" if alone else ""
    header = (
        f"| class | GT | det | VOC AP@.5 | VOC AP@.25 | COCO AP@.5 | COCO AP |{extra}",
        "|---|---|---|---|---|---|---|" + ("---|" if alone else ""),
    )
    lines += [
        "",
        f"COCO numbers: pycocotools, maxDets {list(COCO_MAX_DETS)}, one area range (all sizes).",
        "",
        "## The 20 most frequent classes (the paper's table)",
        "",
        *header,
    ]
    row = lambda c: (
        f"| {c['name']} | {c['n_gt']} | {c['n_det']} | {_fmt(c['voc_ap50'])} | "
        f"{_fmt(c['voc_ap25'])} | {_fmt(c['ap50'])} | {_fmt(c['ap'])} |"
        + (f" {_fmt(net_ap.get(c['class'], float('nan')))} |" if alone else "")
    )
    lines += [row(c) for c in r["top20"]]
    lines += ["", "## Every class", "", *header]
    lines += [row(c) for c in r["per_class"]]
    lines += [
        "",
        "## Worst pages (lowest F1 at IoU 0.5, class-aware)",
        "",
        "| page | GT | det | recall@.5 | precision@.5 | F1@.5 |",
        "|---|---|---|---|---|---|",
    ]
    for i in r["worst_pages"]:
        p = r["pages"][i]
        lines.append(
            f"| {p['name']} | {p['n_gt']} | {p['n_det']} | {_fmt(p['recall50'])} | "
            f"{_fmt(p['precision50'])} | {_fmt(p['f1_50'])} |"
        )
    return "\n".join(lines) + "\n"


def write_reports(results: dict, out_dir: epath.PathLike) -> dict[str, epath.Path]:
    """Write `eval.json`, `eval.md` and `pr50.png` (top-20 classes at IoU 0.5) to `out_dir`
    (a local folder or a bucket URI).

    Returns:
      name -> path of each file written.
    """
    out_dir = epath.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "eval.json", "markdown": out_dir / "eval.md"}
    # NaN is not JSON; null marks an undefined AP.
    clean = json.loads(json.dumps(results), parse_constant=lambda _: None)
    paths["json"].write_text(json.dumps(clean, indent=1))
    paths["markdown"].write_text(markdown_report(results))
    recall = np.linspace(0.0, 1.0, 101)
    curves = {name: (recall, np.maximum(np.asarray(p), 0.0)) for name, p in results["pr50"].items()}
    paths["pr_plot"] = visualize.precision_recall_plot(
        curves, out_dir / "pr50.png", title="precision-recall at IoU 0.5 (COCO, 101 points)"
    )
    return paths

"""Tests for dwd_jax.eval.evaluate against hand-computed values and pycocotools' own IoU."""

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from dwd_jax import boxes as boxes_lib
from dwd_jax import visualize
from dwd_jax.eval import evaluate
from dwd_jax.eval.evaluate import Page

SQUARE = [0.0, 0.0, 10.0, 10.0]  # [y0, x0, y1, x1]
FAR = [50.0, 50.0, 60.0, 60.0]  # Overlaps nothing.


def page(gt, gt_cls, det, det_cls, scores, name=""):
    return Page(
        np.array(gt, np.float32).reshape(-1, 4),
        np.array(gt_cls),
        np.array(det, np.float32).reshape(-1, 4),
        np.array(det_cls),
        np.array(scores, np.float32),
        name,
    )


def grid_boxes(n, size=8.0):
    """n disjoint boxes on a grid."""
    ys, xs = np.divmod(np.arange(n), 20)
    return np.stack([ys * 20, xs * 20, ys * 20 + size, xs * 20 + size], 1).astype(np.float32)


def test_box_iou_matches_pycocotools():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 50, (7, 2))
    a = np.concatenate([a, a + rng.uniform(0.5, 20, (7, 2))], 1)
    b = rng.uniform(0, 50, (5, 2))
    b = np.concatenate([b, b + rng.uniform(0.5, 20, (5, 2))], 1)
    xywh = lambda x: np.stack([x[:, 1], x[:, 0], x[:, 3] - x[:, 1], x[:, 2] - x[:, 0]], 1)
    expected = mask_utils.iou(xywh(a).tolist(), xywh(b).tolist(), [0] * len(b))
    np.testing.assert_allclose(boxes_lib.box_iou(a, b), expected, rtol=1e-9)


def test_perfect_detections_score_one_even_with_more_than_100_per_page():
    # 150 stems on a page: pycocotools' default maxDets=100 would cap recall at 2/3.
    boxes = grid_boxes(150)
    pages = [page(boxes, [42] * 150, boxes, [42] * 150, np.linspace(0.1, 1, 150))]
    pages.append(page(boxes[:30], [7] * 30, boxes[:30], [7] * 30, [0.5] * 30))
    r = evaluate.evaluate(pages)
    for key in ("map", "map50", "voc_map50", "voc_map25"):
        assert r[key] == pytest.approx(1.0), key
        assert r["filtered"][key] == pytest.approx(1.0), key
    assert r["filtered"]["classes"] == [42, 7]
    assert [row["name"] for row in r["top20"]] == ["stem", "clefCAlto"]


def test_partial_case_by_hand_and_score_order_matters():
    # Two objects; one found exactly, plus one false positive elsewhere.
    tp_first = page([SQUARE, FAR], [1, 1], [SQUARE, [90, 90, 99, 99]], [1, 1], [0.9, 0.8])
    r = evaluate.evaluate([tp_first], min_instances=1)
    # COCO: precision 1 at recall thresholds 0, 0.01, ..., 0.50 (51 of 101), 0 after.
    assert r["map"] == pytest.approx(51 / 101)
    assert r["map50"] == pytest.approx(51 / 101)
    assert r["voc_map50"] == pytest.approx(0.5)  # Recall 0.5 at precision 1.
    fp_first = tp_first._replace(det_scores=np.array([0.9, 0.95], np.float32))
    r = evaluate.evaluate([fp_first], min_instances=1)
    assert r["voc_map50"] == pytest.approx(0.25)  # Recall 0.5 reached at precision 0.5.
    assert r["map50"] == pytest.approx(0.5 * 51 / 101)


def test_coco_ap_over_iou_thresholds_by_hand():
    # IoU 0.72: a hit at thresholds 0.50, 0.55, ..., 0.70 (5 of 10), a miss above.
    p = page([SQUARE], [3], [[0, 0, 10, 7.2]], [3], [1.0])
    r = evaluate.evaluate([p], min_instances=1)
    assert r["map50"] == pytest.approx(1.0)
    assert r["map"] == pytest.approx(0.5)
    assert r["voc_map50"] == pytest.approx(1.0)


def test_tied_scores_are_one_operating_point_whatever_their_order():
    # Three objects, three tied detections: two hits and one miss, in every order.
    gt = [SQUARE, FAR, [20, 20, 30, 30]]
    dets = [SQUARE, FAR, [90, 90, 99, 99]]
    for perm in ([0, 1, 2], [2, 0, 1], [1, 2, 0]):
        p = page(gt, [5] * 3, [dets[i] for i in perm], [5] * 3, [0.5] * 3)
        # One point: recall 2/3 at precision 2/3 -> AP 4/9 (no credit for a ranking that the
        # scores do not express; the original's tied scores made this depend on list order).
        assert evaluate.evaluate([p], min_instances=1)["voc_map50"] == pytest.approx(4 / 9)


def test_voc_duplicate_goes_to_the_taken_object_as_in_the_devkit():
    # The second detection overlaps the taken object most (IoU 0.90) and the free one at 0.74:
    # the VOC rule makes it a false positive.
    gt = [SQUARE, [0, 2, 10, 12]]
    p = page(gt, [9, 9], [SQUARE, [0, 0.5, 10, 10.5]], [9, 9], [0.9, 0.8])
    assert evaluate.evaluate([p], min_instances=1)["voc_map50"] == pytest.approx(0.5)


def test_voc_ap_all_point_interpolation_by_hand():
    # Envelope: precision 1 up to recall 0.5, then 0.5 up to recall 1 -> 0.5 + 0.25.
    assert evaluate.voc_ap(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 0.5])) == 0.75
    assert evaluate.voc_ap(np.array([0.25, 0.5]), np.array([0.5, 1.0])) == 0.5


def test_headline_is_every_class_and_the_filtered_mean_is_labelled_beside_it():
    boxes = grid_boxes(25)
    good = page(boxes, [2] * 25, boxes, [2] * 25, [0.9] * 25, "good.png")
    bad = page(boxes[:3], [60] * 3, [], [], [], "bad.png")  # Three objects, all missed.
    r = evaluate.evaluate([good, bad], min_instances=20, num_worst_pages=1)
    # The rare class the detector missed counts in the headline: (1 + 0) / 2.
    assert r["map"] == pytest.approx(0.5) and r["map50"] == pytest.approx(0.5)
    assert r["filtered"]["map"] == pytest.approx(1.0) and r["filtered"]["classes"] == [2]
    assert r["filtered"]["min_instances"] == 20
    assert r["worst_pages"] == [1]
    assert r["pages"][1] == {
        "name": "bad.png",
        "n_gt": 3,
        "n_det": 0,
        "tp50": 0,
        "recall50": 0.0,
        "precision50": 1.0,
        "f1_50": 0.0,
    }


def test_pages_from_padded_keeps_valid_rows():
    gt_boxes = np.zeros((2, 3, 4), np.float32)
    gt_boxes[0, 0] = SQUARE
    gt_valid = np.array([[True, False, False], [False, False, False]])
    det_valid = np.array([[True, True], [False, True]])
    pages = evaluate.pages_from_padded(
        gt_boxes,
        np.array([[4, 0, 0], [0, 0, 0]]),
        gt_valid,
        np.zeros((2, 2, 4)),
        np.array([[4, 5], [0, 6]]),
        np.array([[0.5, 0.4], [0.0, 0.3]]),
        det_valid,
        names=["a", "b"],
    )
    assert [len(p.gt_classes) for p in pages] == [1, 0]
    np.testing.assert_array_equal(pages[1].det_classes, [6])
    assert pages[1].name == "b"


def test_bad_input_names_the_page():
    p = page([SQUARE], [0], [], [], [], "blank.png")
    with pytest.raises(ValueError, match=r"page 0 \('blank.png'\).*add 1 to DeepScores labels"):
        evaluate.evaluate([p])


def test_reports_are_written_and_readable(tmp_path):
    boxes = grid_boxes(21)
    p = page(boxes, [2] * 20 + [3], boxes[:20], [2] * 20, [0.9] * 20, "p.png")
    paths = evaluate.write_reports(evaluate.evaluate([p]), tmp_path)
    data = json.loads(paths["json"].read_text())
    assert data["map"] == pytest.approx(0.5) and data["filtered"]["map"] == pytest.approx(1.0)
    assert data["per_class"][1]["ap"] == 0.0  # clefCAlto: one object, never found.
    assert data["per_class"][1]["voc_ap25"] == 0.0
    md = paths["markdown"].read_text()
    assert "| COCO mAP@.5, all classes | 0.500 |" in md
    assert "| COCO mAP@.5, classes with >= 20 ground-truth objects (1) | 1.000 |" in md
    assert "| ledgerLine | 20 | 20 | 1.000 |" in md
    assert paths["pr_plot"].read_bytes()[:4] == b"\x89PNG"


def test_report_gives_every_figure_shipped_and_network_alone(tmp_path):
    boxes = grid_boxes(4)
    shipped = evaluate.evaluate([page(boxes, [2] * 4, boxes, [2] * 4, [0.9] * 4)])
    alone = page(boxes, [2] * 4, boxes[:2], [2] * 2, [0.9] * 2)  # Half the objects.
    shipped["network_alone"] = evaluate.evaluate([alone])
    shipped["overflow_pages"] = ["crowded.png"]
    md = evaluate.write_reports(shipped, tmp_path)["markdown"].read_text()
    assert "| metric | shipped pipeline | network alone |" in md
    assert "| COCO mAP@.5, all classes | 1.000 | 0.505 |" in md  # 101-point: 51 / 101.
    assert "| ledgerLine | 4 | 4 | 1.000 | 1.000 | 1.000 | 1.000 | 0.505 |" in md
    assert "**1 pages overflowed**: crowded.png." in md


def test_found_objects_marks_matched_ground_truth_of_the_right_class():
    gt = [SQUARE, FAR, [20, 20, 30, 30]]
    # FAR is found by a detection of the wrong class: still a miss.
    p = page(gt, [1, 2, 1], [SQUARE, FAR, [20, 20, 30, 24]], [1, 3, 1], [0.9, 0.9, 0.9])
    np.testing.assert_array_equal(evaluate.found_objects(p), [True, False, False])
    np.testing.assert_array_equal(evaluate.found_objects(p, iou=0.25), [True, False, True])


def test_class_matches_pool_every_page_of_a_class():
    p1 = page([SQUARE, FAR], [1, 1], [SQUARE, SQUARE], [1, 1], [0.9, 0.4])  # 2nd: duplicate.
    p2 = page([SQUARE], [2], [SQUARE, FAR], [1, 2], [0.7, 0.6])  # Both of the wrong class.
    m = evaluate.class_matches([p1, p2])
    assert sorted(m) == [1, 2]
    scores, tp, n_gt = m[1]
    np.testing.assert_allclose(scores, [0.9, 0.4, 0.7], rtol=1e-6)
    np.testing.assert_array_equal(tp, [True, False, False])
    assert n_gt == 2 and m[2][2] == 1 and not m[2][1].any()


def test_best_f1_threshold_matches_trying_every_cut():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 40))
        scores = rng.integers(0, 10, n) / 10.0  # Ties on purpose.
        tp = rng.random(n) < 0.5
        n_gt = int(tp.sum() + rng.integers(0, 5))
        best_t, best_f1 = 1.0, -1.0
        for t in sorted(set(scores.tolist()), reverse=True):  # Highest cut wins a tie.
            keep = scores >= t
            f1 = 2 * tp[keep].sum() / (n_gt + keep.sum())
            if f1 > best_f1 + 1e-12:
                best_t, best_f1 = t, f1
        assert evaluate.best_f1_threshold(scores, tp, n_gt) == pytest.approx((best_t, best_f1))
    # By hand: keeping 0.9 and 0.8 (one hit, one miss) of 1 object gives 2/3; 0.9 alone 1.
    assert evaluate.best_f1_threshold(np.array([0.8, 0.9]), np.array([False, True]), 1) == (
        0.9,
        1.0,
    )
    assert evaluate.best_f1_threshold(np.zeros(0), np.zeros(0, bool), 3) == (1.0, 0.0)


def test_page_overlay_draws_misses_red():
    p = page([SQUARE, [20, 20, 30, 30]], [1, 1], [SQUARE], [1], [1.0])
    pixels = np.asarray(evaluate.page_overlay(np.full((40, 40), 255, np.uint8), p))
    np.testing.assert_array_equal(pixels[20, 25], [255, 0, 0])  # The missed object's top edge.
    # The found one keeps its class colour.
    np.testing.assert_array_equal(pixels[0, 5], visualize.class_palette()[1])

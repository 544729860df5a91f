"""The robustness development set: conditions applied as configured, seeded per page, the
per-condition summary, and the shipped pipeline on a turned and a scanned real page."""

import zlib

import numpy as np
import pytest

from configs import default
from dwd_jax import classes as classes_lib
from dwd_jax.data import degrade
from dwd_jax.eval import evaluation, robustness
from dwd_jax.omr import ink


def _page():
    """u8[100, 140] white page with one black box (and a grey patch a bilevel scan changes),
    and the box, f32[1, 4]."""
    page = np.full((100, 140), 255, np.uint8)
    page[20:60, 30:90] = 0
    page[70:90, 100:130] = 160
    return page, np.float32([[20, 30, 60, 90]])


def test_a_condition_applies_its_families_in_degrade_order_from_one_generator():
    page, boxes = _page()
    # Named out of order: grey paper still comes before noise.
    condition = {
        "noise": {"sigma": (5.0, 5.0)},
        "grey_paper": {"paper": (220.0, 220.0), "ink": (30.0, 30.0)},
    }
    out, out_boxes = robustness.apply(page, boxes, condition, np.random.default_rng(7))
    rng = np.random.default_rng(7)
    want, _ = degrade.grey_paper(page, boxes, rng, paper=(220.0, 220.0), ink=(30.0, 30.0))
    want, _ = degrade.noise(want, boxes, rng, sigma=(5.0, 5.0))
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(out_boxes, boxes)


def test_scale_resizes_the_page_and_its_boxes_first():
    page, boxes = _page()
    out, out_boxes = robustness.apply(page, boxes, {"scale": 0.5}, np.random.default_rng(0))
    assert out.shape == (50, 70)
    np.testing.assert_allclose(out_boxes, boxes * 0.5)
    ys, xs = np.nonzero(out < 128)
    assert (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1) == (10, 15, 30, 45)


def test_an_unknown_name_is_an_error_naming_the_families():
    page, boxes = _page()
    with pytest.raises(KeyError, match="perspective"):
        robustness.apply(page, boxes, {"blurr": {"sigma": (1.0, 1.0)}}, np.random.default_rng(0))


def test_every_configured_condition_applies_and_is_fixed_by_its_seed():
    page, boxes = _page()
    for name, condition in default.get_config().robustness.conditions.items():
        a = robustness.apply(page, boxes, condition.to_dict(), np.random.default_rng(3))
        b = robustness.apply(page, boxes, condition.to_dict(), np.random.default_rng(3))
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        assert a[0].shape != page.shape or not np.array_equal(a[0], page), name


def test_degraded_pages_draw_per_page_and_leave_the_source_pages_alone():
    page, boxes = _page()
    truth = evaluation.GroundTruth("p", page, boxes, np.int32([1]))
    pages = [lambda: truth, lambda: truth]
    condition = {"noise": {"sigma": (8.0, 8.0)}}
    first = robustness.degraded_pages(pages, condition, (1, 2))
    again = robustness.degraded_pages(pages, condition, (1, 2))
    other = robustness.degraded_pages(pages, condition, (1, 3))
    np.testing.assert_array_equal(first[0]().image, again[0]().image)  # Read twice, same.
    assert not np.array_equal(first[0]().image, first[1]().image)  # Pages draw apart.
    assert not np.array_equal(first[0]().image, other[0]().image)  # Conditions draw apart.
    np.testing.assert_array_equal(truth.image, _page()[0])  # The source is untouched.
    assert first[1]().name == "p" and first[1]().classes.tolist() == [1]


def _results(shipped: dict[str, float], alone: dict[str, float], n_gt: dict[str, int]) -> dict:
    def per_class(aps):
        return [{"name": k, "ap50": v, "n_gt": n_gt[k]} for k, v in aps.items()]

    def means(aps):
        return {"map50": float(np.mean(list(aps.values()))), "map": 0.5}

    return {
        "num_pages": 2,
        **means(shipped),
        "per_class": per_class(shipped),
        "network_alone": {**means(alone), "per_class": per_class(alone)},
        "overflow_pages": [],
        "unconverged_pages": ["x"],
        "failed_pages": [],
    }


def test_summary_gives_ratios_to_clean_and_the_classes_post_processing_makes_worse():
    n_gt = {"stem": 10, "dot": 4, "flat": 0}
    clean = _results(
        {"stem": 0.8, "dot": 0.6, "flat": 0.0}, {"stem": 0.6, "dot": 0.6, "flat": 0.0}, n_gt
    )
    # stem: 0.70 < 0.85 - 1/10 is worse; dot: 0.40 is not below 0.60 - 1/4 = 0.35.
    noisy = _results(
        {"stem": 0.7, "dot": 0.4, "flat": 0.0}, {"stem": 0.85, "dot": 0.6, "flat": 0.0}, n_gt
    )
    figures = robustness.summary({"clean": clean, "noisy": noisy})
    assert figures["clean"]["map50_vs_clean"] == 1.0
    assert figures["noisy"]["map50_vs_clean"] == pytest.approx(1.1 / 1.4)
    assert figures["noisy"]["network_alone_map50_vs_clean"] == pytest.approx(1.45 / 1.2)
    assert figures["noisy"]["worse_with_post_processing"] == [
        {"class": "stem", "shipped_ap50": 0.7, "alone_ap50": 0.85, "n_gt": 10}
    ]
    assert figures["clean"]["worse_with_post_processing"] == []
    assert figures["noisy"]["unconverged_pages"] == 1
    table = robustness.markdown(figures, "t")
    assert "| noisy | 2 | 0.367 / 0.500 | 0.79x |" in table and "stem 0.70 < 0.85 (10)" in table


@pytest.fixture(scope="module")
def shipped_detector():
    from dwd_jax import pretrained
    from dwd_jax.detection import inference

    config = pretrained.get_config()
    return config, inference.Detector(config, pretrained.load_params())


def _registered_to_its_ink(load):
    """The real page's loader with its annotation moved onto its ink. The page's boxes sit
    above their ink, by 2.3 px at its top to 1.3 px at its foot (its black note heads' boxes
    against their ink components'); a ledger line's 4.6-px box measured on the ink then
    misses its annotation at IoU 0.5 wherever the network's does or not. The shift is a
    straight-line fit of the note heads' offsets over the page's height, applied to every
    box."""

    def registered():
        gt = load()
        heads = np.isin(gt.classes, classes_lib.model_labels(HEADS))
        staffs = gt.boxes[gt.classes == classes_lib.model_class(default.get_config(), "staff")]
        space = float(np.median(staffs[:, 2] - staffs[:, 0])) / 4
        inked, _ = ink.snap_solids(
            gt.image, gt.boxes[heads], gt.classes[heads], np.ones(heads.sum()),
            classes_lib.model_labels(HEADS), space,
        )
        centre = gt.boxes[heads][:, [0, 2]].mean(axis=1)
        slope, shift = np.polyfit(centre, inked[:, [0, 2]].mean(axis=1) - centre, 1)
        boxes = gt.boxes.copy()
        boxes[:, [0, 2]] += slope * boxes[:, [0, 2]] + shift
        return gt._replace(boxes=boxes)

    return registered


HEADS = ("noteheadBlackOnLine", "noteheadBlackInSpace")


def test_the_real_pages_annotation_sits_above_its_ink(sample_dir):
    """What `_registered_to_its_ink` corrects, measured: 1-2.5 px down, more at the top."""
    annotations = evaluation.folder_annotations(sample_dir, "v2_sample")
    (load,) = evaluation.folder_pages(sample_dir, annotations)
    gt, moved = load(), _registered_to_its_ink(load)()
    shift = (moved.boxes - gt.boxes)[:, 0]
    top, foot = shift[gt.boxes[:, 0].argmin()], shift[gt.boxes[:, 0].argmax()]
    assert 2.0 < top < 2.6 and 1.0 < foot < 1.6
    np.testing.assert_array_equal(moved.boxes[:, [1, 3]], gt.boxes[:, [1, 3]])


@pytest.mark.parametrize("condition", ["rotated", "scan"])
def test_post_processing_lowers_no_class_on_a_turned_or_noisy_real_page(
    shipped_detector, sample_dir, condition
):
    """The shipped model on the real page turned by a degree, and scanned (grey paper, blur,
    noise): no class's AP@.5 with the post-processing is below the network alone's by more
    than one object's worth, against the page's annotation registered to its ink
    (`_registered_to_its_ink`), and the post-processing still raises the mean."""
    config, detector = shipped_detector
    annotations = evaluation.folder_annotations(sample_dir, "v2_sample")
    pages = [_registered_to_its_ink(p) for p in evaluation.folder_pages(sample_dir, annotations)]
    seed = (config.robustness.seed, zlib.crc32(condition.encode()))
    spec = config.robustness.conditions[condition].to_dict()
    degraded = robustness.degraded_pages(pages, spec, seed)
    results = evaluation.evaluate_pages(degraded, detector, config=config)
    assert robustness.worse_with_post_processing(results) == []
    assert results["map50"] > results["network_alone"]["map50"]

"""dwd_jax.omr.capture and the rules on captured pages: the paper flattened, the skew measured
and undone, and the network's detections standing where the ink shows nothing."""

import json

import numpy as np
import pytest
from drawing import draw

from configs import default
from dwd_jax import boxes as boxes_lib
from dwd_jax import classes as classes_lib
from dwd_jax import image
from dwd_jax.data import degrade
from dwd_jax.detection import detect
from dwd_jax.omr import capture, ink

STAFF = classes_lib.label_of("staff") + 1
LEDGER = classes_lib.label_of("ledgerLine") + 1
DOT = classes_lib.label_of("augmentationDot") + 1
TUPLET = classes_lib.label_of("tuplet3") + 1


@pytest.fixture(scope="module")
def page(sample_page_path):
    return detect.load_page(sample_page_path)


@pytest.fixture(scope="module")
def staves_truth(sample_json):
    anns = json.loads(sample_json.read_text())["annotations"]
    want = np.float32([a["a_bbox"] for a in anns.values() if int(a["cat_id"][0]) == STAFF])
    return want[:, [1, 0, 3, 2]]


def _degraded(page, family, **params):
    no_boxes = np.zeros((0, 4), np.float32)
    return degrade.FAMILIES[family](page, no_boxes, np.random.default_rng(0), **params)[0]


def test_flatten_leaves_an_engraved_page_bit_for_bit(page):
    np.testing.assert_array_equal(capture.flatten(page), page)
    drawn = draw((200, 300), [(50.0, 10.0, 52.0, 290.0)], [(100.0, 100.0, 8.0, 10.0)])
    np.testing.assert_array_equal(capture.flatten(drawn, staff_space=16.0), drawn)


def test_flatten_finds_the_ink_under_grey_unevenly_lit_paper(page):
    clean = page < capture.INK_BELOW
    grey = _degraded(page, "grey_paper", paper=(228.0, 228.0), ink=(40.0, 40.0))
    dark = _degraded(grey, "uneven_light", darkest=(0.5, 0.5))
    fixed = dark < capture.INK_BELOW
    flat = capture.ink_mask(dark)
    # At a fixed level, the darker part of the paper turns to ink...
    assert (fixed & ~clean).sum() > clean.sum()
    # ...flattened, the ink is the clean page's but for anti-aliased edge pixels.
    assert (flat != clean).sum() < 0.05 * clean.sum()


def test_even_light_takes_out_the_shadow_and_keeps_the_papers_and_inks_grey(page):
    space = detect.estimate_staff_space(page)
    np.testing.assert_array_equal(capture.even_light(page, space), page)  # Engraved.
    grey = _degraded(page, "grey_paper", paper=(228.0, 228.0), ink=(40.0, 40.0))
    np.testing.assert_array_equal(capture.even_light(grey, space), grey)  # An even scan.
    dark = _degraded(grey, "uneven_light", darkest=(0.5, 0.5))
    even = capture.even_light(dark, space)
    paper, ink_ = page == 255, page == 0
    # The shadow halved the paper's grey in a corner; evened, the paper is one grey, its lit
    # part's, within a few levels, and the ink keeps its grey relative to it (not stretched
    # to black).
    lit = np.median(even[paper])
    assert np.abs(dark[paper].astype(int) - lit).max() > 100
    assert np.abs(even[paper].astype(int) - lit).mean() < 3
    assert np.percentile(np.abs(even[paper].astype(int) - lit), 99) < 12
    assert np.median(even[ink_]) == pytest.approx(40 * lit / 228, abs=3)
    # Flattening, as the rules read a page, makes the paper white and the ink black.
    assert np.median(capture.flatten(dark, space)[ink_]) < 5


@pytest.mark.parametrize("degrees", [0.0, 0.6, -1.0, 2.0])
def test_skew_is_the_angle_the_page_was_turned_by(page, degrees):
    turned = image.rotate(page, degrees)
    assert capture.skew(capture.ink_mask(turned)) == pytest.approx(degrees, abs=0.02)


def test_a_blank_page_has_no_skew():
    assert capture.skew(np.zeros((50, 60), bool)) == 0.0


def test_staves_of_a_turned_page_are_found_upright_and_turned_back(page, staves_truth):
    degrees = 1.0
    turned = image.rotate(page, degrees)
    truth = boxes_lib.rotate(staves_truth, page.shape, degrees)
    # A tuplet number: no rule touches it, so it keeps its box exactly.
    tuplet = np.float32([[500.5, 600.25, 530.5, 620.75]])
    config = default.get_config().omr
    config.update(ink.OFF)
    config.staves_from_ink = True
    space = detect.estimate_staff_space(turned)

    def staves_found(deskew):
        config.deskew = deskew
        boxes, classes, _ = ink.refine(
            turned, (tuplet, np.int32([TUPLET]), np.float32([0.9])), config, staff_space=space
        )
        np.testing.assert_array_equal(boxes[classes == TUPLET], tuplet)
        return boxes[classes == STAFF]

    found = staves_found(True)
    assert len(found) == 12
    assert boxes_lib.box_iou(truth, found).max(1).min() >= 0.9
    # As it lies, the staff finder follows the 1-degree lines along their slope.
    as_it_lies = staves_found(False)
    assert len(as_it_lies) == 12
    assert boxes_lib.box_iou(truth, as_it_lies).max(1).min() >= 0.9


def test_where_the_ink_shows_no_staff_or_dot_the_networks_detections_stand():
    noise = np.random.default_rng(0).integers(150, 256, (300, 400)).astype(np.uint8)
    boxes = np.float32([[0, 0, 100, 390], [120, 50, 122, 80], [200, 200, 206, 206]])
    classes = np.int32([STAFF, LEDGER, DOT])
    scores = np.float32([0.9, 0.8, 0.7])
    config = default.get_config().omr
    config.update(ink.OFF)
    config.update(staves_from_ink=True, ledger_lines_from_heads=True, dots_from_ink=True)
    got = ink.refine(noise, (boxes, classes, scores), config, staff_space=16.0)
    np.testing.assert_array_equal(got[1], classes)
    np.testing.assert_array_equal(got[0], boxes)
    np.testing.assert_array_equal(got[2], scores)

"""dwd_jax.ink: thin-line boxes re-measured on anti-aliased ink, against the exact geometry
the test page was drawn from."""

import json
from pathlib import Path

import numpy as np
import pytest

from configs import default
from dwd_jax import classes as classes_lib
from dwd_jax import detect, ink

STEM = classes_lib.label_of("stem") + 1
LEDGER = classes_lib.label_of("ledgerLine") + 1
NOTEHEAD = classes_lib.label_of("noteheadBlackOnLine") + 1
SUPER = 8  # Supersampling: a pixel's darkness is its exact ink coverage to 1/64.


def _page(shape, rects=(), ellipses=()):
    """u8 page with the given shapes in ink, anti-aliased by box-filtering an 8x raster.

    rects: (y0, x0, y1, x1) in page pixels, multiples of 1/8; ellipses: (cy, cx, ry, rx).
    """
    h, w = shape
    yy, xx = np.mgrid[0 : h * SUPER, 0 : w * SUPER]
    yy, xx = (yy + 0.5) / SUPER, (xx + 0.5) / SUPER
    ink_ = np.zeros((h * SUPER, w * SUPER), bool)
    for y0, x0, y1, x1 in rects:
        ink_ |= (yy >= y0) & (yy < y1) & (xx >= x0) & (xx < x1)
    for cy, cx, ry, rx in ellipses:
        ink_ |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    coverage = ink_.reshape(h, SUPER, w, SUPER).mean(axis=(1, 3))
    return np.round(255 * (1 - coverage)).astype(np.uint8)


def test_a_stem_crossing_staff_lines_gets_its_exact_columns():
    stem = (10.0, 20.375, 70.0, 22.125)  # 1.75 px wide, on no pixel boundary.
    staff = [(y, 0.0, y + 1.25, 60.0) for y in (20.0, 36.5, 53.0)]
    head = (68.0, 15.0, 5.0, 7.0)  # A note head at the stem's foot.
    page = _page((80, 60), [stem, *staff], [head])
    decoded = np.float32([[12.0, 21.5, 69.0, 24.5]])  # 1.25 px to the right, 3 px wide.
    out = ink.snap_lines(page, decoded, np.int32([STEM]), [STEM])
    # Only the columns move; the length stays as decoded.
    np.testing.assert_allclose(out[0], [12.0, 20.375, 69.0, 22.125], atol=0.01)


def test_a_ledger_line_through_its_note_head_gets_its_exact_rows():
    ledger = (40.25, 10.0, 42.375, 50.0)  # 2.125 px high, 40 wide.
    head = (41.0, 30.0, 6.0, 12.0)  # 24 px wide: 60 % of the line, as in engraved music.
    page = _page((80, 60), [ledger], [head])
    decoded = np.float32([[41.5, 8.0, 44.0, 51.0]])
    out = ink.snap_lines(page, decoded, np.int32([LEDGER]), [LEDGER])
    np.testing.assert_allclose(out[0], [40.25, 8.0, 42.375, 51.0], atol=0.01)


def test_boxes_without_a_thin_line_or_of_other_classes_are_kept():
    blob = (10.0, 10.0, 70.0, 40.0)  # Wider than any search window: not a line.
    stem = (10.0, 50.25, 70.0, 52.0)
    page = _page((80, 60), [blob, stem])
    boxes = np.float32(
        [
            [12.0, 24.0, 68.0, 26.0],  # A "stem" inside the blob.
            [12.0, 4.0, 68.0, 6.0],  # A "stem" on white paper.
            [12.0, 50.5, 68.0, 52.5],  # A note head over a stem: not a line class.
        ]
    )
    out = ink.snap_lines(page, boxes, np.int32([STEM, STEM, NOTEHEAD]), [STEM, LEDGER])
    np.testing.assert_array_equal(out, boxes)
    assert ink.snap_lines(page, boxes[:0], np.int32([]), [STEM]).shape == (0, 4)


def test_line_labels_come_from_the_config():
    config = default.get_config()
    np.testing.assert_array_equal(ink.line_labels(config), [STEM, LEDGER])
    config.decode.line_classes = ("stemm",)
    with pytest.raises(KeyError, match="unknown DeepScores class name 'stemm'"):
        ink.line_labels(config)


def test_the_real_sample_pages_stems_are_where_their_ink_is():
    """DeepScoresV2's own stem boxes, re-measured on the real page (another engraver and
    renderer): within 0.3 px, thickness within 0.05 px. Its ledger lines are not: their
    boxes sit 1.3-2.3 px above the ink (a DSv2 annotation offset, kept as it is)."""
    sample = Path("/work/shared/data/deepscores_v2_sample")
    anns = json.loads((sample / "deepscores_v2_sample.json").read_text())["annotations"]
    stems = [a["a_bbox"] for a in anns.values() if int(a["cat_id"][0]) == STEM]
    boxes = np.float32(stems)[:, [1, 0, 3, 2]]
    page = detect.load_page(sample / "images" / "lg-5230237-aug-emmentaler--page-2.png")
    out = ink.snap_lines(page, boxes, np.full(len(boxes), STEM), [STEM])
    assert len(boxes) == 149
    np.testing.assert_array_equal(out[:, [0, 2]], boxes[:, [0, 2]])
    assert np.abs(out - boxes).max() < 0.3
    np.testing.assert_allclose(out[:, 3] - out[:, 1], boxes[:, 3] - boxes[:, 1], atol=0.05)

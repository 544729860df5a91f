"""dwd_jax.staves and the ink re-measures built on it: staves found on drawn pages (exact) and
on the real DeepScoresV2 page (against its annotation), staff lines erased, symbols snapped."""

import json

import cv2
import numpy as np
import pytest
from drawing import draw
from scipy import ndimage

from configs import default
from dwd_jax import boxes as boxes_lib
from dwd_jax import classes as classes_lib
from dwd_jax.detection import detect
from dwd_jax.omr import ink, ledgers, staves

STAFF = classes_lib.label_of("staff") + 1
LEDGER = classes_lib.label_of("ledgerLine") + 1
SHARP = classes_lib.label_of("accidentalSharp") + 1
HEAD = classes_lib.label_of("noteheadBlackOnLine") + 1
SPACE = 16.0


def _staff(top, x0, x1):
    """Five 2-px lines, 16 px apart, from row `top`: rects (y0, x0, y1, x1)."""
    return [(top + k * SPACE, x0, top + k * SPACE + 2, x1) for k in range(5)]


def _page_with_two_staves():
    """Two staves with what cuts or borders real staff lines, and their expected boxes."""
    upper, lower = _staff(40.0, 10.0, 590.0), _staff(200.0, 10.0, 400.0)  # A short last one.
    rects = [
        *upper,
        *lower,
        (30.0, 100.0, 110.0, 101.5),  # A stem across the upper staff.
        (71.0, 150.0, 80.0, 400.0),  # A beam lying on its third line, 9 px thick.
        (20.0, 200.0, 21.5, 420.0),  # A volta line 1.25 spaces above: long, thin, shorter.
        (30.0, 20.0, 130.0, 200.0),  # A wide block over the upper staff's first 12 spaces.
        (195.0, 2.0, 270.0, 10.0),  # A thick barline closing the lower staff at the left.
    ]
    heads = [(48.0, 300.0, 8.0, 10.0), (216.0, 250.0, 8.0, 10.0)]
    page = draw((300, 600), rects, heads)
    want = np.float32([[40, 10, 106, 590], [200, 2, 266, 400]])
    return page, want


def test_staves_are_the_union_of_their_five_lines():
    page, want = _page_with_two_staves()
    found = staves.find(page < ink.INK_BELOW, SPACE)
    # The lower staff reaches through the barline that closes it.
    np.testing.assert_array_equal(found.boxes, want)
    np.testing.assert_array_equal(found.lines[0, :, 0], [40, 56, 72, 88, 104])
    assert found.lines.shape == (2, 5, 4)
    assert ((found.scores > 0.5) & (found.scores <= 1)).all()
    # Not a staff: four lines, or lines twice as far apart.
    for rects in (_staff(40.0, 10.0, 590.0)[:4], _staff(40.0, 10.0, 590.0)[::2]):
        empty = staves.find(draw((300, 600), rects) < ink.INK_BELOW, SPACE)
        assert empty.boxes.shape == (0, 4) and empty.lines.shape == (0, 5, 4)


def test_the_real_sample_pages_staves_match_its_annotation(sample_json, sample_page_path):
    """Another engraver and renderer: all 12 staves, each within DSv2's own 2-px offset
    (IoU >= 0.94), and no other."""
    anns = json.loads(sample_json.read_text())["annotations"]
    want = np.float32([a["a_bbox"] for a in anns.values() if int(a["cat_id"][0]) == STAFF])
    want = want[:, [1, 0, 3, 2]]
    page = detect.load_page(sample_page_path)
    found = staves.find(page < ink.INK_BELOW, detect.estimate_staff_space(page))
    assert len(want) == len(found.boxes) == 12
    iou = boxes_lib.box_iou(want, found.boxes)
    np.testing.assert_array_equal(np.sort(iou.argmax(1)), np.arange(12))  # One each.
    assert iou.max(1).min() >= 0.94
    assert (np.diff(found.boxes[:, 0]) > 0).all()  # Top to bottom.


def test_erasing_lines_keeps_what_crosses_them_and_parts_what_touches_them():
    lines = _staff(40.0, 0.0, 200.0)
    sharp = [(34.0, 50.0, 80.0, 52.0), (34.0, 58.0, 80.0, 60.0)]  # Two strokes across lines.
    above, below = (30.0, 120.0, 40.0, 130.0), (42.0, 133.0, 50.0, 143.0)  # Touch line 1.
    page = draw((130, 200), [*lines, *sharp, above, below])
    ink_mask = page < ink.INK_BELOW
    found = staves.find(ink_mask, SPACE)
    erased = staves.erase_lines(ink_mask, found)
    labels, count = ndimage.label(erased, structure=np.ones((3, 3), bool))
    # Left: the sharp's two strokes, whole (the lines between them gone), and the two blocks
    # that touch line 1 from either side, apart and without its pixels. (Blocks touching a
    # line from both sides in the same columns would read as one symbol crossing it.)
    assert count == 4
    for rect in (*sharp, above, below):
        y0, x0, y1, x1 = (int(v) for v in rect)
        assert len(np.unique(labels[y0:y1, x0:x1])) == 1 and labels[y0, x0] > 0
        assert (labels == labels[y0, x0]).sum() == (y1 - y0) * (x1 - x0)
    assert not erased[:, 150:].any()  # Bare lines are gone.


def test_a_noisy_scans_ragged_lines_are_erased_as_thick_as_their_ink():
    """Noise gives a scanned line a pixel more above or below in half its columns: the
    finder's whole rows measure it 2 px, but ink right above and below such a band meets in
    many columns, which read as crossed. The line is erased as thick as its runs (3 px) and
    what crosses it stays whole."""
    lines = _staff(40.0, 0.0, 200.0)
    sharp = [(34.0, 50.0, 80.0, 52.0), (34.0, 58.0, 80.0, 60.0)]
    ink_mask = draw((130, 200), [*lines, *sharp]) < ink.INK_BELOW
    rng = np.random.default_rng(0)
    for y0, _, y1, _ in lines:
        ink_mask[int(y0) - 1, rng.random(200) < 0.5] = True
        ink_mask[int(y1), rng.random(200) < 0.5] = True
    found = staves.find(ink_mask, SPACE)
    assert len(found.boxes) == 1
    np.testing.assert_array_equal(staves.thicknesses(found), [[2, 2, 2, 2, 2]])
    erased = staves.erase_lines(ink_mask, found)
    # Measured with the finder's 2-px band: 1,402 of the 1,938 pixels past the sharp stayed.
    assert erased[:, 70:].sum() == 0
    for y0, x0, y1, x1 in sharp:
        assert erased[int(y0) : int(y1), int(x0) : int(x1)].all()


def test_symbols_take_their_component_box_and_staves_replace_the_networks():
    lines = _staff(40.0, 0.0, 300.0)
    sharp = [(30.0, 50.0, 76.0, 52.0), (34.0, 58.0, 80.0, 60.0), (50.0, 48.0, 55.0, 62.0)]
    ledger = (120.0, 200.0, 122.0, 230.0)  # One space below the staff, under a note head.
    page = draw((140, 300), [*lines, *sharp, ledger], [(121.0, 215.0, 6.0, 8.0)])
    boxes = np.float32(
        [
            [33.0, 47.0, 78.0, 64.0],  # The sharp, decoded 2-4 px off.
            [0.0, 0.0, 120.0, 290.0],  # The network's own staff box.
            [71.0, 150.0, 74.0, 180.0],  # A "ledger line" on the third staff line.
            [119.0, 196.0, 123.0, 226.0],  # The ledger line, decoded 4 px to the left.
            [114.0, 206.0, 128.0, 223.0],  # Its note head.
        ]
    )
    classes = np.int32([SHARP, STAFF, LEDGER, LEDGER, HEAD])
    scores = np.float32([0.9, 0.8, 0.7, 0.6, 0.5])
    got_boxes, got_classes, got_scores = ink.refine(
        page, (boxes, classes, scores), default.get_config().omr, staff_space=SPACE
    )
    np.testing.assert_array_equal(got_classes, [SHARP, HEAD, STAFF, LEDGER])
    np.testing.assert_array_equal(got_boxes[0], [30, 48, 80, 62])  # The sharp's ink.
    rows, cols = np.nonzero(draw((140, 300), ellipses=[(121.0, 215.0, 6.0, 8.0)]) < 128)
    head = [rows.min(), cols.min(), rows.max() + 1, cols.max() + 1]
    # A solid class: its own ink, within the pixel the opening takes off its narrow ends.
    np.testing.assert_allclose(got_boxes[1], head, atol=1)
    np.testing.assert_array_equal(got_boxes[2], [40, 0, 106, 300])
    np.testing.assert_array_equal(got_boxes[3], ledger)  # From the head, on the ink.
    np.testing.assert_array_equal(got_scores[[0, 1, 3]], scores[[0, 4, 4]])
    # Off: the network's boxes and classes as decoded.
    config = default.get_config()
    config.omr.enabled = False
    got = ink.refine(page, (boxes, classes, scores), config.omr, staff_space=SPACE)
    np.testing.assert_array_equal(got[0], boxes)
    np.testing.assert_array_equal(got[1], classes)
    # Staves only: the ledger line on the staff line is dropped, the other kept as decoded.
    config.omr.enabled = True
    config.omr.update(ink.OFF)
    config.omr.staves_from_ink = True
    got = ink.refine(page, (boxes, classes, scores), config.omr, staff_space=SPACE)
    np.testing.assert_array_equal(got[1], [SHARP, LEDGER, HEAD, STAFF])
    np.testing.assert_array_equal(got[0][1], boxes[3])


def test_note_heads_beyond_a_staff_give_their_ledger_lines():
    """Heads on and between ledger lines above and below a staff; a chord on one line."""
    lines = _staff(80.0, 0.0, 400.0)  # Line centres 81 ... 145.
    ledger_rows = {1: 64.0, 2: 48.0, 3: 32.0, -1: 160.0, -2: 176.0}  # Top edges, 2 px.
    # (column, ledger lines from x0 to x1, head centre row): on line 3 above; in the space
    # above line 1; a chord on line 1 below and the space under it (one wider line); and
    # heads at the staff's edge and inside it (no ledger line).
    want = [(50.0, 80.0, 3, 33.0), (120.0, 150.0, 1, 57.0), (200.0, 236.0, -1, 161.0)]
    rects, heads = list(lines), []
    for x0, x1, level, centre in want:
        for k in range(1, abs(level) + 1):
            top = ledger_rows[k if level > 0 else -k]
            rects.append((top, x0, top + 2, x1))
        heads.append((centre, (x0 + x1) / 2, 6.0, 8.0))
    heads += [(169.0, 224.0, 6.0, 8.0), (73.0, 300.0, 6.0, 8.0), (113.0, 340.0, 6.0, 8.0)]
    # A false head four spaces up, over bare paper: no ink run, no lines.
    false_head = (20.0, 370.0, 6.0, 8.0)
    page = draw((200, 400), rects, heads)
    ink_mask = page < ink.INK_BELOW
    found = staves.find(ink_mask, SPACE)
    head_boxes = np.float32(
        [[cy - 6, cx - 8, cy + 6, cx + 8] for cy, cx, _, _ in [*heads, false_head]]
    )
    scores = np.float32([0.9, 0.8, 0.7, 0.95, 0.6, 0.5, 0.99])
    boxes, got_scores = ledgers.from_heads(ink_mask, found, head_boxes, scores, SPACE)
    expected = {
        (64, 50, 66, 80): 0.9,
        (48, 50, 50, 80): 0.9,
        (32, 50, 34, 80): 0.9,
        (64, 120, 66, 150): 0.8,
        (160, 200, 162, 236): 0.95,  # The chord's line, with its best head's score.
    }
    got = {
        tuple(int(v) for v in np.round(b)): float(s) for b, s in zip(boxes, got_scores, strict=True)
    }
    assert got.keys() == expected.keys()
    for key, score in expected.items():
        assert got[key] == pytest.approx(score)


def test_a_breve_in_a_space_parted_by_the_erasure_is_one_symbol():
    """A breve between two staff lines whose top and bottom strokes lie on them: erasing the
    lines parts its left bar from the rest, and the larger part alone is within the size
    guard. The erased line ink joins the parts again, so it takes both."""
    breve = classes_lib.label_of("noteheadDoubleWholeInSpace") + 1
    bars = [(52.0, 100.0, 78.0, 104.0), (52.0, 112.0, 78.0, 134.0)]
    page = draw((140, 240), [*_staff(40.0, 0.0, 240.0), *bars])
    config = default.get_config().omr
    config.update(ink.OFF)
    config.symbol_classes = ("noteheadDoubleWholeInSpace",)
    detections = (np.float32([[50, 98, 80, 136]]), np.int32([breve]), np.float32([0.9]))
    got, _, _ = ink.refine(page, detections, config, staff_space=SPACE)
    np.testing.assert_array_equal(got, [[52, 100, 78, 134]])


def test_a_pale_captures_lines_are_read_at_otsus_level_where_it_shows_more_staves():
    page, want = _page_with_two_staves()
    level, found = ink.line_level(page, SPACE)
    assert level == ink.INK_BELOW  # Dark lines: the fixed level, exactly.
    np.testing.assert_array_equal(found.boxes, want)
    # Blurred (a coarse or defocused capture): the 2-px lines spread into greys above 128.
    pale = cv2.GaussianBlur(page, (0, 0), 1.5)
    assert len(staves.find(pale < ink.INK_BELOW, SPACE).boxes) == 0
    level, found = ink.line_level(pale, SPACE)
    assert level > ink.INK_BELOW
    np.testing.assert_array_equal(found.boxes, staves.find(pale < level, SPACE).boxes)
    np.testing.assert_allclose(found.boxes, want, atol=2)
    # The shipped rules then give the staffs; with a fixed level, the network's stand.
    config = default.get_config()
    config.omr.update(ink.OFF)
    config.omr.staves_from_ink = True
    config.omr.pale_lines = True
    none = (np.zeros((0, 4), np.float32), np.zeros(0, np.int32), np.zeros(0, np.float32))
    boxes, classes, _ = ink.refine(pale, none, config.omr, staff_space=SPACE)
    np.testing.assert_array_equal(classes, [STAFF, STAFF])
    np.testing.assert_allclose(boxes, want, atol=2)
    config.omr.pale_lines = False
    assert len(ink.refine(pale, none, config.omr, staff_space=SPACE)[0]) == 0


def _turned_staff(top, slope, x0=10.0, x1=790.0):
    """Five 2-px lines 16 px apart, their tops at row top + k * 16 at column x0 and climbing
    `slope` rows per column: `draw`'s beams."""
    return [
        (x0, x1, top + k * SPACE, top + k * SPACE + slope * (x1 - x0), 2.0) for k in range(5)
    ]


def test_staves_are_followed_along_turned_and_converging_lines():
    """A photographed page: the upper staff climbs, the lower falls (a tilted camera), both by
    about a staff space across the page, far beyond the quarter space pieces of one level
    line may differ by. Stems and note heads cut the lines."""
    upper, lower = _turned_staff(40.0, 0.02), _turned_staff(180.0, -0.015)
    stems = [(20.0, x, 140.0, x + 1.5) for x in (150.0, 400.0, 650.0)]
    heads = [(50.0 + 0.02 * 290 + SPACE, 300.0, 7.0, 9.0), (200.0 - 0.015 * 490, 500.0, 7.0, 9.0)]
    ledger_top = 40.0 + 0.02 * (700.0 - 10.0) - SPACE  # One space above the top line at 700.
    rects = [*stems, (ledger_top, 685.0, ledger_top + 2, 715.0)]
    head_above = (ledger_top + 1 - SPACE / 2, 700.0, 6.0, 8.0)  # In the space above it.
    page = draw((300, 800), rects, [*heads, head_above], beams=[*upper, *lower])
    ink_mask = page < ink.INK_BELOW
    found = staves.find(ink_mask, SPACE)
    assert len(found.boxes) == 2
    for s, (lines, slope) in enumerate(((upper, 0.02), (lower, -0.015))):
        np.testing.assert_allclose(found.tilts[s], slope, atol=0.001)
        # Each line's centre along it, within half a pixel at both ends and the middle.
        for x in (15.0, 400.0, 785.0):
            want = [t0 + slope * (x - x0) + 1.0 for x0, _, t0, _, _ in lines]
            np.testing.assert_allclose(staves.centres_at(found, [x])[0, s], want, atol=0.5)
        np.testing.assert_allclose(staves.thicknesses(found)[s], 2.0, atol=0.6)
        # The staff's box is its lines' extent: the top line's highest row to the bottom's
        # lowest.
        ys = [t for _, _, t0, t1, _ in lines for t in (t0, t1)]
        np.testing.assert_allclose(found.boxes[s, [0, 2]], [min(ys), max(ys) + 2], atol=1.0)
        np.testing.assert_allclose(found.boxes[s, [1, 3]], [10, 790], atol=1.0)
    # Erased along their slope: bare lines leave nothing, the stems stay whole.
    erased = staves.erase_lines(ink_mask, found)
    bare = np.ones(800, bool)
    for _, x0, _, x1 in stems:
        bare[int(x0) - 2 : int(x1) + 3] = False
    for _, x, _, rx in (*heads, head_above):
        bare[int(x - rx) - 2 : int(x + rx) + 3] = False
    bare[683:718] = False
    assert not erased[:, bare].any()
    for y0, x0, y1, _ in stems:
        assert erased[int(y0) : int(y1), int(x0)].all()
    # The head above the climbing staff stands on a ledger line one of its spaces above it.
    head_box = np.float32([[head_above[0] - 6, 692, head_above[0] + 6, 708]])
    boxes, _ = ledgers.from_heads(ink_mask, found, head_box, np.float32([0.9]), SPACE)
    np.testing.assert_allclose(boxes, [[ledger_top, 685, ledger_top + 2, 715]], atol=1.0)


def test_long_runs_are_those_a_run_length_count_keeps():
    """`_keep_runs` against runs counted one row at a time, on random masks and lengths
    (fractional lengths round up; runs at the page's edges are cut there)."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        height, width = rng.integers(1, 40, 2)
        mask = rng.random((height, width)) < rng.random()
        length = rng.uniform(0.0, 12.0)
        want = np.zeros_like(mask)
        for y in range(height):
            x = 0
            while x < width:
                end = x
                while end < width and mask[y, end]:
                    end += 1
                if end > x and end - x >= length:
                    want[y, x:end] = True
                x = max(end, x + 1)
        np.testing.assert_array_equal(staves._keep_runs(mask, length), want)

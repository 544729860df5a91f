"""dwd_jax.ink: thin-line boxes re-measured on anti-aliased ink, against the exact geometry
the test page was drawn from."""

import json
from unittest import mock

import numpy as np
import pytest
from drawing import draw as _page
from scipy import ndimage, optimize, special

from configs import default
from dwd_jax import classes as classes_lib
from dwd_jax import image as image_lib
from dwd_jax.detection import detect
from dwd_jax.omr import ink

STEM = classes_lib.label_of("stem") + 1
LEDGER = classes_lib.label_of("ledgerLine") + 1
STAFF = classes_lib.label_of("staff") + 1
NOTEHEAD = classes_lib.label_of("noteheadBlackOnLine") + 1


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


def test_a_ledger_line_on_scanned_paper_gets_its_rows():
    """Grey, noisy, blurred paper (a scan, flattened as the rules read it): the line is read
    above the paper's darkness, not taken for something wider than a line."""
    ledger = (40.0, 10.0, 44.0, 50.0)  # 4 px high, 40 wide.
    head = (42.0, 30.0, 7.0, 12.0)
    coverage = 1.0 - _page((80, 60), [ledger], [head]).astype(np.float64) / 255.0
    paper, ink_level = 232.0, 40.0
    grey = paper - (paper - ink_level) * ndimage.gaussian_filter(coverage, 1.2)
    grey += np.random.default_rng(0).normal(0.0, 6.0, grey.shape)
    page = np.clip(np.round(grey), 0, 255).astype(np.uint8)
    decoded = np.float32([[41.5, 8.0, 43.5, 51.0]])  # Centred 0.5 px low, half as thick.
    out = ink.snap_lines(page, decoded, np.int32([LEDGER]), [LEDGER])
    # Grey ink is lighter than black: the summed darkness reads the line about 0.8x as thick.
    assert abs((out[0, 0] + out[0, 2]) / 2 - 42.0) < 0.3
    assert 3.0 < out[0, 2] - out[0, 0] < 4.5
    np.testing.assert_array_equal(out[0, [1, 3]], decoded[0, [1, 3]])


def test_a_ledger_line_blurred_past_its_search_window_gets_its_rows():
    """A blurred line decoded thinner than it is and off its centre: its halo reaches the
    search window's edge, and its edges are where the blurred profile falls to half its
    peak (the decoded box was kept)."""
    ledger, sigma = (40.0, 10.0, 44.0, 50.0), 1.8  # 4 px high, 40 wide.
    coverage = 1.0 - _page((80, 60), [ledger]).astype(np.float64) / 255.0
    paper, ink_level = 232.0, 40.0
    grey = paper - (paper - ink_level) * ndimage.gaussian_filter(coverage, sigma)
    grey += np.random.default_rng(0).normal(0.0, 4.0, grey.shape)
    page = np.clip(np.round(grey), 0, 255).astype(np.uint8)
    decoded = np.float32([[42.5, 8.0, 44.5, 51.0]])  # Centred 1.5 px low, half as thick.
    out = ink.snap_lines(page, decoded, np.int32([LEDGER]), [LEDGER])

    def profile(y):  # The 4-px step pair blurred by the Gaussian, exactly.
        scale = sigma * 2**0.5
        return (special.erf((y - 40.0) / scale) - special.erf((y - 44.0) / scale)) / 2

    reach = optimize.brentq(lambda d: profile(42.0 + d) - profile(42.0) / 2, 0.0, 10.0)
    np.testing.assert_allclose(out[0, [0, 2]], [42.0 - reach, 42.0 + reach], atol=0.3)
    np.testing.assert_array_equal(out[0, [1, 3]], decoded[0, [1, 3]])


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


def test_labels_of_the_config_names():
    config = default.get_config()
    np.testing.assert_array_equal(
        classes_lib.model_labels(config.omr.line_classes), [STEM, LEDGER]
    )
    with pytest.raises(KeyError, match="unknown DeepScores class name 'stemm'"):
        classes_lib.model_labels(["stemm"])
    # ink.OFF names real fields, each on in the default.
    assert all(
        bool(len(config.omr[k]) if k.endswith("classes") else config.omr[k]) for k in ink.OFF
    )


def test_the_real_sample_pages_stems_are_where_their_ink_is(sample_json, sample_page_path):
    """DeepScoresV2's own stem boxes, re-measured on the real page (another engraver and
    renderer): within 0.3 px, thickness within 0.05 px. Its ledger lines are not: their
    boxes sit 1.3-2.3 px above the ink (a DSv2 annotation offset, kept as it is)."""
    anns = json.loads(sample_json.read_text())["annotations"]
    stems = [a["a_bbox"] for a in anns.values() if int(a["cat_id"][0]) == STEM]
    boxes = np.float32(stems)[:, [1, 0, 3, 2]]
    page = detect.load_page(sample_page_path)
    out = ink.snap_lines(page, boxes, np.full(len(boxes), STEM), [STEM])
    assert len(boxes) == 149
    np.testing.assert_array_equal(out[:, [0, 2]], boxes[:, [0, 2]])
    assert np.abs(out - boxes).max() < 0.3
    np.testing.assert_allclose(out[:, 3] - out[:, 1], boxes[:, 3] - boxes[:, 1], atol=0.05)


def test_opening_by_a_square_is_scipys_exactly(sample_page_path):
    """The separable opening that finds solids equals `ndimage.binary_opening` by the square,
    odd and even sides, on a real page's ink (a crop, for time)."""
    page = detect.load_page(sample_page_path)
    mask = page[500:1300, :1200] < ink.INK_BELOW
    for size in (2, 5, 8):
        want = ndimage.binary_opening(mask, structure=np.ones((size, size), bool))
        assert want.any() and (want != mask).any()
        np.testing.assert_array_equal(image_lib.open_rect(mask, size, size), want)


BEAM = classes_lib.label_of("beam") + 1


def test_a_beam_takes_its_ink_box_and_its_second_fragment_is_dropped():
    space = 16.0  # Staff lines 1.5 px, stems 1.75, beams 8 (0.5 staff spaces) 4 apart.
    staff = [(20.0 + k * space, 0.0, 21.5 + k * space, 200.0) for k in range(5)]
    stems = [(30.0, x, 110.0, x + 1.75) for x in (40.0, 90.0, 140.0)]
    # A rising primary beam over the three stems and a secondary one 4 px under its right half.
    primary = (40.0, 141.75, 100.0, 88.0, 8.0)
    beams = [primary, (90.0, 141.75, 100.0 - 12.0 * 50 / 101.75 + 12.0, 100.0, 8.0)]
    page = _page((130, 200), [*staff, *stems], [(112.0, 35.0, 5.0, 7.0)], beams)
    # The reference: each beam's pixels drawn alone, at the same ink threshold.
    want = []
    for beam in beams:
        rows, cols = np.nonzero(_page((130, 200), beams=[beam]) < 128)
        want.append([rows.min(), cols.min(), rows.max() + 1, cols.max() + 1])
    boxes = np.float32(
        [
            [86.0, 30.0, 104.0, 120.0],  # The primary beam, left fragment (best score).
            [84.0, 70.0, 102.0, 150.0],  # The primary beam, right fragment.
            [101.0, 92.0, 112.0, 140.0],  # The secondary beam.
            [20.0, 160.0, 40.0, 190.0],  # Staff lines only: no solid ink under it.
            [96.0, 43.0, 130.0, 60.0],  # Grazes the primary beam (IoU 0.085): kept.
        ]
    )
    scores = np.float32([0.9, 0.8, 0.7, 0.6, 0.5])
    out, keep = ink.snap_solids(page, boxes, np.full(5, BEAM), scores, [BEAM], space)
    np.testing.assert_array_equal(keep, [True, False, True, True, True])
    # Within a pixel: the opening rounds off a slanted beam's acute corners.
    np.testing.assert_allclose(out[0], want[0], atol=1)
    np.testing.assert_allclose(out[2], want[1], atol=1)
    np.testing.assert_array_equal(out[3:], boxes[3:])
    # The same through `refine`, with the default config (stems, ledger lines and symbols
    # too), which also adds the staff found on the ink: its five lines' rows 20 to 85.
    detections = (boxes, np.full(5, BEAM), scores)
    got = ink.refine(page, detections, default.get_config().omr, staff_space=space)
    np.testing.assert_array_equal(got[0][:-1], out[keep])
    np.testing.assert_array_equal(got[0][-1], [20, 0, 85, 200])
    np.testing.assert_array_equal(got[1], [BEAM] * 4 + [STAFF])
    np.testing.assert_array_equal(got[2][:-1], scores[keep])


def test_a_chords_touching_note_heads_keep_their_own_boxes():
    heads = [(40.0, 30.0, 5.0, 7.0), (35.0, 42.0, 5.0, 7.0)]  # A second: they touch.
    page = _page((80, 80), [(20.0 + 10 * k, 0.0, 21.5 + 10 * k, 80.0) for k in range(5)], heads)
    k = classes_lib.label_of("noteheadBlackInSpace") + 1
    boxes = np.float32([[35.5, 23.5, 45.0, 37.0], [30.0, 35.0, 40.5, 49.0]])
    out, keep = ink.snap_solids(page, boxes, np.full(2, k), np.float32([0.9, 0.8]), [k], 20.0)
    np.testing.assert_array_equal(keep, [True, True])
    np.testing.assert_array_equal(out, boxes)


def test_a_head_the_network_boxed_alone_keeps_its_box_beside_a_touching_second():
    heads = [(40.0, 30.0, 5.0, 7.0), (35.0, 42.0, 5.0, 7.0)]  # A second: they touch.
    page = _page((80, 80), [(20.0 + 10 * k, 0.0, 21.5 + 10 * k, 80.0) for k in range(5)], heads)
    k = classes_lib.label_of("noteheadBlackInSpace") + 1
    # Only the first head detected: the component holding both is 1.7x its width.
    box = np.float32([[35.5, 23.5, 45.0, 37.0]])
    out, keep = ink.snap_solids(page, box, np.int32([k]), np.float32([0.9]), [k], 20.0)
    np.testing.assert_array_equal(out, box)
    # A head alone on its component takes the component's box, even 1.2x its decoded size.
    alone = _page((80, 80), [], heads[:1])
    out, _ = ink.snap_solids(alone, np.float32([[36.0, 24.5, 44.0, 35.5]]), np.int32([k]),
                             np.float32([0.9]), [k], 20.0)
    rows, cols = np.nonzero(image_lib.open_rect(alone < 128, 7, 7))  # 0.35 staff spaces.
    np.testing.assert_array_equal(out[0], [rows.min(), cols.min(), rows.max() + 1, cols.max() + 1])


def test_a_symbol_keeps_its_box_when_its_component_is_not_its_size():
    k = classes_lib.label_of("restQuarter") + 1
    mask = np.zeros((60, 120), bool)
    mask[10:40, 10:20] = True  # The rest...
    mask[20:30, 20:70] = True  # ...merged with a long neighbour on a blurred scan.
    mask[45:50, 90:95] = True  # A fragment of a symbol that fell apart.
    boxes = np.float32([[9, 9, 41, 21], [40, 85, 56, 100]])

    def snap(change):
        return ink.snap_symbols(mask, boxes, np.int32([k, k]), np.float32([0.9, 0.8]), [k], change)

    out, keep = snap(2.0)
    np.testing.assert_array_equal(out, boxes)  # 6x too wide, 3x too small: kept as decoded.
    assert keep.all()
    out, _ = snap(np.inf)
    np.testing.assert_array_equal(out, [[10, 10, 40, 70], [45, 90, 50, 95]])
    out, _ = snap(8.0)  # Within the factor: the component's box.
    np.testing.assert_array_equal(out, [[10, 10, 40, 70], [45, 90, 50, 95]])


def test_accidentals_take_a_component_only_within_their_own_factor():
    """A blurred natural joined to its neighbour: a component 1.9 times its box's width. With
    `accidentals_max_change` below that the natural keeps its box; a dot's component as much
    wider (within `symbol_max_change`) is still its own."""
    config = default.get_config().omr
    config.symbol_max_change, config.accidentals_max_change = 2.0, 1.6
    natural = classes_lib.label_of("accidentalNatural") + 1
    dot = classes_lib.label_of("augmentationDot") + 1
    mask = np.zeros((60, 120), bool)
    mask[10:40, 10:29] = True  # The natural and what it merged with.
    mask[45:50, 60:79] = True  # A dot smeared sideways.
    boxes = np.float32([[10, 10, 40, 20], [45, 60, 50, 70]])
    classes = np.int32([natural, dot])
    changes = ink.max_changes(config, classes)
    np.testing.assert_array_equal(changes, np.float32([1.6, 2.0]))
    out, keep = ink.snap_symbols(mask, boxes, classes, np.float32([0.9, 0.8]), [natural, dot],
                                 changes)
    assert keep.all()
    np.testing.assert_array_equal(out, [[10, 10, 40, 20], [45, 60, 50, 79]])
    config.accidentals_max_change = 2.0
    out, _ = ink.snap_symbols(mask, boxes, classes, np.float32([0.9, 0.8]), [natural, dot],
                              ink.max_changes(config, classes))
    np.testing.assert_array_equal(out[0], [10, 10, 40, 29])


def test_two_symbols_on_one_component_keep_their_boxes_when_one_is_too_small_for_it():
    """A key signature's flat touching the next on a blurred scan: one component, 1.4 times
    the first flat's box's height and 1.5 times its width (within the factors) and 2.6 times
    the second's width (beyond them). Neither takes it, whichever is decoded first; a
    detection inside the first flat's box is its fragment, not another object, and alone the
    flat takes its own ink."""
    k = classes_lib.label_of("keyFlat") + 1
    mask = np.zeros((80, 60), bool)
    mask[10:40, 10:20] = True  # The first flat...
    mask[30:55, 20:28] = True  # ...touching the second.
    boxes = np.float32([[9, 9, 41, 21], [29, 21, 56, 28]])
    merged = [10, 10, 55, 28]

    def snap(boxes, scores):
        return ink.snap_symbols(mask, boxes, np.full(len(boxes), k), np.float32(scores), [k], 2.0)

    for scores in ([0.9, 0.8], [0.8, 0.9]):
        out, keep = snap(boxes, scores)
        np.testing.assert_array_equal(out, boxes)
        assert keep.all()
    np.testing.assert_array_equal(snap(boxes[:1], [0.9])[0], [merged])
    inside = np.float32([boxes[0], [20, 12, 30, 17]])  # Centre (25, 14.5): in the first's box.
    np.testing.assert_array_equal(snap(inside, [0.9, 0.8])[0][0], merged)


def test_whole_notes_on_a_staff_line_the_erasure_missed_keep_their_boxes():
    """On a photograph the staff-line erasure can miss a piece of line: two whole notes on it
    are one long component. Neither is a stroke's fragment, and neither takes the line's box."""
    k = classes_lib.label_of("noteheadWholeOnLine") + 1
    mask = np.zeros((40, 200), bool)
    mask[19:21, 20:150] = True  # A piece of staff line left in.
    boxes = np.float32([[14, 30, 26, 48], [14, 120, 26, 138]])
    for y0, x0, y1, x1 in boxes.astype(int):  # Two rings, 12 x 18 px, across the line.
        mask[y0:y1, x0:x1] = True
        mask[y0 + 3 : y1 - 3, x0 + 4 : x1 - 4] = False
    out, keep = ink.snap_symbols(
        mask, boxes, np.int32([k, k]), np.float32([0.9, 0.8]), [k], max_change=2.0
    )
    np.testing.assert_array_equal(out, boxes)
    assert keep.all()


def test_a_symbol_that_fell_apart_keeps_its_box():
    """A whole note's ring broken in two on a photograph: its larger half holds about half the
    ink in the box, and taking it would halve the box. An unbroken ring takes its own."""
    k = classes_lib.label_of("noteheadWholeOnLine") + 1
    mask = np.zeros((40, 120), bool)
    boxes = np.float32([[9, 19, 23, 51], [9, 69, 23, 101]])
    for y0, x0, y1, x1 in ((10, 20, 22, 50), (10, 70, 22, 100)):
        mask[y0:y1, x0:x1] = True
        mask[y0 + 3 : y1 - 3, x0 + 4 : x1 - 4] = False
    mask[:, 32:34] = False  # The first ring broken: its right part holds 120 of 216 pixels.

    def snap(share):
        return ink.snap_symbols(
            mask, boxes, np.int32([k, k]), np.float32([0.9, 0.8]), [k], 2.0, share
        )[0]

    np.testing.assert_array_equal(snap(0.6), [[9, 19, 23, 51], [10, 70, 22, 100]])
    np.testing.assert_array_equal(snap(0.0), [[10, 34, 22, 50], [10, 70, 22, 100]])


def test_the_pieces_of_a_symbol_joined_by_pale_ink_are_one():
    """A tuplet 3 on a coarse capture: its thin lower tip comes away from its body at grey
    128, joined to it only by paler ink, and the decoded box stops short of the tip. The body
    alone holds the share of the box's ink, so without the pale ink it takes a box a third
    too narrow; with it, body and tip. A note head joined to the body by the same pale ink,
    mostly beyond the box, stays out, and so does a speck of staff line below (2 px)."""
    k = classes_lib.label_of("tuplet3") + 1
    page = np.full((60, 90), 255, np.uint8)
    page[10:40, 20:32] = 40  # The body...
    page[34:38, 14:18] = 40  # ...its tip...
    page[35:37, 18:20] = 170  # ...joined by pale ink.
    page[18:30, 33:53] = 40  # A note head...
    page[22:24, 32:33] = 170  # ...as close.
    page[41:42, 25:27] = 40  # A speck...
    page[40:41, 25:27] = 170  # ...as close.
    box = np.float32([[9, 16, 41, 33]])
    pale = ink.pale_ink(page, 10.0)

    def snap(pale_mask):
        return ink.snap_symbols(
            page < 128, box, np.int32([k]), np.float32([0.9]), [k], 2.0, 0.6,
            staff_space=10.0, pale_mask=pale_mask,
        )[0][0]

    np.testing.assert_array_equal(snap(pale), [10, 14, 40, 32])
    np.testing.assert_array_equal(snap(None), [10, 20, 40, 32])
    page[35:37, 18:20] = 255  # Paper between them: two symbols.
    np.testing.assert_array_equal(snap(ink.pale_ink(page, 10.0)), [10, 20, 40, 32])


def test_an_upright_stem_in_pieces_smaller_than_specks_joins_its_symbol():
    """An eighth rest on a coarse capture: its stem fades into pieces of 7 and 6 px, under the
    least size (0.03 square staff spaces, 12 px here), joined to the flag by paler ink. They
    are upright strokes, so they join, and the rest takes its whole height; a speck of staff
    line as large, joined as closely, lies flat and stays out."""
    k = classes_lib.label_of("rest8th") + 1
    page = np.full((70, 60), 255, np.uint8)
    page[10:30, 20:34] = 40  # The flag...
    page[30:32, 27:28] = 170
    page[32:39, 27:28] = 40  # ...a piece of its stem (1 x 7)...
    page[39:41, 26:28] = 170
    page[41:47, 26:27] = 40  # ...and another (1 x 6).
    page[47:50, 22:27] = 170
    page[50:52, 20:24] = 40  # A speck of staff line (2 x 4).
    box = np.float32([[9, 18, 44, 36]])

    def snap(upright):
        with mock.patch.object(ink, "_PIECE_UPRIGHT", upright):
            return ink.snap_symbols(
                page < 128, box, np.int32([k]), np.float32([0.9]), [k], 2.0, 0.6,
                staff_space=20.0, pale_mask=ink.pale_ink(page, 20.0),
            )[0][0]

    np.testing.assert_array_equal(snap(ink._PIECE_UPRIGHT), [10, 20, 47, 34])
    np.testing.assert_array_equal(snap(np.inf), [10, 20, 30, 34])  # Specks' rule alone.


def _snap_one(page: np.ndarray, box: list[float], k: int, staff_space: float = 16.0):
    """The box `snap_symbols` gives one detection of model class `k` on u8[H, W] `page`, its
    pale ink joining pieces."""
    return ink.snap_symbols(
        page < 128, np.float32([box]), np.int32([k]), np.float32([0.9]), [k], 2.0, 0.6,
        staff_space=staff_space, pale_mask=ink.pale_ink(page, staff_space),
    )[0][0]


def test_a_stem_running_on_beyond_a_box_decoded_short_joins_its_symbol():
    """An eighth rest whose stem, cut off by an erased staff line, runs on half a staff space
    below the box the network decoded short: a quarter of the piece lies beyond the box
    grown by `_PIECE_REACH`, so it would be refused as a neighbour's piece poking in.
    Along the box's longer side the window reaches twice as far, and the rest takes its whole
    height."""
    k = classes_lib.label_of("rest8th") + 1
    page = np.full((70, 60), 255, np.uint8)
    page[10:30, 20:34] = 40  # The flag...
    page[30:32, 26:28] = 170  # ...the erased line between...
    page[32:48, 26:28] = 40  # ...and its stem's lower piece (2 x 16).
    np.testing.assert_array_equal(_snap_one(page, [9, 18, 40, 36], k), [10, 20, 48, 34])


def test_an_upright_piece_beside_a_box_stays_out():
    """A natural on a coarse capture, joined by pale ink to a piece of the stem of the note
    beside it: the piece is upright and lies wholly in the box grown by `_PIECE_REACH`, but
    not across the box's columns, so it is the neighbour's, and the natural keeps its own
    width."""
    k = classes_lib.label_of("accidentalNatural") + 1
    page = np.full((70, 60), 255, np.uint8)
    page[10:50, 20:32] = 40  # The natural...
    page[44:46, 32:34] = 170  # ...pale ink...
    page[38:50, 34:36] = 40  # ...and a piece of the neighbour's stem (2 x 12).
    np.testing.assert_array_equal(_snap_one(page, [9, 19, 51, 33], k), [10, 20, 50, 32])


def test_a_beams_end_to_end_halves_are_one_beam():
    """Decoded side by side (IoU 0.02, so not by overlap), but on one long component: the
    better half takes the whole beam and the other is dropped."""
    space = 16.0
    beam = (20.0, 160.0, 40.0, 30.0, 8.0)  # 140 px long, rising 10 px: 7.6 : 1.
    page = _page(
        (80, 180),
        [(20.0 + k * space, 0.0, 21.5 + k * space, 180.0) for k in range(4)],
        beams=[beam],
    )
    rows, cols = np.nonzero(_page((80, 180), beams=[beam]) < 128)
    want = [rows.min(), cols.min(), rows.max() + 1, cols.max() + 1]
    boxes = np.float32([[36.0, 18.0, 48.0, 92.0], [30.0, 88.0, 42.0, 164.0]])
    out, keep = ink.snap_solids(
        page, boxes, np.full(2, BEAM), np.float32([0.6, 0.7]), [BEAM], space
    )
    np.testing.assert_array_equal(keep, [False, True])
    np.testing.assert_allclose(out[1], want, atol=1)


def test_a_clef_joined_to_a_barline_keeps_its_box():
    """On a blurred scan a G clef (2.4 : 1) touches a barline running through three staves:
    one component four times the clef's height and nine times longer than wide. A clef is not
    drawn as one stroke, so the size guard keeps its box; a slur's piece on such a component
    takes it whole, as a beam's half takes its beam."""
    mask = np.zeros((400, 60), bool)
    mask[50:350, 10:14] = True  # The barline...
    mask[150:222, 14:44] = True  # ...and the clef touching it.
    box = np.float32([[148, 12, 224, 44]])
    for name, want in (("clefG", box[0]), ("slur", [50, 10, 350, 44])):
        k = classes_lib.label_of(name) + 1
        out, keep = ink.snap_symbols(mask, box, np.int32([k]), np.float32([0.9]), [k], 2.0)
        np.testing.assert_array_equal(out[0], want, err_msg=name)
        assert keep.all()


def test_a_thin_clef_decoded_too_large_takes_its_own_component():
    """Leland's G clef is 3 : 1 and the network can box it 2.2 times too tall: beyond the
    size guard's factor, but a long thin component along a box as elongated is the clef."""
    k = classes_lib.label_of("clefG") + 1
    mask = np.zeros((400, 120), bool)
    mask[173:323, 61:109] = True
    box = np.float32([[71, 45, 397, 109]])
    out, keep = ink.snap_symbols(mask, box, np.int32([k]), np.float32([0.9]), [k], 2.0)
    np.testing.assert_array_equal(out[0], [173, 61, 323, 109])
    assert keep.all()


def test_a_piece_of_staff_line_left_beside_a_symbol_is_cut_off():
    """A verso's ghost thickens a staff line beside a key's flat, and the erasure leaves a
    piece of it: the flat's component runs on to the left as a line 3 px thick (within the
    size guard). A rest joined by such a piece to a barline likewise. Given the staff space,
    both take their own ink; a flat's own stem above a box decoded short is not a spur."""
    flat, rest, other_flat = (
        classes_lib.label_of(name) + 1 for name in ("keyFlat", "restQuarter", "accidentalFlat")
    )
    mask = np.zeros((80, 200), bool)
    mask[10:50, 40:55] = True  # The key's flat...
    mask[30:33, 20:40] = True  # ...and the piece of line on its left.
    mask[10:50, 90:105] = True  # The rest...
    mask[30:33, 105:117] = True  # ...the piece of line...
    mask[0:60, 117:120] = True  # ...and the barline.
    mask[20:60, 150:153] = True  # A flat's stem...
    mask[45:60, 150:162] = True  # ...and its bowl.
    boxes = np.float32([[9, 38, 51, 57], [9, 89, 51, 105], [35, 149, 61, 163]])
    classes = np.int32([flat, rest, other_flat])

    def snap(staff_space):
        return ink.snap_symbols(
            mask, boxes, classes, np.float32([0.9, 0.8, 0.7]), classes, 2.0,
            staff_space=staff_space,
        )

    out, keep = snap(20.0)  # The spur's columns inside the decoded box stay (38, 39).
    np.testing.assert_array_equal(out, [[10, 38, 50, 55], [10, 90, 50, 105], [20, 150, 60, 162]])
    assert keep.all()
    out, _ = snap(0.0)  # Spurs not cut: the component's box.
    np.testing.assert_array_equal(out, [[10, 20, 50, 55], [0, 90, 60, 120], [20, 150, 60, 162]])


def test_a_clef_joined_to_the_systems_barline_by_a_short_piece_of_line_takes_its_own_ink():
    """On a JPEG copy a piece of staff line (2 px thick) joins a G clef to the system's barline
    seven columns before it: 0.44 staff spaces, a spur to cut. Uncut, the component is 1.9
    times the decoded box's height, within the size guard."""
    k = classes_lib.label_of("clefG") + 1
    mask = np.zeros((500, 120), bool)
    mask[200:470, 44:47] = True  # The barline...
    mask[400:402, 47:55] = True  # ...the piece of line...
    mask[348:461, 55:97] = True  # ...and the clef.
    box = np.float32([[330, 54.1, 475, 101]])
    out, keep = ink.snap_symbols(
        mask, box, np.int32([k]), np.float32([0.9]), [k], 2.0, staff_space=16.0
    )
    np.testing.assert_array_equal(out[0], [348, 54, 461, 97])  # Column 54 is in the box.
    assert keep.all()


def test_a_symbol_joined_to_its_neighbour_on_both_axes_keeps_its_box():
    """A breve whose component took the sharp before it (a bleed-through copy's ghost bridges
    them): 2.0 times its box's width and 1.8 times its height, each within `max_change`, but
    grown on both axes, which the network's box of a compact symbol never is: kept. Grown as
    far on one axis only, the component is the symbol's."""
    breve = classes_lib.label_of("noteheadDoubleWholeInSpace") + 1
    mask = np.zeros((80, 160), bool)
    mask[20:45, 40:66] = True  # The breve...
    mask[10:55, 15:30] = True  # ...the sharp before it...
    mask[30:34, 30:40] = True  # ...and the ghost between them.
    mask[20:45, 100:150] = True  # A second breve smeared sideways, as wide.
    boxes = np.float32([[20, 40, 45, 66], [20, 100, 45, 126]])
    classes, scores = np.int32([breve, breve]), np.float32([0.9, 0.8])

    def snap(change):
        return ink.snap_symbols(mask, boxes, classes, scores, [breve], change)[0]

    np.testing.assert_array_equal(snap(2.0), [[20, 40, 45, 66], [20, 100, 45, 150]])
    assert ink._MAX_GROWTH_BOTH < 45 / 25  # The guard, not `max_change`, keeps the first.
    np.testing.assert_array_equal(snap(np.inf), [[10, 15, 55, 66], [20, 100, 45, 150]])

"""dwd_jax.omr.clefs: C clefs named by the staff line they mark, on a drawn page."""

import numpy as np
from drawing import draw

from configs import default
from dwd_jax import classes as classes_lib
from dwd_jax.omr import clefs, ink, staves

ALTO, TENOR, CLEF_G = (
    classes_lib.label_of(name) + 1 for name in ("clefCAlto", "clefCTenor", "clefG")
)
SPACE = 16.0
TOP = 40.0  # The staff's top line: its lines' centres are rows 41, 57, 73, 89, 105.


def _clef(centre_y, x0):
    """A C clef's box, 4 staff spaces tall, centred on row `centre_y`."""
    return [centre_y - 2 * SPACE, x0, centre_y + 2 * SPACE, x0 + 24.0]


def _lines():
    return [(TOP + k * SPACE, 0.0, TOP + k * SPACE + 2, 600.0) for k in range(5)]


def _page():
    return draw((220, 600), _lines())


def test_c_clefs_are_named_by_the_line_nearest_their_centre():
    page = _page()
    boxes = np.float32(
        [
            _clef(73.0, 20.0),  # On the middle line, read as tenor: alto.
            _clef(64.0, 21.0),  # Decoded 0.56 spaces above it, read as alto: tenor.
            _clef(57.0 + 7.0, 200.0),  # 0.44 spaces below the second line: tenor.
            _clef(105.0, 300.0),  # On the bottom line (a baritone C clef's): alto.
            _clef(57.0, 500.0),  # A G clef stays a G clef.
        ]
    )
    classes = np.int32([TENOR, ALTO, ALTO, TENOR, CLEF_G])
    found = staves.find(page < ink.INK_BELOW, SPACE)
    np.testing.assert_array_equal(
        clefs.name_by_line(found, boxes, classes), [ALTO, TENOR, TENOR, ALTO, CLEF_G]
    )
    # Beside the staff, more than a space below it, or with no staff on the page, the
    # network's names stand.
    far = np.float32([_clef(73.0, 620.0), _clef(105.0 + 17.0, 20.0)])
    np.testing.assert_array_equal(
        clefs.name_by_line(found, far, np.int32([TENOR, TENOR])), [TENOR, TENOR]
    )
    near = np.float32([_clef(105.0 + 15.0, 20.0)])  # Within a space: the bottom line's.
    np.testing.assert_array_equal(clefs.name_by_line(found, near, np.int32([TENOR])), [ALTO])
    none = staves.find(np.zeros_like(page, bool), SPACE)
    np.testing.assert_array_equal(clefs.name_by_line(none, boxes, classes), classes)


def test_a_box_decoded_off_its_line_is_named_by_the_clefs_thick_bar():
    # A C clef's thick bar, four spaces tall, centred on the middle line (row 73); the network
    # decoded its box 0.6 spaces too high, nearer the second line.
    bar = (73.0 - 2 * SPACE, 100.0, 73.0 + 2 * SPACE, 106.0)
    # A system's barline in its columns, 9 spaces tall: too long to be taken for the bar.
    barline = (TOP - 40.0, 115.0, TOP + 4 * SPACE + 42.0, 117.0)
    page = draw((220, 600), [*_lines(), bar, barline])
    boxes = np.float32([_clef(73.0 - 0.6 * SPACE, 96.0)])
    found = staves.find(page < ink.INK_BELOW, SPACE)
    assert clefs.name_by_line(found, boxes, np.int32([ALTO]))[0] == TENOR
    got = clefs.name_by_line(found, boxes, np.int32([TENOR]), page < ink.INK_BELOW)
    np.testing.assert_array_equal(got, [ALTO])
    # No bar in its columns: no whole C clef on the ink (a piece of one, another symbol), so
    # the network's name stands, though the box's centre is nearest the second line.
    empty = np.float32([_clef(73.0 - 0.6 * SPACE, 300.0)])
    got = clefs.name_by_line(found, empty, np.int32([ALTO]), page < ink.INK_BELOW)
    np.testing.assert_array_equal(got, [ALTO])


def test_the_rule_runs_in_refine_and_switches_off():
    bar = (57.0 - 2 * SPACE, 204.0, 57.0 + 2 * SPACE, 210.0)  # A tenor clef's thick bar.
    page = draw((220, 600), [*_lines(), bar])
    detections = (np.float32([_clef(57.0, 200.0)]), np.int32([ALTO]), np.float32([0.4]))
    config = default.get_config().omr
    config.update(ink.OFF)
    config.c_clefs_by_line = True
    got = ink.refine(page, detections, config, staff_space=SPACE)
    np.testing.assert_array_equal(got[1], [TENOR])
    np.testing.assert_array_equal(got[0], detections[0])
    config.c_clefs_by_line = False
    got = ink.refine(page, detections, config, staff_space=SPACE)
    np.testing.assert_array_equal(got[1], [ALTO])


def test_a_clef_named_twice_is_one_detection_the_higher_scored():
    """An alto and a tenor detection of one C clef, both named tenor by the line, are one
    detection (the higher-scored box and score); a C clef beside it, another G clef on it and
    an alto overlapping a tenor stay."""
    boxes = np.float32(
        [
            _clef(64.0, 20.0),  # The network's tenor...
            _clef(62.0, 21.0),  # ...and its alto of the same clef, named tenor: a double.
            _clef(64.0, 200.0),  # Another clef: kept.
            _clef(64.0, 20.0),  # A G clef where the tenor is: another class, kept.
            _clef(64.0, 201.0),  # An alto on the second clef (not named): another name, kept.
        ]
    )
    classes = np.int32([TENOR, TENOR, TENOR, CLEF_G, ALTO])
    scores = np.float32([0.2, 0.3, 0.25, 0.9, 0.1])
    kept_boxes, kept_classes, kept_scores = clefs.drop_doubles(boxes, classes, scores)
    np.testing.assert_array_equal(kept_classes, [TENOR, TENOR, CLEF_G, ALTO])
    np.testing.assert_array_equal(kept_scores, np.float32([0.3, 0.25, 0.9, 0.1]))
    np.testing.assert_array_equal(kept_boxes, boxes[[1, 2, 3, 4]])

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


def _page():
    lines = [(TOP + k * SPACE, 0.0, TOP + k * SPACE + 2, 600.0) for k in range(5)]
    return draw((220, 600), lines)


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


def test_the_rule_runs_in_refine_and_switches_off():
    page = _page()
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

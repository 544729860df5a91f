"""Post-processing on the page's ink (classic optical music recognition), after decoding.

One entry: `refine(page, detections, config.omr, staff_space=...) -> detections`, in page
pixels; `config.omr.enabled = False` returns the network's detections untouched. The rules
read the ink and the notation's geometry (`ink`: boxes re-measured on the ink; `staves`: the
five-line staves; `ledgers`: ledger lines from the note heads beyond a staff; `dots`: dots
named by their place; `accidentals`: flats, naturals and sharps named by their shape), on the
page flattened to white paper and turned upright (`capture`). They name DeepScores classes.
Numpy, not jitted: pages differ in size.
"""

from dwd_jax.omr.capture import INK_BELOW
from dwd_jax.omr.ink import OFF, refine

__all__ = ["INK_BELOW", "OFF", "refine"]

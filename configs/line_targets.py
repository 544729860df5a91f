"""The default with line targets: beams, ledger lines, slurs, ties, hairpins and brackets get
markers along their long axis and boxes cut to a reach around each pixel
(dwd_jax.modeling.targets), decoded as the union of those boxes.

`python run.py --config=configs/line_targets.py --workdir=workdir/line_targets` trains it;
BENCHMARKS.md ("Line targets") compares it with the default on validation.
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
    c = default.get_config()
    # Not stems: a stem crosses beams and ledger lines, whose ridges in its group would join
    # its own, and in group 0 its ridge joined its flags and articulations. Not staffs: their
    # ridge would cross every stem in group 1 (a third group for stems costs 20 % of a step).
    c.targets.line_classes = tuple(
        name for name in c.targets.energy_groups[1] if name not in ("staff", "stem")
    )
    return c

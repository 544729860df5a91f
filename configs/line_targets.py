"""The default with line targets: beams, ledger lines, slurs, ties, hairpins and brackets get
markers along their long axis and boxes cut to a reach around each pixel
(dwd_jax.modeling.targets), decoded as the union of those boxes.

`python run.py --config=configs/line_targets.py --workdir=workdir/line_targets` trains it;
`--config=configs/line_targets.py:stem_group` moves stems into a third energy group of their
own (staffs stay ovals in the second); `:curves` gives line targets only to the classes that
seldom cross a stem or a note head's centre (slurs, ties, hairpins, brackets), beams and ledger
lines keeping ovals. BENCHMARKS.md ("Line targets") compares them with the default on
validation.
"""

import ml_collections

from configs import default


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    """The line-target config; `variant` "stem_group" gives stems a third energy group,
    "curves" line targets to slurs, ties, hairpins and brackets only."""
    if variant not in ("", "stem_group", "curves"):
        raise ValueError(
            f"configs/line_targets.py:{variant}: the variants are '', 'stem_group' and 'curves'"
        )
    c = default.get_config()
    # Not stems: a stem crosses beams and ledger lines, whose ridges in its group would join
    # its own, and in group 0 its ridge joined its flags and articulations. Not staffs: their
    # ridge would cross every stem in group 1. `stem_group`: a third group for stems costs 20 %
    # of a step, and within 7500 steps every class learns more slowly there (BENCHMARKS.md).
    c.targets.line_classes = tuple(
        name for name in c.targets.energy_groups[1] if name not in ("staff", "stem")
    )
    if variant == "curves":
        # Beams end on stems and ledger lines run through note heads: their ridges in group 1
        # are what the stems' ovals there would join.
        c.targets.line_classes = tuple(
            name for name in c.targets.line_classes if name not in ("beam", "ledgerLine")
        )
    if variant == "stem_group":
        lines = tuple(name for name in c.targets.energy_groups[1] if name != "stem")
        c.targets.energy_groups = ((), lines, ("stem",))
    return c

"""The network's heads, declared once.

A head is a 1x1 conv per output stride with `channels(config)` outputs per class group
(`targets.num_groups`); `model.DWD` builds the heads a config enables, in `HEADS` order, and
names its outputs by them. Each head is supervised by the target map of its name
(`targets.make_targets`), scored by the loss of its name (`losses.PER_STRIDE`, checked against
`NAMES` on import) and read by the decoder by name (energy: foreground and cores; class: the
vote; box: the size; offset: the centre). A new head is an entry here and its target, loss and
reading under the same name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import ml_collections

from dwd_jax import classes as classes_lib


def _always(config: ml_collections.ConfigDict) -> bool:
    del config
    return True


class Head(NamedTuple):
    """One head: its output name, its channels per group, and whether a config has it."""

    name: str
    channels: Callable[[ml_collections.ConfigDict], int]
    enabled: Callable[[ml_collections.ConfigDict], bool] = _always


HEADS: tuple[Head, ...] = (
    # Softmax over the energy levels (spec section 2): the watershed's energy.
    Head("energy", lambda config: int(config.targets.energy_levels)),
    # Softmax over the model classes (the class list plus background).
    Head("class", classes_lib.num_model_classes),
    # (height, width) of the object under the pixel.
    Head("box", lambda config: 2),
    # (dy, dx) from the pixel to its object's box centre (our extension).
    Head("offset", lambda config: 2, lambda config: bool(config.model.offset_head)),
)
NAMES: tuple[str, ...] = tuple(h.name for h in HEADS)


def active(config: ml_collections.ConfigDict) -> tuple[tuple[str, int], ...]:
    """((name, channels per group), ...) of the heads `config` enables, in `HEADS` order."""
    return tuple((h.name, int(h.channels(config))) for h in HEADS if h.enabled(config))

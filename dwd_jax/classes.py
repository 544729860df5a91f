"""The DeepScoresV2 `deepscores` class list and name matching.

DeepScoresV2 numbers its 136 `deepscores` categories 1..136 (`staff` is 135). Everywhere in
this project a *DeepScores label* is that id minus one (0..135), which is what the TFDS
`ClassLabel` feature stores. Model class ids are that label plus one:
0 is background and 1..136 are the DeepScores classes (a 137-way class head, as in the
original).
"""

from __future__ import annotations

from collections.abc import Sequence

import ml_collections
import numpy as np

# In DeepScoresV2 id order (id = index + 1). The release spells the ledger line `legerLine`;
# we use the standard spelling and accept both (see `label_of`).
DEEPSCORES_CLASSES: tuple[str, ...] = (
    "brace",
    "ledgerLine",
    "repeatDot",
    "segno",
    "coda",
    "clefG",
    "clefCAlto",
    "clefCTenor",
    "clefF",
    "clefUnpitchedPercussion",
    "clef8",
    "clef15",
    "timeSig0",
    "timeSig1",
    "timeSig2",
    "timeSig3",
    "timeSig4",
    "timeSig5",
    "timeSig6",
    "timeSig7",
    "timeSig8",
    "timeSig9",
    "timeSigCommon",
    "timeSigCutCommon",
    "noteheadBlackOnLine",
    "noteheadBlackOnLineSmall",
    "noteheadBlackInSpace",
    "noteheadBlackInSpaceSmall",
    "noteheadHalfOnLine",
    "noteheadHalfOnLineSmall",
    "noteheadHalfInSpace",
    "noteheadHalfInSpaceSmall",
    "noteheadWholeOnLine",
    "noteheadWholeOnLineSmall",
    "noteheadWholeInSpace",
    "noteheadWholeInSpaceSmall",
    "noteheadDoubleWholeOnLine",
    "noteheadDoubleWholeOnLineSmall",
    "noteheadDoubleWholeInSpace",
    "noteheadDoubleWholeInSpaceSmall",
    "augmentationDot",
    "stem",
    "tremolo1",
    "tremolo2",
    "tremolo3",
    "tremolo4",
    "tremolo5",
    "flag8thUp",
    "flag8thUpSmall",
    "flag16thUp",
    "flag32ndUp",
    "flag64thUp",
    "flag128thUp",
    "flag8thDown",
    "flag8thDownSmall",
    "flag16thDown",
    "flag32ndDown",
    "flag64thDown",
    "flag128thDown",
    "accidentalFlat",
    "accidentalFlatSmall",
    "accidentalNatural",
    "accidentalNaturalSmall",
    "accidentalSharp",
    "accidentalSharpSmall",
    "accidentalDoubleSharp",
    "accidentalDoubleFlat",
    "keyFlat",
    "keyNatural",
    "keySharp",
    "articAccentAbove",
    "articAccentBelow",
    "articStaccatoAbove",
    "articStaccatoBelow",
    "articTenutoAbove",
    "articTenutoBelow",
    "articStaccatissimoAbove",
    "articStaccatissimoBelow",
    "articMarcatoAbove",
    "articMarcatoBelow",
    "fermataAbove",
    "fermataBelow",
    "caesura",
    "restDoubleWhole",
    "restWhole",
    "restHalf",
    "restQuarter",
    "rest8th",
    "rest16th",
    "rest32nd",
    "rest64th",
    "rest128th",
    "restHNr",
    "dynamicP",
    "dynamicM",
    "dynamicF",
    "dynamicS",
    "dynamicZ",
    "dynamicR",
    "graceNoteAcciaccaturaStemUp",
    "graceNoteAppoggiaturaStemUp",
    "graceNoteAcciaccaturaStemDown",
    "graceNoteAppoggiaturaStemDown",
    "ornamentTrill",
    "ornamentTurn",
    "ornamentTurnInverted",
    "ornamentMordent",
    "stringsDownBow",
    "stringsUpBow",
    "arpeggiato",
    "keyboardPedalPed",
    "keyboardPedalUp",
    "tuplet3",
    "tuplet6",
    "fingering0",
    "fingering1",
    "fingering2",
    "fingering3",
    "fingering4",
    "fingering5",
    "slur",
    "beam",
    "tie",
    "restHBar",
    "dynamicCrescendoHairpin",
    "dynamicDiminuendoHairpin",
    "tuplet1",
    "tuplet2",
    "tuplet4",
    "tuplet5",
    "tuplet7",
    "tuplet8",
    "tuplet9",
    "tupletBracket",
    "staff",
    "ottavaBracket",
)

# Alternative spellings seen across DeepScores releases, lower-cased.
_ALIASES = {"legerline": "ledgerline"}

_LABEL_OF = {name.lower(): i for i, name in enumerate(DEEPSCORES_CLASSES)}


def canonical(name: str) -> str:
    """Lower-cased, alias-resolved class name used for matching."""
    key = name.strip().lower()
    return _ALIASES.get(key, key)


def label_of(name: str) -> int:
    """DeepScores label (0..135) of a class name; case-insensitive, `legerLine` == `ledgerLine`.

    Raises:
      KeyError: naming the unknown class and where to find the valid names.
    """
    try:
        return _LABEL_OF[canonical(name)]
    except KeyError:
        raise KeyError(
            f"unknown DeepScores class name {name!r}: expected one of the 136 DeepScoresV2 "
            "`deepscores` classes listed in dwd_jax.classes.DEEPSCORES_CLASSES"
        ) from None


def model_labels(names: Sequence[str]) -> np.ndarray:
    """i32[k] model classes (DeepScores label + 1; 0 is background) of class names (KeyError
    on a bad name, as `label_of`)."""
    return np.array([label_of(name) + 1 for name in names], np.int32)


# --- The class list a model is trained on ---------------------------------------------------

# Class lists by name (`config.model.classes`). A model's class head has one output per class
# of its list plus background (model class 0); model class i + 1 is the list's i-th class.
# Training on another list (MUSCIMA++'s, say) is one entry here and a config override.
CLASS_LISTS: dict[str, tuple[str, ...]] = {"deepscores": DEEPSCORES_CLASSES}


def class_list(config: ml_collections.ConfigDict) -> tuple[str, ...]:
    """The class names of `config.model.classes` (without background).

    Raises:
      ValueError: naming the field and the registered lists.
    """
    name = config.model.classes
    if name not in CLASS_LISTS:
        raise ValueError(
            f"config.model.classes={name!r} is not a registered class list; use one of "
            f"{sorted(CLASS_LISTS)} or add yours to dwd_jax.classes.CLASS_LISTS"
        )
    return CLASS_LISTS[name]


def model_class_names(config: ml_collections.ConfigDict) -> tuple[str, ...]:
    """Names indexed by model class: ("background", *class_list(config))."""
    return ("background", *class_list(config))


def num_model_classes(config: ml_collections.ConfigDict) -> int:
    """The class head's outputs: the classes of the config's list plus background."""
    return len(class_list(config)) + 1


def model_class(config: ml_collections.ConfigDict, name: str) -> int:
    """The model class of a class name in the config's list (case-insensitive, with the
    DeepScores aliases).

    Raises:
      KeyError: naming the unknown class and the list.
    """
    names = class_list(config)
    if names is DEEPSCORES_CLASSES:
        return label_of(name) + 1
    lookup = {canonical(n): i + 1 for i, n in enumerate(names)}
    try:
        return lookup[canonical(name)]
    except KeyError:
        raise KeyError(
            f"unknown class name {name!r}: not in the class list {config.model.classes!r} "
            "(config.model.classes, dwd_jax.classes.CLASS_LISTS)"
        ) from None

"""SMuFL glyph metrics from verovio's fonts and the glyph -> DeepScoresV2 class table.

verovio ships, for each of its SMuFL fonts, an XML of glyph bounding boxes
(`<g c="E0A4" x= y= w= h= n="noteheadBlack">`, font units with y up, 1000 units per em = four
staff spaces). A glyph drawn by `<use transform="translate(tx, ty) scale(s, s)">` covers
`x in tx + s * [x, x + w]`, `y in ty - s * [y + h, y]` in SVG coordinates (y down), which is
the tight box of its ink: no rasterisation is needed to box a glyph.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import xml.etree.ElementTree as ET

import verovio

# The SMuFL music fonts verovio engraves with.
FONTS: tuple[str, ...] = ("Leipzig", "Bravura", "Leland", "Gootville", "Petaluma")

# verovio substitutes this font's glyph where the chosen font lacks one (its default fallback).
FALLBACK_FONT = "Leipzig"

# SMuFL glyph name -> DeepScoresV2 class, for glyphs whose class does not depend on context.
# Names equal in both vocabularies map to themselves. Variants DeepScoresV2 does not distinguish
# (short fermatas, wedge staccatissimo, rests drawn with a ledger line) map to their base class.
_FIXED: dict[str, str] = {
    **{n: n for n in (
        "segno", "coda", "caesura", "augmentationDot", "repeatDot",
        "restDoubleWhole", "restWhole", "restHalf", "restQuarter", "rest8th", "rest16th",
        "rest32nd", "rest64th", "rest128th", "restHBar",
        "articAccentAbove", "articAccentBelow", "articStaccatoAbove", "articStaccatoBelow",
        "articTenutoAbove", "articTenutoBelow", "articStaccatissimoAbove",
        "articStaccatissimoBelow", "articMarcatoAbove", "articMarcatoBelow",
        "fermataAbove", "fermataBelow", "ornamentTrill", "ornamentTurn", "ornamentTurnInverted",
        "ornamentMordent", "stringsDownBow", "stringsUpBow", "keyboardPedalPed",
        "keyboardPedalUp", "brace", "timeSigCommon", "timeSigCutCommon",
        "tremolo1", "tremolo2", "tremolo3", "tremolo4", "tremolo5",
    )},
    **{f"timeSig{d}": f"timeSig{d}" for d in range(10)},
    **{f"tuplet{d}": f"tuplet{d}" for d in range(1, 10)},
    **{f"fingering{d}": f"fingering{d}" for d in range(6)},
    "restWholeLegerLine": "restWhole",
    "restHalfLegerLine": "restHalf",
    "restDoubleWholeLegerLine": "restDoubleWhole",
    "fermataShortAbove": "fermataAbove",
    "fermataShortBelow": "fermataBelow",
    "fermataLongAbove": "fermataAbove",
    "fermataLongBelow": "fermataBelow",
    "articStaccatissimoWedgeAbove": "articStaccatissimoAbove",
    "articStaccatissimoWedgeBelow": "articStaccatissimoBelow",
    "ornamentShortTrill": "ornamentMordent",
    "gClef": "clefG",
    "gClef8vb": "clefG",
    "gClef8va": "clefG",
    "gClef15mb": "clefG",
    "gClef15ma": "clefG",
    "fClef": "clefF",
    "fClef8vb": "clefF",
    "fClef8va": "clefF",
    "fClef15mb": "clefF",
    "fClef15ma": "clefF",
    "unpitchedPercussionClef1": "clefUnpitchedPercussion",
    "unpitchedPercussionClef2": "clefUnpitchedPercussion",
    "dynamicPiano": "dynamicP",
    "dynamicMezzo": "dynamicM",
    "dynamicForte": "dynamicF",
    "dynamicSforzando": "dynamicS",
    "dynamicZ": "dynamicZ",
    "dynamicRinforzando": "dynamicR",
}

# SMuFL notehead name -> DeepScoresV2 notehead family ("OnLine"/"InSpace" and "Small" follow).
NOTEHEADS: dict[str, str] = {
    "noteheadBlack": "noteheadBlack",
    "noteheadHalf": "noteheadHalf",
    "noteheadWhole": "noteheadWhole",
    "noteheadDoubleWhole": "noteheadDoubleWhole",
    "noteheadDoubleWholeSquare": "noteheadDoubleWhole",
}

# SMuFL accidental name -> (note accidental class, key-signature class or None).
ACCIDENTALS: dict[str, tuple[str, str | None]] = {
    "accidentalFlat": ("accidentalFlat", "keyFlat"),
    "accidentalNatural": ("accidentalNatural", "keyNatural"),
    "accidentalSharp": ("accidentalSharp", "keySharp"),
    "accidentalDoubleSharp": ("accidentalDoubleSharp", None),
    "accidentalDoubleFlat": ("accidentalDoubleFlat", None),
}

# Classes with a `Small` (cue / grace) variant in DeepScoresV2, besides the noteheads.
HAS_SMALL: frozenset[str] = frozenset(
    {"flag8thUp", "flag8thDown", "accidentalFlat", "accidentalNatural", "accidentalSharp"}
)

FLAGS: frozenset[str] = frozenset(
    f"flag{d}{u}" for d in ("8th", "16th", "32nd", "64th", "128th") for u in ("Up", "Down")
)


def fixed_class(glyph_name: str) -> str | None:
    """DeepScoresV2 class of a glyph whose class needs no context, else None."""
    if glyph_name in FLAGS:
        return glyph_name
    return _FIXED.get(glyph_name)


@dataclasses.dataclass(frozen=True)
class Glyph:
    """One SMuFL glyph of a verovio font.

    Attributes:
      name: SMuFL name, e.g. "noteheadBlack".
      box: (x0, y0, x1, y1) ink box in em units (1 em = 4 staff spaces), SVG orientation
        (y down, origin at the glyph's anchor).
      advance: horizontal advance in em units.
      font: the font that provides it (the requested one, or the fallback).
    """

    name: str
    box: tuple[float, float, float, float]
    advance: float
    font: str


def resource_path() -> str:
    """verovio's data folder (font metrics `<Font>.xml`, glyph outlines `<Font>/<code>.xml`)."""
    return verovio.toolkit(False).getResourcePath()


@functools.cache
def font_glyphs(font: str) -> dict[str, Glyph]:
    """Glyph table of one verovio font, completed with the fallback font's glyphs.

    Args:
      font: one of `FONTS`.

    Returns:
      codepoint (upper-case hex, e.g. "E0A4") -> `Glyph`.
    """
    if font not in FONTS:
        raise ValueError(f"unknown music font {font!r}: use one of {FONTS}")
    table: dict[str, Glyph] = {}
    for name in (FALLBACK_FONT, font):  # the chosen font overrides the fallback
        root = ET.parse(os.path.join(resource_path(), f"{name}.xml")).getroot()
        upm = float(root.get("units-per-em", "1000"))
        for g in root.iter("g"):
            x, y = float(g.get("x")) / upm, float(g.get("y")) / upm
            w, h = float(g.get("w")) / upm, float(g.get("h")) / upm
            table[g.get("c").upper()] = Glyph(g.get("n", ""), (x, -(y + h), x + w, -y),
                                              float(g.get("h-a-x", 0)) / upm, name)
    return table

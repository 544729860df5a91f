"""Combined dynamics glyphs (one SMuFL glyph for "mf", "sfz", ...) -> one glyph per letter.

DeepScoresV2 boxes each dynamics letter (dynamicP, dynamicM, dynamicF, dynamicS, dynamicZ,
dynamicR), but verovio draws "mf" or "sf" with SMuFL's ligature glyphs. We rewrite the SVG so
those are drawn letter by letter (each letter's outline from verovio's font folder, placed at
the font's advance widths) before rasterising and boxing: the ink and the boxes agree, and
no dynamic is left on the page unannotated. Spacing inside the group loses the ligature's
kerning, invisible at this scale.
"""

from __future__ import annotations

import functools
import os
import re

from dwd_jax.engrave import glyphs

_LETTER_CODES = {"p": "E520", "m": "E521", "f": "E522", "r": "E523", "s": "E524", "z": "E525"}
# SMuFL combined dynamics (codepoint -> letters).
COMBINED = {
    "E527": "pppppp", "E528": "ppppp", "E529": "pppp", "E52A": "ppp", "E52B": "pp",
    "E52C": "mp", "E52D": "mf", "E52E": "pf", "E52F": "ff", "E530": "fff", "E531": "ffff",
    "E532": "fffff", "E533": "ffffff", "E534": "fp", "E535": "fz", "E536": "sf", "E537": "sfp",
    "E538": "sfpp", "E539": "sfz", "E53A": "sfzp", "E53B": "sffz", "E53C": "rf", "E53D": "rfz",
}
_USE = re.compile(
    r'<use xlink:href="#(E5[23][0-9A-F])-([^"]+)" transform="translate\(([-\d.]+),\s*([-\d.]+)\)'
    r' scale\(([-\d.]+),\s*([-\d.]+)\)"\s*/>')


@functools.cache
def _outline(font: str, code: str) -> str:
    """The `<g id="CODE">...</g>` outline of a glyph from verovio's font folder."""
    font = glyphs.font_glyphs(font)[code].font
    with open(os.path.join(glyphs.resource_path(), font, f"{code}.xml")) as f:
        return f.read().strip()


def split_combined(svg: str, font: str) -> str:
    """Redraws every combined dynamics glyph of a verovio page SVG as separate letters.

    Args:
      svg: page SVG from `verovio.toolkit.renderToSVG`.
      font: the music font it was engraved with.

    Returns:
      the SVG, with letter glyph definitions added to `<defs>` where needed.
    """
    table = glyphs.font_glyphs(font)
    needed: dict[str, str] = {}  # def id -> letter code

    def letters(m: re.Match) -> str:
        code, suffix = m.group(1), m.group(2)
        if code not in COMBINED:
            return m.group(0)
        x, y, sx, sy = (float(v) for v in m.groups()[2:])
        out = []
        for letter in COMBINED[code]:
            letter_code = _LETTER_CODES[letter]
            needed[f"{letter_code}-{suffix}"] = letter_code
            out.append(f'<use xlink:href="#{letter_code}-{suffix}" '
                       f'transform="translate({x:g}, {y:g}) scale({sx:g}, {sy:g})" />')
            x += table[letter_code].advance * 1000 * sx  # outlines are in 1000 units per em
        return "".join(out)

    svg = _USE.sub(letters, svg)
    missing = [(def_id, code) for def_id, code in needed.items() if f'id="{def_id}"' not in svg]
    if missing:
        defs = "".join(_outline(font, code).replace(f'id="{code}"', f'id="{def_id}"', 1)
                       for def_id, code in missing)
        svg = svg.replace("<defs>", "<defs>" + defs, 1)
    return svg

"""verovio SVG -> DeepScoresV2 symbols: one tight box and one class per symbol.

verovio groups each drawn element in `<g class="...">` named after its MEI element (note,
notehead, stem, beam, slur, keySig, ...). Glyphs are `<use>` references to SMuFL codepoints,
boxed from the font's glyph metrics (`glyphs.font_glyphs`); everything else (stems, staff and
ledger lines, beams, slurs, ties, hairpins, brackets) is boxed from its path, polygon, polyline,
rect or ellipse geometry, widened by half the stroke width. A beam line that verovio draws as
stem-to-stem segments is one beam, boxed whole, as DeepScoresV2 boxes beams.

Context decides what the glyph alone cannot (as DeepScoresV2 distinguishes it, DWD_SPEC.md
section 8): noteheads on a line vs in a space (from the staff lines of the enclosing staff),
key-signature vs note accidentals (inside `keySig`), cue/grace `Small` variants (the glyph is
drawn smaller than the staff's normal glyph scale), C clef on the alto vs tenor line,
crescendo vs diminuendo hairpins (which end is open). Barlines are skipped: DeepScoresV2 has no
barline class. Text (lyrics, titles, tempo words) is not a DeepScoresV2 class and is not boxed,
except fingerings (verovio writes their digits in the text font): one box per digit, measured
as `raster` draws the text.
"""

from __future__ import annotations

import dataclasses
import math
import xml.etree.ElementTree as ET

from dwd_jax.engrave import glyphs, raster, svg_geometry

_SVG = "{http://www.w3.org/2000/svg}"
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"

# Group classes that own the geometry drawn inside them, innermost first wins.
_OWNERS = (
    "stem", "ledgerLines", "dots", "flag", "beam", "slur", "tie", "hairpin", "tupletBracket",
    "tupletNum", "octave", "arpeg", "barLine", "grpSym", "multiRest", "keySig", "clef", "staff",
)
# Owners whose pieces are merged into one box per group element.
_UNION = {"slur": "slur", "tie": "tie", "tupletBracket": "tupletBracket",
          "octave": "ottavaBracket", "arpeg": "arpeggiato", "multiRest": "restHBar"}
_SMALL_RATIO = 0.85  # A glyph drawn below this fraction of the staff's glyph scale is cue size.
_BEZIER_STEPS = 16  # Samples per curve segment for its tight box (sub-pixel at page scale).


@dataclasses.dataclass(frozen=True)
class Symbol:
    """One annotated symbol in SVG viewBox units.

    Attributes:
      name: DeepScoresV2 class name.
      box: (x0, y0, x1, y1), SVG viewBox units, y down.
      note_id: the MEI id of the note (noteheads only, else "").
      chord_id: the MEI id of the enclosing chord (noteheads in chords, else "").
      rel_position: staff steps from the middle staff line, positive up (noteheads only).
    """

    name: str
    box: tuple[float, float, float, float]
    note_id: str = ""
    chord_id: str = ""
    rel_position: int = 0


@dataclasses.dataclass
class _Staff:
    """Staff lines of one staff in one measure: top line y and line spacing (viewBox units)."""

    lines: list[tuple[float, float, float, float]]

    @property
    def top(self) -> float:
        return min((b[1] + b[3]) / 2 for b in self.lines)

    @property
    def space(self) -> float:
        ys = sorted((b[1] + b[3]) / 2 for b in self.lines)
        return (ys[-1] - ys[0]) / max(len(ys) - 1, 1) if len(ys) > 1 else 0.0


def _apply(m: tuple[float, ...], pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
    a, b, c, d, e, f = m
    return [(a * x + c * y + e, b * x + d * y + f) for x, y in pts]


def _bounds(pts: list[tuple[float, float]]) -> tuple[float, float, float, float]:
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return (min(xs), min(ys), max(xs), max(ys))


def _union(a: tuple[float, ...] | None, b: tuple[float, ...]) -> tuple[float, float, float, float]:
    if a is None:
        return tuple(b)
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def path_points(d: str) -> list[tuple[float, float]]:
    """Points on an SVG path, curves sampled densely (their tight box within a hair)."""
    pts: list[tuple[float, float]] = []
    for c in svg_geometry.path_commands(d):
        if c[0] in "ML":
            pts.append((c[1], c[2]))
        elif c[0] == "C":
            ctrl = [pts[-1] if pts else (0.0, 0.0), c[1:3], c[3:5], c[5:7]]
            pts.extend(_bezier(ctrl, s / _BEZIER_STEPS) for s in range(1, _BEZIER_STEPS + 1))
    return pts


def _bezier(ctrl: list[tuple[float, float]], t: float) -> tuple[float, float]:
    """de Casteljau evaluation of a Bezier curve at t."""
    while len(ctrl) > 1:
        ctrl = [((1 - t) * p[0] + t * q[0], (1 - t) * p[1] + t * q[1])
                for p, q in zip(ctrl[:-1], ctrl[1:], strict=True)]
    return ctrl[0]


def _shape_points(el: ET.Element, m: tuple[float, ...]) -> list[tuple[float, float]]:
    """Points whose bounds are the inked extent of a path/polygon/polyline/rect/ellipse.

    Open strokes (stems, staff/ledger lines, hairpins, brackets) are widened across each
    segment by half the stroke width, and along it only for square caps (SVG's default butt
    cap ends at the end point); closed or filled shapes by half the stroke all around.
    """
    tag = el.tag.removeprefix(_SVG)
    open_stroke = False
    if tag == "path":
        d = el.get("d", "")
        pts = path_points(d)
        open_stroke = "Z" not in d.upper()
    elif tag in ("polygon", "polyline"):
        nums = svg_geometry.parse_numbers(el.get("points"))
        pts = list(zip(nums[0::2], nums[1::2], strict=True))
        open_stroke = tag == "polyline"
    elif tag == "rect":
        x, y = float(el.get("x", 0)), float(el.get("y", 0))
        w, h = float(el.get("width", 0)), float(el.get("height", 0))
        pts = [(x, y), (x + w, y + h)]
    elif tag == "ellipse":
        cx, cy = float(el.get("cx", 0)), float(el.get("cy", 0))
        rx, ry = float(el.get("rx", 0)), float(el.get("ry", 0))
        pts = [(cx - rx, cy - ry), (cx + rx, cy + ry)]
    else:
        return []
    if not pts:
        return []
    pts = _apply(m, pts)
    half = float(el.get("stroke-width", 0)) / 2 * math.sqrt(abs(m[0] * m[3] - m[1] * m[2]))
    if half == 0:
        return pts
    if not open_stroke or len(pts) < 2:
        return [(x + sx, y + sy) for x, y in pts for sx in (-half, half) for sy in (-half, half)]
    square = el.get("stroke-linecap") == "square"
    out = []
    for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:], strict=True):
        length = math.hypot(x1 - x0, y1 - y0)
        if length == 0:
            continue
        ux, uy = (x1 - x0) / length * half, (y1 - y0) / length * half
        ex, ey = (ux, uy) if square else (0.0, 0.0)
        out += [(x0 - ex - uy, y0 - ey + ux), (x0 - ex + uy, y0 - ey - ux),
                (x1 + ex - uy, y1 + ey + ux), (x1 + ex + uy, y1 + ey - ux)]
    return out or pts


class _Parser:
    """One pass over a verovio page SVG, collecting `Symbol`s."""

    def __init__(self, font: str):
        self.glyphs = glyphs.font_glyphs(font)
        self.symbols: list[Symbol] = []
        self.unions: dict[int, tuple[str, tuple[float, ...]]] = {}
        self.hairpins: dict[int, list[tuple[float, float]]] = {}
        self.beams: dict[int, list[list[tuple[float, float]]]] = {}  # Polygons per beam group.
        # (system element id, staff top line y) -> union of that staff's lines on the system.
        self.staves: dict[tuple[int, int], tuple[float, ...]] = {}

    def visit(self, el: ET.Element, m: tuple[float, ...], ctx: tuple) -> None:
        """Walk `el` under transform `m`; `ctx` = ((classes, element, staff-or-None), ...)."""
        tag = el.tag.removeprefix(_SVG)
        if tag in ("defs", "style", "desc", "title"):
            return
        if el.get("transform"):
            m = svg_geometry.compose(m, svg_geometry.parse_transform(el.get("transform")))
        if tag == "text":
            # Text is not a DeepScoresV2 class, but fingerings (verovio writes them in the text
            # font) are: one box per digit.
            if self._find(ctx, "fing")[0] is not None:
                classes = set().union(*(c for c, _, _ in ctx))
                for ch, (x0, y0, x1, y1) in raster.verovio_char_boxes(el, classes):
                    if ch in "012345":
                        corners = [(x0, y0), (x1, y1), (x0, y1), (x1, y0)]
                        self.symbols.append(Symbol(f"fingering{ch}", _bounds(_apply(m, corners))))
            return
        if tag in ("g", "svg"):
            classes = set((el.get("class") or "").split())
            if "placeholder" in classes:
                return
            staff = None
            if "staff" in classes:
                staff = _Staff([_bounds(_shape_points(c, m)) for c in el
                                if c.tag == _SVG + "path"])
            ctx = ctx + ((classes, el, staff),)
            for child in el:
                self.visit(child, m, ctx)
        elif tag == "use":
            self._glyph(el, m, ctx)
        else:
            pts = _shape_points(el, m)
            if pts:
                self._shape(el, pts, _bounds(pts), ctx)

    def _owner(self, ctx: tuple) -> tuple[str, ET.Element | None]:
        for classes, el, _ in reversed(ctx):
            for name in _OWNERS:
                if name in classes:
                    return name, el
        return "", None

    @staticmethod
    def _find(ctx: tuple, cls: str):
        for classes, el, staff in reversed(ctx):
            if cls in classes:
                return el, staff
        return None, None

    def _shape(self, el: ET.Element, pts: list, box: tuple[float, ...], ctx: tuple) -> None:
        owner, owner_el = self._owner(ctx)
        if owner == "staff" and owner_el is not None and el in list(owner_el):
            system, _ = self._find(ctx, "system")
            _, staff = self._find(ctx, "staff")
            key = (id(system), round(staff.top))
            self.staves[key] = _union(self.staves.get(key), box)
        elif owner == "stem":
            self.symbols.append(Symbol("stem", box))
        elif owner == "ledgerLines":
            self.symbols.append(Symbol("ledgerLine", box))
        elif owner == "beam" and el.tag == _SVG + "polygon":
            self.beams.setdefault(id(owner_el), []).append(pts)
        elif owner == "dots":
            self.symbols.append(Symbol("augmentationDot", box))
        elif owner == "barLine" and el.tag == _SVG + "ellipse":
            self.symbols.append(Symbol("repeatDot", box))
        elif owner == "grpSym" and el.tag == _SVG + "path":
            # Some fonts' braces are drawn as two Bezier halves (others use the glyph);
            # a bracket's rect is skipped: DeepScoresV2 has no bracket class.
            prev = self.unions.get(id(owner_el), ("", None))[1]
            self.unions[id(owner_el)] = ("brace", _union(prev, box))
        elif owner == "hairpin":
            self.hairpins.setdefault(id(owner_el), []).extend(pts)
            prev = self.unions.get(id(owner_el), ("", None))[1]
            self.unions[id(owner_el)] = ("hairpin", _union(prev, box))
        elif owner in _UNION:
            prev = self.unions.get(id(owner_el), ("", None))[1]
            self.unions[id(owner_el)] = (_UNION[owner], _union(prev, box))

    def _glyph(self, el: ET.Element, m: tuple[float, ...], ctx: tuple) -> None:
        href = el.get(_XLINK_HREF) or el.get("href") or ""
        code = href.lstrip("#").split("-")[0].upper()
        if code not in self.glyphs:
            return
        glyph = self.glyphs[code]
        name, (x0, y0, x1, y1) = glyph.name, glyph.box
        # The glyph path is in font units (1000 per em); the table is in em.
        corners = [(x * 1000, y * 1000) for x in (x0, x1) for y in (y0, y1)]
        box = _bounds(_apply(m, corners))
        anchor_y = m[5]
        scale = math.sqrt(abs(m[0] * m[3]))
        owner, owner_el = self._owner(ctx)
        _, staff = self._find(ctx, "staff")
        small = bool(staff and staff.space and scale < _SMALL_RATIO * staff.space / 250)
        if owner in _UNION and owner != "multiRest":
            if owner == "arpeg":  # the wiggle segments together are one arpeggio
                prev = self.unions.get(id(owner_el), ("", None))[1]
                self.unions[id(owner_el)] = ("arpeggiato", _union(prev, box))
            return  # an ottava's "8va" glyph is not a DeepScoresV2 class
        if owner == "multiRest" and name.startswith("timeSig"):
            self.symbols.append(Symbol("restHNr", box))
            return
        if owner == "grpSym" and name != "brace":
            return  # bracket ends: DeepScoresV2 has no bracket class
        if name in glyphs.NOTEHEADS:
            self.symbols.append(self._notehead(name, box, anchor_y, small, staff, ctx))
        elif name in glyphs.ACCIDENTALS:
            note_class, key_class = glyphs.ACCIDENTALS[name]
            in_key = self._find(ctx, "keySig")[0] is not None
            if in_key and key_class:
                self.symbols.append(Symbol(key_class, box))
            elif not in_key:
                if small and note_class in glyphs.HAS_SMALL:
                    note_class += "Small"
                self.symbols.append(Symbol(note_class, box))
        elif name == "cClef" and staff is not None and staff.space:
            line_from_top = round((anchor_y - staff.top) / staff.space)
            self.symbols.append(Symbol("clefCTenor" if line_from_top == 1 else "clefCAlto", box))
        elif name == "repeatDots":  # two dots, each a square as wide as the glyph
            w = box[2] - box[0]
            self.symbols.append(Symbol("repeatDot", (box[0], box[1], box[2], box[1] + w)))
            self.symbols.append(Symbol("repeatDot", (box[0], box[3] - w, box[2], box[3])))
        else:
            cls = glyphs.fixed_class(name)
            if cls is None:
                return
            if small and cls in glyphs.HAS_SMALL:
                cls += "Small"
            self.symbols.append(Symbol(cls, box))

    def _notehead(self, name, box, anchor_y, small, staff, ctx) -> Symbol:
        family = glyphs.NOTEHEADS[name]
        rel = 0
        if staff is not None and staff.space:
            middle = staff.top + 2 * staff.space
            rel = -round((anchor_y - middle) / (staff.space / 2))
        where = "OnLine" if rel % 2 == 0 else "InSpace"
        note, _ = self._find(ctx, "note")
        chord, _ = self._find(ctx, "chord")
        return Symbol(family + where + ("Small" if small else ""), box,
                      note_id=note.get("id", "") if note is not None else "",
                      chord_id=chord.get("id", "") if chord is not None else "",
                      rel_position=rel)

    def finish(self) -> list[Symbol]:
        out = list(self.symbols)
        for key, (name, box) in self.unions.items():
            if name == "hairpin":
                name = _hairpin_class(self.hairpins[key])
            out.append(Symbol(name, box))
        out.extend(Symbol("staff", box) for box in self.staves.values())
        for polygons in self.beams.values():
            out.extend(Symbol("beam", box) for box in _beam_lines(polygons))
        return out


def _beam_lines(polygons: list[list[tuple[float, float]]]) -> list[tuple[float, ...]]:
    """Boxes of a beam group's beam lines: polygons that continue one another joined.

    verovio draws some beams as one polygon per stem-to-stem segment; DeepScoresV2 boxes a
    beam line whole (the real sample page's beams span up to 7 notes), and a split at a stem
    is invisible in the ink. A polygon continues another when its left edge is the other's
    right edge: same x, and the same top and bottom y, within a quarter of the thickness.
    Stacked beams (secondary beams of 16ths) are separate lines.
    """
    def edges(pts):
        x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
        tol = (x1 - x0) * 1e-3
        left = sorted(p[1] for p in pts if p[0] <= x0 + tol)
        right = sorted(p[1] for p in pts if p[0] >= x1 - tol)
        return (x0, left[0], left[-1]), (x1, right[0], right[-1])

    ends = [edges(p) for p in polygons]
    parent = list(range(len(polygons)))

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for a, (_, (ax, atop, abot)) in enumerate(ends):
        tol = (abot - atop) / 4
        for b, ((bx, btop, bbot), _) in enumerate(ends):
            joined = max(abs(ax - bx), abs(atop - btop), abs(abot - bbot)) <= tol
            if a != b and joined:
                parent[root(b)] = root(a)
    lines: dict[int, tuple[float, ...]] = {}
    for i, pts in enumerate(polygons):
        lines[root(i)] = _union(lines.get(root(i)), _bounds(pts))
    return list(lines.values())


def _hairpin_class(pts: list[tuple[float, float]]) -> str:
    """Crescendo if the hairpin's opening (its taller end) is on the right."""
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    tol = (x1 - x0) * 0.05
    def spread(ys: list[float]) -> float:
        return max(ys) - min(ys)
    left = spread([p[1] for p in pts if p[0] <= x0 + tol])
    right = spread([p[1] for p in pts if p[0] >= x1 - tol])
    return "dynamicCrescendoHairpin" if right > left else "dynamicDiminuendoHairpin"


def parse_page(svg: str, font: str) -> tuple[list[Symbol], tuple[float, float, float, float]]:
    """Symbols of one verovio page.

    Args:
      svg: the SVG string of `verovio.toolkit.renderToSVG`.
      font: the music font it was engraved with (one of `glyphs.FONTS`).

    Returns:
      (symbols, view_box): boxes in the inner SVG's viewBox units; view_box = (x, y, w, h).
    """
    root = ET.fromstring(svg)
    inner = root.find(_SVG + "svg")
    if inner is None or not inner.get("viewBox"):
        raise ValueError("not a verovio page SVG: no inner <svg viewBox=...> (definition-scale)")
    view_box = tuple(float(v) for v in inner.get("viewBox").split())
    parser = _Parser(font)
    parser.visit(inner, svg_geometry.IDENTITY, ())
    return parser.finish(), view_box

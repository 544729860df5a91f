"""Engraved page SVG -> grey 8-bit page (white paper, black ink), drawn with cairo directly.

Two dialects, one painter. verovio's SVG is a small dialect: glyph `<use>`s of outlines in
`<defs>`, paths, polygons, polylines, rects, ellipses and text, with translate/scale
transforms and a style sheet that strokes shapes in the current colour and hides
placeholders. We draw exactly that with cairocffi into an 8-bit alpha surface (ink
coverage): each glyph outline is parsed once per page and re-filled under each `<use>`
transform. That is several times faster than cairosvg's generic renderer or resvg-py (which
also returns PNG bytes to decode, and left verovio's nested-tspan lyrics blank);
benchmarks/bench_engrave.py measures all three. Text uses the system serif font (verovio asks
for Times); text is not a DeepScoresV2 class, so only its look matters.

LilyPond's SVG (`lilypond`) is plain SVG: one `<svg viewBox>` in staff spaces, glyphs as
filled paths, staff and ledger lines as `<line>`s and rounded `<rect>`s, links `<a>` around
grobs, and presentation attributes with SVG's defaults (nothing is stroked unless it says so).
Its text is drawn unhinted at the font's own widths, so `char_boxes` measures exactly what is
drawn (tuplet numbers and clef octave marks are text there).
"""

from __future__ import annotations

import functools
import math
import os
import xml.etree.ElementTree as ET

import cairocffi as cairo
import numpy as np

from dwd_jax.engrave import glyphs, svg_geometry

_SVG = "{http://www.w3.org/2000/svg}"
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
# verovio's style sheet: these text groups are italic / bold.
_ITALIC = {"dir", "dynam", "mNum"}
_BOLD = {"ending", "fing", "reh", "tempo"}
_SERIF = "DejaVu Serif"  # any serif fontconfig finds; each run is fitted to Times' width


def page_transform(view_box: tuple[float, float, float, float], width: int, height: int
                   ) -> tuple[float, float, float]:
    """(scale, dx, dy) mapping viewBox units to pixels: px = scale * v + d.

    SVG's default `preserveAspectRatio="xMidYMid meet"`: uniform scale, content centred.
    """
    vx, vy, vw, vh = view_box
    scale = min(width / vw, height / vh)
    return scale, (width - vw * scale) / 2 - vx * scale, (height - vh * scale) / 2 - vy * scale


def _trace(ctx: cairo.Context, d: str) -> None:
    """Adds SVG path data to ctx's current path."""
    for c in svg_geometry.path_commands(d):
        if c[0] == "M":
            ctx.move_to(c[1], c[2])
        elif c[0] == "L":
            ctx.line_to(c[1], c[2])
        elif c[0] == "C":
            ctx.curve_to(*c[1:])
        else:
            ctx.close_path()


def _matrix(text: str) -> cairo.Matrix:
    # cairo.Matrix(xx, yx, xy, yy, x0, y0) is SVG's matrix(a, b, c, d, e, f).
    return cairo.Matrix(*svg_geometry.parse_transform(text))


class _Painter:
    def __init__(self, ctx: cairo.Context, defs: dict[str, ET.Element], *, verovio_css: bool):
        self.ctx = ctx
        self.defs = defs
        self.glyph_paths: dict[str, cairo.Path] = {}
        # verovio's style sheet strokes every shape (1 unit wide unless it says otherwise) and
        # its text was laid out with Times' widths; plain SVG strokes only what asks for it.
        self.verovio_css = verovio_css

    def glyph(self, ref: str):
        """A `<defs>` glyph outline as a cairo path (parsed once per page)."""
        if ref not in self.glyph_paths:
            ctx = self.ctx
            ctx.save()
            ctx.identity_matrix()
            ctx.new_path()
            for path in self.defs[ref].iter(_SVG + "path"):
                ctx.save()
                if path.get("transform"):
                    ctx.transform(_matrix(path.get("transform")))
                _trace(ctx, path.get("d", ""))
                ctx.restore()
            self.glyph_paths[ref] = ctx.copy_path()
            ctx.new_path()
            ctx.restore()
        return self.glyph_paths[ref]

    def draw(self, el: ET.Element, classes: frozenset[str]) -> None:
        tag = el.tag.removeprefix(_SVG)
        if tag in ("defs", "style", "desc", "title"):
            return
        ctx = self.ctx
        transform = el.get("transform")
        if transform:
            ctx.save()
            ctx.transform(_matrix(transform))
        if tag in ("g", "svg", "a"):
            own = (el.get("class") or "").split()
            if "placeholder" not in own:  # verovio's CSS hides placeholders
                inner = classes | frozenset(own)
                for child in el:
                    self.draw(child, inner)
        elif tag == "use":
            ref = (el.get(_XLINK_HREF) or el.get("href") or "").lstrip("#")
            if ref in self.defs:
                ctx.new_path()
                ctx.append_path(self.glyph(ref))
                ctx.fill()
        elif tag == "text":
            self.text(el, classes)
        else:
            self.shape(el, tag)
        if transform:
            ctx.restore()

    def shape(self, el: ET.Element, tag: str) -> None:
        ctx = self.ctx
        ctx.new_path()
        if tag == "path":
            _trace(ctx, el.get("d", ""))
        elif tag in ("polygon", "polyline"):
            nums = svg_geometry.parse_numbers(el.get("points"))
            for k in range(0, len(nums) - 1, 2):
                (ctx.line_to if k else ctx.move_to)(nums[k], nums[k + 1])
            if tag == "polygon":
                ctx.close_path()
        elif tag == "line":
            ctx.move_to(float(el.get("x1", 0)), float(el.get("y1", 0)))
            ctx.line_to(float(el.get("x2", 0)), float(el.get("y2", 0)))
        elif tag == "rect":
            _rect(ctx, *(float(el.get(k, 0)) for k in ("x", "y", "width", "height")),
                  float(el.get("rx", el.get("ry", 0))), float(el.get("ry", el.get("rx", 0))))
        elif tag in ("ellipse", "circle"):
            rx = float(el.get("rx", el.get("r", 0)))
            ry = float(el.get("ry", el.get("r", 0)))
            if rx <= 0 or ry <= 0:
                return
            ctx.save()
            ctx.translate(float(el.get("cx", 0)), float(el.get("cy", 0)))
            ctx.scale(rx, ry)
            ctx.arc(0, 0, 1, 0, 2 * math.pi)
            ctx.restore()
        else:
            return
        if el.get("fill") != "none" and tag not in ("polyline", "line"):
            ctx.fill_preserve()
        # verovio's CSS strokes path/polygon/polyline/rect/ellipse in the current colour.
        width = float(el.get("stroke-width", 1))
        stroked = el.get("stroke") != "none" if self.verovio_css else \
            el.get("stroke") not in (None, "none")
        if stroked and width > 0:
            ctx.set_line_width(width)
            ctx.set_line_cap({"round": cairo.LINE_CAP_ROUND, "square": cairo.LINE_CAP_SQUARE}
                             .get(el.get("stroke-linecap"), cairo.LINE_CAP_BUTT))
            ctx.set_line_join({"round": cairo.LINE_JOIN_ROUND, "bevel": cairo.LINE_JOIN_BEVEL}
                              .get(el.get("stroke-linejoin"), cairo.LINE_JOIN_MITER))
            dash = el.get("stroke-dasharray")
            ctx.set_dash(svg_geometry.parse_numbers(dash) if dash and dash != "none" else [])
            ctx.stroke()
        ctx.new_path()

    def text(self, el: ET.Element, classes: frozenset[str]) -> None:
        """Draws a `<text>` run by run (nested tspans set size, style, position)."""
        runs: list[tuple[str, float, bool, bool, float | None, float | None]] = []

        def collect(node, size, italic, bold):
            size = _font_size(node.get("font-size"), size)
            italic = italic or node.get("font-style") == "italic"
            bold = bold or node.get("font-weight") == "bold"
            family = node.get("font-family")
            if self.verovio_css and family and "serif" not in family.lower():
                return  # music-font text (e.g. metronome marks): not a DeepScoresV2 class
            x = float(node.get("x")) if node.tag == _SVG + "tspan" and node.get("x") else None
            y = float(node.get("y")) if node.tag == _SVG + "tspan" and node.get("y") else None
            if node.text and node.text.strip("\n"):
                runs.append((node.text, size, italic, bold, x, y))
                x = y = None
            for child in node:
                collect(child, size, italic, bold)
                if child.tail and child.tail.strip():
                    runs.append((child.tail, size, italic, bold, None, None))

        css = self.verovio_css
        collect(el, 0.0, css and bool(classes & _ITALIC), css and bool(classes & _BOLD))
        runs = [r for r in runs if r[1] > 0]
        if not runs:
            return
        ctx = self.ctx

        def select(size, italic, bold):
            _select_font(ctx, size, italic, bold)

        # verovio placed the text with Times' advance widths; squeezing or stretching each run
        # to that width keeps lyrics from colliding in our wider fallback font. Plain SVG text
        # keeps our font's own widths (what `char_boxes` measures).
        if css:
            widths = [_times_width(s, size, italic, bold) for s, size, italic, bold, _, _ in runs]
        else:
            widths = []
            for s, size, italic, bold, _, _ in runs:
                select(size, italic, bold)
                widths.append(ctx.text_extents(s)[4])
        x, y = float(el.get("x", 0)), float(el.get("y", 0))
        anchor = el.get("text-anchor", "start")
        if anchor in ("middle", "end"):
            x -= sum(widths) / 2 if anchor == "middle" else sum(widths)
        for (s, size, italic, bold, rx, ry), width in zip(runs, widths, strict=True):
            x, y = (rx if rx is not None else x), (ry if ry is not None else y)
            select(size, italic, bold)
            drawn = ctx.text_extents(s)[4]
            ctx.save()
            ctx.translate(x, y)
            if drawn > 0 and width > 0:
                ctx.scale(width / drawn, 1.0)
            ctx.new_path()
            ctx.move_to(0, 0)
            ctx.show_text(s)
            ctx.new_path()
            ctx.restore()
            x += width


def _rect(ctx: cairo.Context, x: float, y: float, w: float, h: float, rx: float, ry: float
          ) -> None:
    """A rectangle, its corners rounded by (rx, ry) as SVG's `<rect>` (LilyPond's blots)."""
    rx, ry = min(max(rx, 0.0), w / 2), min(max(ry, 0.0), h / 2)
    if rx <= 0 or ry <= 0:
        ctx.rectangle(x, y, w, h)
        return
    for cx, cy, start in ((x + w - rx, y + ry, -math.pi / 2), (x + w - rx, y + h - ry, 0.0),
                          (x + rx, y + h - ry, math.pi / 2), (x + rx, y + ry, math.pi)):
        ctx.save()
        ctx.translate(cx, cy)
        ctx.scale(rx, ry)
        ctx.arc(0, 0, 1, start, start + math.pi / 2)
        ctx.restore()
    ctx.close_path()


def _select_font(ctx: cairo.Context, size: float, italic: bool, bold: bool) -> None:
    ctx.select_font_face(_SERIF, cairo.FONT_SLANT_ITALIC if italic else cairo.FONT_SLANT_NORMAL,
                         cairo.FONT_WEIGHT_BOLD if bold else cairo.FONT_WEIGHT_NORMAL)
    ctx.set_font_size(size)


def _unhinted() -> cairo.FontOptions:
    """Outlines and advances that scale exactly with the size (no grid fitting)."""
    options = cairo.FontOptions()
    options.set_hint_style(cairo.HINT_STYLE_NONE)
    options.set_hint_metrics(cairo.HINT_METRICS_OFF)
    return options


_MEASURE_SIZE = 100.0  # char_boxes measures at this size and scales the result


@functools.cache
def _measuring_context() -> cairo.Context:
    ctx = cairo.Context(cairo.ImageSurface(cairo.FORMAT_A8, 1, 1))
    ctx.set_font_options(_unhinted())
    return ctx


def char_boxes(text: str, size: float, *, italic: bool = False, bold: bool = False,
               width: float | None = None) -> list[tuple[float, float, float, float]]:
    """Ink box of each character of one run of text as `rasterize` draws it.

    Args:
      text: one run of text.
      size: font size in SVG user units.
      italic, bold: its style.
      width: the advance the run is fitted to (verovio's Times width, as `rasterize` draws
        verovio's text), or None for the font's own advances (plain SVG text).

    Returns:
      one (x0, y0, x1, y1) per character, in user units, y down, origin at the run's start
      point (baseline start).
    """
    ctx = _measuring_context()
    _select_font(ctx, _MEASURE_SIZE, italic, bold)
    k = size / _MEASURE_SIZE
    drawn = ctx.text_extents(text)[4] * k
    squeeze = width / drawn if width and drawn > 0 else 1.0
    boxes, x = [], 0.0
    for ch in text:
        xb, yb, w, h, advance = ctx.text_extents(ch)[:5]
        boxes.append(((x + xb * k) * squeeze, yb * k, (x + (xb + w) * k) * squeeze, (yb + h) * k))
        x += advance * k
    return boxes


def verovio_char_boxes(el: ET.Element, classes: set[str]
                       ) -> list[tuple[str, tuple[float, float, float, float]]]:
    """Each character of a one-run verovio `<text>` (a fingering) with its ink box as
    `rasterize` draws it (styled by the classes of its groups, fitted to Times' width about
    its anchor), in the element's user units."""
    italic, bold = bool(classes & _ITALIC), bool(classes & _BOLD)
    text = "".join(el.itertext()).strip()
    sizes = [_font_size(node.get("font-size"), 0.0) for node in el.iter()]
    size = sizes[-1] if sizes else 0.0
    if not text or size <= 0:
        return []
    width = _times_width(text, size, italic, bold)
    x, y = float(el.get("x", 0)), float(el.get("y", 0))
    anchor = el.get("text-anchor", "start")
    x -= width / 2 if anchor == "middle" else width if anchor == "end" else 0.0
    return [(ch, (x + x0, y + y0, x + x1, y + y1))
            for ch, (x0, y0, x1, y1) in zip(text, char_boxes(text, size, italic=italic, bold=bold,
                                                       width=width),
                                           strict=True)]


@functools.cache
def _times_advances(italic: bool, bold: bool) -> dict[str, float]:
    """verovio's Times metrics: character -> advance in em (ink extent where none is given)."""
    style = "-".join(s for s, on in (("bold", bold), ("italic", italic)) if on)
    path = os.path.join(glyphs.resource_path(), "text", f"Times{'-' + style if style else ''}.xml")
    root = ET.parse(path).getroot()
    upm = float(root.get("units-per-em"))
    return {chr(int(g.get("c"), 16)):
            float(g.get("h-a-x") or float(g.get("x")) + float(g.get("w"))) / upm
            for g in root.iter("g")}


def _times_width(text: str, size: float, italic: bool, bold: bool) -> float:
    """Width verovio laid `text` out with (characters it has no metrics for count as 0.5 em)."""
    table = _times_advances(italic, bold)
    return size * sum(table.get(ch, 0.5) for ch in text)


def _font_size(text: str | None, inherited: float) -> float:
    if not text:
        return inherited
    return float(text.removesuffix("px"))


def view_box_of(root: ET.Element) -> tuple[ET.Element, bool]:
    """The viewBox'd `<svg>` of a page and whether it is verovio's dialect.

    verovio nests a viewBox'd `<svg class="definition-scale">` in the page's `<svg>`; plain
    SVG (LilyPond's) puts the viewBox on the root.
    """
    inner = root.find(_SVG + "svg")
    if inner is not None and inner.get("viewBox"):
        return inner, True
    if root.get("viewBox"):
        return root, False
    raise ValueError("not a page SVG: neither the root <svg> nor an inner <svg> (verovio's "
                     "definition-scale) has a viewBox")


def rasterize(svg: str, width: int, height: int) -> np.ndarray:
    """Renders a verovio or LilyPond page SVG at an exact pixel size.

    Args:
      svg: verovio's page SVG (outer `<svg>` with glyph `<defs>` and an inner viewBox'd
        `<svg>`) or a plain one with a viewBox on the root (LilyPond's).
      width, height: output size in pixels; the viewBox is fitted as `page_transform` says.

    Returns:
      u8[height, width], 255 = paper, 0 = ink.
    """
    root = ET.fromstring(svg)
    inner, verovio_css = view_box_of(root)
    defs = {g.get("id"): g for d in root.iter(_SVG + "defs") for g in d if g.get("id")}
    surface = cairo.ImageSurface(cairo.FORMAT_A8, width, height)
    ctx = cairo.Context(surface)
    ctx.set_source_rgba(0, 0, 0, 1)
    # Every text in the process is drawn with these options: cairo resolves a font face once,
    # with the options of its first use, so text drawn hinted here after unhinted text
    # elsewhere (LilyPond pages, `char_boxes`) would look different from the same page drawn in
    # a fresh process, and a corpus's pages would depend on which worker engraved them.
    ctx.set_font_options(_unhinted())
    scale, dx, dy = page_transform(tuple(float(v) for v in inner.get("viewBox").split()),
                                   width, height)
    ctx.translate(dx, dy)
    ctx.scale(scale, scale)
    painter = _Painter(ctx, defs, verovio_css=verovio_css)
    for child in inner:
        painter.draw(child, frozenset())
    surface.flush()
    coverage = np.frombuffer(surface.get_data(), np.uint8).reshape(height, surface.get_stride())
    return 255 - coverage[:, :width]

"""music21 corpus + verovio -> a DeepScoresV2-format folder (`run.py generate`).

Modules: `corpus` (which pieces, split), `style` (per-piece font/page/staff size),
`glyphs` (SMuFL metrics and glyph -> class table), `dynamics` (ligature dynamics -> letters),
`svg_geometry` (SVG transforms and path data), `svg_symbols` (page SVG -> boxed symbols),
`raster` (SVG -> grey page), `piece` (one piece, run in a worker), `pool` (crash-isolated
workers), `dsv2` (the annotation JSON), `generate` (the resumable driver).
"""

from dwd_jax.engrave.generate import generate

__all__ = ["generate"]

"""music21 corpus + verovio -> a DeepScoresV2-format folder (`run.py generate`).

Modules: `corpus` (which pieces, split), `style` (per-piece font/page/staff size),
`glyphs` (SMuFL metrics and glyph -> class table), `dynamics` (ligature dynamics -> letters),
`svg_geometry` (SVG transforms and path data), `svg_symbols` (page SVG -> boxed symbols),
`raster` (SVG -> grey page), `piece` (one piece, run in a worker), `pool` (crash-isolated
workers), `dsv2` (the annotation JSON), `generate` (the resumable driver). `lilypond` is a
second engraver (LilyPond's SVG -> the same pages and annotations; needs the `lilypond`
wheel), drawn per piece by `generate` when `config.engrave.engravers` names it. `compose`
writes generated music for what the corpus lacks (`config.engrave.generated_share`).

Its libraries are the optional `engrave` extra; only engraving imports this package, so
training, evaluation and detection on DeepScoresV2 run without them.
"""

MISSING_ENGRAVER = (
    "Engraving the embedded corpus (config.data.name='deep_scores/synthetic', the default) "
    "needs music21, verovio and cairocffi (and the system libcairo2): {error}. Install them "
    "with `pip install 'dwd-jax[engrave]'` (`pip install -e '.[engrave]'` in a clone; libcairo2 "
    "from the system's packages, e.g. `apt-get install libcairo2`), or train on DeepScoresV2 "
    "instead, which needs none of them: put `ds2_dense.tar.gz` from "
    "https://zenodo.org/records/4012193 in --config.data.manual_dir (or point it at any "
    "DeepScoresV2-layout folder) and pass --config=configs/deepscores_v2.py or "
    "--config.data.name=deep_scores/dense."
)

try:
    import cairocffi  # noqa: F401
    import music21  # noqa: F401
    import verovio  # noqa: F401
except (ImportError, OSError) as error:  # cairocffi raises OSError when libcairo is missing.
    raise ImportError(MISSING_ENGRAVER.format(error=error)) from error

from dwd_jax.engrave.generate import generate  # noqa: E402

__all__ = ["generate"]

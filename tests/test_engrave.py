"""Tests of the engraved DeepScoresV2-format corpus (dwd_jax.engrave).

One small corpus (3 short pieces, one page each, small pages) is generated once per module
and shared; determinism regenerates it once more. Runs in well under a minute on 2 cores.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from dwd_jax.classes import DEEPSCORES_CLASSES
from dwd_jax.engrave import corpus, dynamics, generate, glyphs, pool, raster, svg_symbols
from dwd_jax.engrave.generate import engraver_of

PIECES = ["bach/bwv104.6.mxl", "ryansMammoth/DaysOfLangSyneJig.abc", "palestrina/Kyrie_II_01.krn"]
SETTINGS = dict(
    num_pages=3,
    seed=3,
    workers=2,
    test_fraction=0.5,
    progress=False,
    pages_per_piece=1,
    width_range=(1200, 1400),
)


def _pieces() -> list[str]:
    paths = corpus.corpus_pieces()
    return [next(p for p in paths if p.endswith(name)) for name in PIECES]


def _load(out_dir) -> dict[str, dict]:
    return {
        split: json.loads((pathlib.Path(out_dir) / f"deepscores_{split}.json").read_text())
        for split in ("train", "validation", "test")
    }


@pytest.fixture(scope="module")
def engraved(tmp_path_factory):
    out = tmp_path_factory.mktemp("engraved")
    stats = generate(str(out), pieces=_pieces(), **SETTINGS)
    return out, stats


def test_generates_requested_pages(engraved):
    out, stats = engraved
    assert stats["pages"] == 3 and not stats["failed"] and not stats["crashed"]
    data = _load(out)
    assert sum(len(d["images"]) for d in data.values()) == 3
    for d in data.values():
        for img in d["images"]:
            with Image.open(out / "images" / img["filename"]) as im:
                assert im.mode == "L" and im.size == (img["width"], img["height"])
                assert 1200 <= im.width <= 1400
                assert im.height == round(im.width * 297 / 210)


def test_boxes_sit_on_ink(engraved):
    """Every box lies within its page and contains ink; black noteheads fill their box."""
    out, _ = engraved
    for d in _load(out).values():
        for img in d["images"]:
            page = np.asarray(Image.open(out / "images" / img["filename"])) < 128
            h, w = page.shape
            for ann_id in img["ann_ids"]:
                ann = d["annotations"][ann_id]
                x0, y0, x1, y1 = ann["a_bbox"]
                assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h, ann
                crop = page[int(y0) : int(np.ceil(y1)), int(x0) : int(np.ceil(x1))]
                name = DEEPSCORES_CLASSES[int(ann["cat_id"][0]) - 1]
                assert crop.any(), f"no ink in the {name} box {ann['a_bbox']}"
                if name.startswith("noteheadBlack"):  # a tight box around an oval is mostly ink
                    assert crop.mean() > 0.5, f"{name} box {ann['a_bbox']} is loose"


def test_json_has_the_real_sample_schema(engraved, sample_json):
    """Same keys and value types as the real DeepScoresV2 sample, at every level."""
    real = json.loads(sample_json.read_text())
    ours = _load(engraved[0])["train"]
    assert ours["images"], "the fixture must put a page in the train split"

    def shape(x):
        if isinstance(x, dict):
            return {k: shape(v) for k, v in x.items()}
        return type(x).__name__

    assert ours.keys() == real.keys()
    assert shape(ours["info"]).keys() == shape(real["info"]).keys()
    assert ours["annotation_sets"] == ["deepscores"]
    real_img, our_img = real["images"][0], ours["images"][0]
    assert shape(our_img).keys() == shape(real_img).keys()
    assert {k: type(v) for k, v in our_img.items()} == {k: type(v) for k, v in real_img.items()}
    assert all(isinstance(a, str) for a in our_img["ann_ids"])
    real_ann = next(iter(real["annotations"].values()))
    for ann in ours["annotations"].values():
        assert {k: type(v) for k, v in ann.items()} == {k: type(v) for k, v in real_ann.items()}
        assert len(ann["a_bbox"]) == 4 and len(ann["o_bbox"]) == 8
        assert all(isinstance(c, str) for c in ann["cat_id"])
    # Category ids and names: the real `deepscores` set (legerLine spelled ledgerLine here).
    real_cats = {
        k: v["name"].replace("legerLine", "ledgerLine")
        for k, v in real["categories"].items()
        if v["annotation_set"] == "deepscores"
    }
    assert {k: v["name"] for k, v in ours["categories"].items()} == real_cats
    assert all(set(v) == {"name", "annotation_set", "color"} for v in ours["categories"].values())


def test_notehead_comments(engraved):
    """Noteheads carry `onset:..;rel_position:..;duration:..;`; other symbols ""."""
    d = _load(engraved[0])["train"]
    seen = 0
    for ann in d["annotations"].values():
        name = DEEPSCORES_CLASSES[int(ann["cat_id"][0]) - 1]
        if not name.startswith("notehead"):
            assert ann["comments"] == ""
            continue
        fields = dict(f.split(":") for f in ann["comments"].rstrip(";").split(";"))
        assert set(fields) <= {"onset", "rel_position", "duration"} and "rel_position" in fields
        rel = int(fields["rel_position"])
        assert (rel % 2 == 0) == ("OnLine" in name), (name, rel)
        if "onset" in fields:
            assert float(fields["onset"]) >= 0
            seen += 1
    assert seen > 0


def test_deterministic_for_a_seed(engraved, tmp_path):
    out, _ = engraved
    generate(str(tmp_path), pieces=_pieces(), **SETTINGS)
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    for f in files:
        assert (out / f).read_bytes() == (tmp_path / f).read_bytes(), f


def test_resume_writes_nothing_new(engraved):
    out, _ = engraved
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    stats = generate(str(out), pieces=_pieces(), **SETTINGS)
    assert stats["new_pages"] == 0 and stats["resumed_pages"] == 3 and stats["pages"] == 3
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


def test_resume_refuses_other_settings(engraved):
    with pytest.raises(ValueError, match="other settings"):
        generate(str(engraved[0]), pieces=_pieces(), **{**SETTINGS, "seed": 4})


def test_no_piece_in_both_splits(engraved):
    data = _load(engraved[0])
    pieces = {
        split: {img["filename"].split("--page-")[0].rsplit("-", 1)[0] for img in d["images"]}
        for split, d in data.items()
    }
    # Three pieces, three works: one in each split (tests/test_splits.py checks works).
    assert sorted(pieces) == ["test", "train", "validation"]
    assert all(len(p) == 1 for p in pieces.values())
    assert len(set.union(*pieces.values())) == 3


def test_unloadable_piece_is_skipped_and_counted(tmp_path):
    """A file verovio cannot load is skipped, counted, and the run carries on.

    The seeded engraving order sorts full paths, so whether the broken file (under the tmp
    folder) comes before the good piece (under music21) depends on where each lies. Asking for
    two pages when the good piece gives one (one page a piece) makes the run try both pieces,
    in either order.
    """
    bad = tmp_path / "broken.xml"
    bad.write_text("<score-partwise><part id='P1'><measure number='1'>")
    good = _pieces()[0]
    assert SETTINGS["pages_per_piece"] == 1
    stats = generate(str(tmp_path / "out"), pieces=[str(bad), good], **{**SETTINGS, "num_pages": 2})
    assert stats["pages"] == 1 and stats["pieces"] == 1 and not stats["crashed"]
    assert len(stats["failed"]) == 1 and stats["failed"][0].startswith("broken.xml: ")


def test_unknown_engraver_is_refused_naming_the_config_field(tmp_path):
    out = tmp_path / "out"
    for engravers in (("verovio", "musescore"), ()):
        with pytest.raises(ValueError, match=r"config\.engrave\.engravers.*'verovio', 'lilypond'"):
            generate(str(out), pieces=_pieces(), engravers=engravers, **SETTINGS)
    assert not out.exists()


def test_engraver_draw_is_seeded_per_piece():
    """Each piece's engraver is a function of (key, seed, the set of names): both are drawn
    over a corpus, and the names' order and repeats change nothing."""
    keys = [corpus.piece_key(p) for p in corpus.corpus_pieces()[:40]]
    both = [engraver_of(k, seed=0, engravers=("verovio", "lilypond")) for k in keys]
    assert set(both) == {"verovio", "lilypond"}
    assert both == [engraver_of(k, seed=0, engravers=("lilypond", "verovio", "lilypond"))
                    for k in keys]
    assert both != [engraver_of(k, seed=1, engravers=("verovio", "lilypond")) for k in keys]
    assert {engraver_of(k, seed=0, engravers=("lilypond",)) for k in keys} == {"lilypond"}


def _abort_on_two(task: int) -> int:
    """A task that kills its worker process the way a verovio assertion does."""
    if task == 2:
        os.abort()
    return task * 10


def test_worker_abort_is_isolated_and_counted():
    tasks = iter(range(5))
    results = dict(
        pool.map_isolated(_abort_on_two, lambda: next(tasks, None), workers=2, timeout_s=60)
    )
    assert {k: v for k, v in results.items() if k != 2} == {0: 0, 1: 10, 3: 30, 4: 40}
    assert isinstance(results[2], pool.WorkerDied)


_PAGE_SVG = """<svg width="100px" height="100px" xmlns="http://www.w3.org/2000/svg"
 xmlns:xlink="http://www.w3.org/1999/xlink"><svg class="definition-scale" viewBox="0 0 9000 9000">
<g class="page-margin" transform="translate(500, 500)"><g class="system"><g class="measure">
<g class="staff">{lines}
 <g class="keySig"><g class="keyAccid">
  <use xlink:href="#E262-a" transform="translate(100, 1000) scale(0.72, 0.72)"/></g></g>
 <g class="layer">
  <g id="n1" class="note"><g class="notehead">
   <use xlink:href="#E0A4-a" transform="translate(1000, 1360) scale(0.72, 0.72)"/></g>
   <g class="accid">
    <use xlink:href="#E262-a" transform="translate(800, 1360) scale(0.72, 0.72)"/></g>
   <g class="stem"><path d="M1200 1340 L1200 800" stroke-width="18"/></g></g>
  <g id="n2" class="note"><g class="notehead">
   <use xlink:href="#E0A4-a" transform="translate(2000, 1270) scale(0.72, 0.72)"/></g></g>
  <g id="n3" class="note"><g class="notehead">
   <use xlink:href="#E0A4-a" transform="translate(3000, 1270) scale(0.5, 0.5)"/></g></g>
 </g></g>
<g class="barLine"><path d="M4000 1000 L4000 1720" stroke-width="27"/></g>
<g class="hairpin"><polyline points="1000,2000 2000,1950 1000,1900" stroke-width="18"/></g>
<g class="hairpin"><polyline points="4000,1900 3000,1950 4000,2000" stroke-width="18"/></g>
</g></g></g></svg></svg>"""


def test_svg_symbols_classes_and_exact_glyph_boxes():
    lines = "".join(
        f'<path d="M0 {y} L5000 {y}" stroke-width="10"/>' for y in range(1000, 1721, 180)
    )
    symbols, view_box = svg_symbols.parse_page(_PAGE_SVG.format(lines=lines), "Leipzig")
    assert view_box == (0, 0, 9000, 9000)
    by_name = {}
    for s in symbols:
        by_name.setdefault(s.name, []).append(s)
    assert sorted(by_name) == sorted(
        [
            "keySharp",
            "accidentalSharp",
            "noteheadBlackOnLine",
            "noteheadBlackInSpace",
            "noteheadBlackInSpaceSmall",
            "stem",
            "staff",
            "dynamicDiminuendoHairpin",
            "dynamicCrescendoHairpin",
        ]
    )  # the barline is skipped: DeepScoresV2 has none
    # Notehead box = the font's glyph box (verovio's Leipzig.xml: E0A4 x=0 y=-133 w=314 h=266,
    # y up) scaled by 0.72 and moved by the use and page-margin translations.
    assert glyphs.font_glyphs("Leipzig")["E0A4"].box == pytest.approx((0, -0.133, 0.314, 0.133))
    on_line = by_name["noteheadBlackOnLine"][0]
    assert on_line.box == pytest.approx((1500, 1860 - 95.76, 1500 + 226.08, 1860 + 95.76))
    assert on_line.note_id == "n1" and on_line.rel_position == 0
    assert by_name["noteheadBlackInSpace"][0].rel_position == 1
    assert by_name["stem"][0].box == pytest.approx((1691, 1300, 1709, 1840))
    assert by_name["staff"][0].box == pytest.approx((500, 1495, 5500, 2225))


def test_beam_segments_that_continue_each_other_are_one_beam():
    """verovio draws some beams stem to stem; DeepScoresV2 boxes each beam line whole, and
    a secondary (16th) beam stacked under it stays its own beam."""
    svg = (
        '<svg width="10px" height="10px" xmlns="http://www.w3.org/2000/svg">'
        '<svg class="definition-scale" viewBox="0 0 9000 9000"><g class="beam">'
        '<polygon points="2130,1940 2560,1860 2560,1770 2130,1850" />'
        '<polygon points="2560,1860 2990,1780 2990,1690 2560,1770" />'
        '<polygon points="2560,2000 2990,1920 2990,1830 2560,1910" />'
        '</g><g class="beam"><polygon points="4000,1000 4400,1000 4400,1090 4000,1090" />'
        "</g></svg></svg>"
    )
    symbols, _ = svg_symbols.parse_page(svg, "Leipzig")
    assert sorted(s.box for s in symbols if s.name == "beam") == [
        (2130, 1690, 2990, 1940),
        (2560, 1830, 2990, 2000),
        (4000, 1000, 4400, 1090),
    ]


def test_combined_dynamics_are_split_into_letters():
    """verovio's single "mf" glyph becomes an m and an f, each drawn, defined and boxed."""
    svg = (
        '<svg width="10px" height="10px" xmlns="http://www.w3.org/2000/svg" '
        'xmlns:xlink="http://www.w3.org/1999/xlink"><defs></defs>'
        '<svg class="definition-scale" viewBox="0 0 1000 1000"><g class="dynam">'
        '<use xlink:href="#E52D-a" transform="translate(100, 500) scale(0.72, 0.72)" />'
        "</g></svg></svg>"
    )
    split = dynamics.split_combined(svg, "Bravura")
    assert 'id="E521-a"' in split and 'id="E522-a"' in split and "#E52D-a" not in split
    symbols, _ = svg_symbols.parse_page(split, "Bravura")
    m, f = sorted(symbols, key=lambda s: s.box[0])
    assert (m.name, f.name) == ("dynamicM", "dynamicF")
    table = glyphs.font_glyphs("Bravura")
    assert m.box[0] == pytest.approx(100 + table["E521"].box[0] * 720)
    assert f.box[0] == pytest.approx(100 + (table["E521"].advance + table["E522"].box[0]) * 720)


def test_rasterize_maps_the_view_box_to_pixels_exactly():
    """A filled rect lands on exactly the pixels `page_transform` predicts; a placeholder is
    hidden (as verovio's CSS hides it); stroked lines are inked."""
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg"><svg class="definition-scale" '
        'viewBox="0 0 1000 2000"><g transform="translate(100, 0)">'
        '<rect x="0" y="200" width="300" height="100" stroke-width="0"/>'
        '<g class="pb placeholder"><ellipse cx="500" cy="1500" rx="90" ry="90"/></g>'
        '<path d="M0 1000 L800 1000" stroke-width="20"/></g></svg></svg>'
    )
    page = raster.rasterize(svg, 100, 200)
    assert raster.page_transform((0, 0, 1000, 2000), 100, 200) == (0.1, 0.0, 0.0)
    ink = page < 128
    expected = np.zeros_like(ink)
    expected[20:30, 10:40] = True  # the rect: x 100..400, y 200..300 -> /10
    expected[99:101, 10:90] = True  # the line: y 990..1010, x 100..900
    assert (ink == expected).all()


_DRAW_TEXT = """
import sys
import numpy as np
from dwd_jax.engrave import raster
if sys.argv[2] == "after-plain-text":
    raster.char_boxes("3", 10.0)
    raster.rasterize('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 50">'
                     '<text x="5" y="40" font-size="30px">f 5</text></svg>', 100, 50)
svg = ('<svg xmlns="http://www.w3.org/2000/svg"><svg class="definition-scale" '
       'viewBox="0 0 4000 1000"><text x="100" y="700" font-size="500px">BDFV 2006 Mozart'
       '<tspan font-style="italic"> Allegro</tspan></text></svg></svg>')
np.save(sys.argv[1], raster.rasterize(svg, 400, 100))
"""


def test_a_page_is_drawn_the_same_whatever_the_process_drew_before(tmp_path):
    """A worker engraves LilyPond and verovio pieces in whatever order they come: the text on
    a verovio page must not depend on it (cairo resolves a font face once per process, with
    the options of its first use). Each drawing runs in a fresh process."""
    pages = []
    for before in ("nothing", "after-plain-text"):
        out = tmp_path / f"{before}.npy"
        subprocess.run([sys.executable, "-c", _DRAW_TEXT, str(out), before], check=True)
        pages.append(np.load(out))
    assert (pages[0] < 128).sum() > 1000  # the text is drawn
    np.testing.assert_array_equal(pages[0], pages[1])


def test_verovio_boxes_fingerings_multi_measure_rests_and_small_heads(tmp_path):
    """What verovio draws outside its glyph classes: fingerings (text, one box per digit, on
    its ink), a multi-measure rest (an H-bar and its count) and grace halves, wholes and
    breves (small heads)."""
    from music21 import articulations, meter, note, spanner, stream
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    from dwd_jax.engrave import piece
    from dwd_jax.engrave.style import PageStyle

    part = stream.Part(id="P1")
    first = stream.Measure(number=1)
    first.append(meter.TimeSignature("3/2"))
    for finger in range(6):
        n = note.Note("C5", quarterLength=1.0)
        n.articulations.append(articulations.Fingering(finger))
        first.append(n)
    graces = stream.Measure(number=2)
    for value, pitch in (("half", "A4"), ("whole", "B4"), ("breve", "C5")):
        graces.append([note.Note(pitch, type=value).getGrace(), note.Note("G4", type="half")])
    rests = [note.Rest(quarterLength=6.0) for _ in range(4)]
    part.append([first, graces, *(stream.Measure([r], number=3 + i) for i, r in
                                  enumerate(rests))])
    part.insert(0, spanner.MultiMeasureRest(rests, useSymbols=False))
    path = tmp_path / "marks.musicxml"
    path.write_bytes(GeneralObjectExporter(stream.Score([part])).parse())
    style = PageStyle(font="Leipzig", width_px=1400, height_px=1980, staff_space_px=14.0,
                      spacing_linear=0.25, spacing_non_linear=0.6, spacing_staff=10,
                      spacing_system=8)
    task = piece.PieceTask(path=str(path), key="marks", style=style, max_pages=1,
                           images_dir=str(tmp_path), shard_path=str(tmp_path / "marks.json"))
    (page,) = piece.engrave_piece(task)["pages"]
    names = [DEEPSCORES_CLASSES[int(a["cat_id"]) - 1] for a in page["annotations"]]
    for name in (*(f"fingering{d}" for d in range(6)), "restHBar", "restHNr"):
        assert names.count(name) == 1, name
    small = {n.removesuffix("OnLineSmall").removesuffix("InSpaceSmall") for n in names
             if n.startswith("notehead") and n.endswith("Small")}
    assert small == {"noteheadHalf", "noteheadWhole", "noteheadDoubleWhole"}
    ink = np.asarray(Image.open(tmp_path / page["filename"])) < 128
    for ann in page["annotations"]:
        if DEEPSCORES_CLASSES[int(ann["cat_id"]) - 1].startswith("fingering"):
            x0, y0, x1, y1 = ann["a_bbox"]
            around = ink[int(y0) - 3 : int(np.ceil(y1)) + 3, int(x0) - 3 : int(np.ceil(x1)) + 3]
            rows, cols = np.flatnonzero(around.any(1)), np.flatnonzero(around.any(0))
            # The digit's ink, found around its box, fills the box to within a pixel.
            assert rows[0] - 3 == pytest.approx(y0 - int(y0), abs=1.5)
            assert rows[-1] + 1 - 3 == pytest.approx(y1 - int(y0), abs=1.5)
            assert cols[0] - 3 == pytest.approx(x0 - int(x0), abs=1.5)
            assert cols[-1] + 1 - 3 == pytest.approx(x1 - int(x0), abs=1.5)

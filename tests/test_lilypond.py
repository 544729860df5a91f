"""Tests of the LilyPond engraver (dwd_jax.engrave.lilypond).

One short fixed piece is engraved once per module (about a second of LilyPond); its classes,
counts, notehead comments and boxes are checked against what the input says. A two-piece corpus
mixes LilyPond and verovio pages. The engraver tests skip only when the `lilypond` wheel is not
installed; the plain-SVG rasteriser tests need no LilyPond.
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

from dwd_jax.classes import DEEPSCORES_CLASSES
from dwd_jax.data import deepscores_json
from dwd_jax.engrave import corpus, dsv2, raster
from dwd_jax.engrave.generate import engraver_of, generate
from dwd_jax.engrave.piece import PieceTask

# Five bars of 3/4 in G major: quarter, eighth, half and dotted-half notes, a beam pair with a
# slur, a tie, a rest, a flat, staccato and accent, a dynamic and a diminuendo hairpin.
PIECE = r"""
\version "2.24.0"
\score {
  \new Staff {
    \clef treble \key g \major \time 3/4
    c'4\p d'8[( e'8]) g'4~ | g'2 r4 | bes'8[ a'8] g'4-. c''4-> | b'2.\> | a'2.\! |
  }
}
"""
# The input's notes: (duration as MEI @dur, staff position from the middle line, up).
NOTES = [(4, -6), (8, -5), (8, -4), (4, -2), (2, -2), (8, 0), (8, -1), (4, -2), (4, 1),
         (2, 0), (2, -1)]
EXPECTED = {
    "clefG": 1, "keySharp": 1, "timeSig3": 1, "timeSig4": 1, "staff": 1,
    "noteheadBlack": 8, "noteheadHalf": 3, "stem": 11, "beam": 2, "ledgerLine": 1,
    "restQuarter": 1, "accidentalFlat": 1, "augmentationDot": 2, "tie": 1, "slur": 1,
    "dynamicP": 1, "dynamicDiminuendoHairpin": 1, "articStaccato": 1, "articAccent": 1,
}
WIDTH, STAFF_SPACE = 1200, 15.0


def _family(name: str) -> str:
    """Class name without the position and placement suffixes the input does not fix."""
    for suffix in ("OnLine", "InSpace", "Above", "Below"):
        name = name.removesuffix(suffix)
    return name


@pytest.fixture(scope="module")
def lilypond():
    pytest.importorskip("lilypond", reason="the `lilypond` wheel is not installed "
                        "(pip install lilypond, or the `engrave` extra)")
    from dwd_jax.engrave import lilypond

    return lilypond


@pytest.fixture(scope="module")
def page(lilypond):
    pages = lilypond.engrave_lilypond(PIECE, lilypond.default_style(WIDTH, STAFF_SPACE))
    assert len(pages) == 1
    return pages[0]


def _names(page) -> list[str]:
    return [DEEPSCORES_CLASSES[int(a["cat_id"]) - 1] for a in page.annotations]


def test_expected_classes_and_counts(page):
    counts = collections.Counter(_family(n) for n in _names(page))
    assert {k: counts[k] for k in EXPECTED} == EXPECTED
    unexpected = set(counts) - set(EXPECTED)
    assert not unexpected, f"classes the input does not contain: {unexpected}"


def test_noteheads_match_the_input_notes(page):
    """One notehead per input note, with its duration and staff position; OnLine/InSpace
    agrees with the position; onsets run in quarter notes from 0."""
    heads = [(a, n) for a, n in zip(page.annotations, _names(page), strict=True)
             if n.startswith("notehead")]
    heads.sort(key=lambda h: h[0]["a_bbox"][0])
    assert len(heads) == len(NOTES)
    onsets = []
    for (ann, name), (dur, pos) in zip(heads, NOTES, strict=True):
        fields = dict(f.split(":") for f in ann["comments"].rstrip(";").split(";"))
        assert (int(fields["duration"]), int(fields["rel_position"])) == (dur, pos), name
        assert name.startswith("noteheadBlack" if dur >= 4 else "noteheadHalf")
        assert name.endswith("OnLine" if pos % 2 == 0 else "InSpace")
        onsets.append(float(fields["onset"]))
    assert onsets[:4] == [0, 1, 1.5, 2] and onsets == sorted(onsets)


def test_boxes_lie_in_the_page_and_on_ink(page):
    """Every box is inside the page and holds ink; noteheads are mostly ink, and ink touches
    each edge of their box (tight, not just overlapping)."""
    ink = page.image < 128
    touched = page.image < 255
    h, w = ink.shape
    assert (w, h) == (WIDTH, round(WIDTH * 297 / 210))
    for ann, name in zip(page.annotations, _names(page), strict=True):
        x0, y0, x1, y1 = ann["a_bbox"]
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h, (name, ann["a_bbox"])
        crop = ink[int(y0):int(np.ceil(y1)), int(x0):int(np.ceil(x1))]
        assert crop.any(), f"no ink in the {name} box {ann['a_bbox']}"
        assert ann["area"] == int(crop.sum())
        if name.startswith("noteheadBlack"):
            assert crop.mean() > 0.5, f"{name} box {ann['a_bbox']} is loose"
            edge = touched[int(y0):int(np.ceil(y1)), int(x0):int(np.ceil(x1))]
            assert edge[:, 0].any() and edge[:, -1].any() and edge[0].any() and edge[-1].any()


def test_pages_assemble_into_deepscores_json(page):
    """The records are what `dsv2.assemble` takes (the verovio path's format)."""
    doc = json.loads(dsv2.dumps(dsv2.assemble([{
        "image_id": 1, "first_ann_id": 1, "filename": "p.png", "width": WIDTH,
        "height": page.image.shape[0], "annotations": page.annotations}])))
    assert len(doc["annotations"]) == len(page.annotations)
    for ann in doc["annotations"].values():
        x0, y0, x1, y1 = ann["a_bbox"]
        assert ann["o_bbox"] == [x1, y1, x1, y0, x0, y0, x0, y1]
        assert doc["categories"][ann["cat_id"][0]]["name"] in DEEPSCORES_CLASSES


def test_music21_score_and_piece_files(lilypond, tmp_path):
    """A music21 score goes through music21's LilyPond writer (with the dynamics, slurs and
    articulations it leaves out added back); `engrave_piece` writes the page and the shard
    as the verovio path's worker does."""
    music21 = pytest.importorskip("music21")
    part = music21.stream.Part()
    part.append(music21.meter.TimeSignature("2/4"))
    notes = [music21.note.Note(p, quarterLength=q)
             for p, q in (("C5", 1), ("D5", 0.5), ("E5", 0.5), ("F#5", 2))]
    notes[0].articulations.append(music21.articulations.Staccato())
    part.insert(0, music21.dynamics.Dynamic("mf"))
    for n in notes:
        part.append(n)
    part.insert(0, music21.spanner.Slur(notes[1], notes[3]))
    score = music21.stream.Score([part])
    path = tmp_path / "tiny.musicxml"
    score.write("musicxml", fp=str(path))
    style = lilypond.default_style(WIDTH, STAFF_SPACE)
    images = tmp_path / "images"
    images.mkdir()
    task = PieceTask(str(path), "tiny", style, 1, str(images), str(tmp_path / "tiny.json"))
    shard = lilypond.engrave_piece(task)
    assert json.loads((tmp_path / "tiny.json").read_text()) == shard
    (page,) = shard["pages"]
    assert page["filename"] == "m21-tiny-emmentaler--page-1.png"
    assert (images / page["filename"]).is_file()
    counts = collections.Counter(_family(DEEPSCORES_CLASSES[int(a["cat_id"]) - 1])
                                 for a in page["annotations"])
    assert counts["noteheadBlack"] + counts["noteheadHalf"] == 4
    assert counts["dynamicM"] == counts["dynamicF"] == counts["slur"] == 1
    assert counts["articStaccato"] == counts["accidentalSharp"] == counts["beam"] == 1


def test_what_music21s_writer_leaves_out_is_engraved_and_boxed(lilypond):
    """A piano's brace (a PianoStaff), repeats on both sides of a bar and a bass clef an
    octave down: music21 writes no staff group, drops start repeats, writes an end repeat as
    a final bar and names the clef "" (which LilyPond draws as a treble clef)."""
    pytest.importorskip("music21")
    from music21 import bar, clef, layout, meter, note, stream

    parts = []
    for i, staff_clef in enumerate((clef.TrebleClef(), clef.Bass8vbClef())):
        part = stream.PartStaff(id=f"P{i + 1}")
        for number in (1, 2, 3):
            m = stream.Measure(number=number)
            if number == 1:
                m.append([staff_clef, meter.TimeSignature("2/4")])
            m.append(note.Note("C4" if i else "C5", quarterLength=2.0))
            if number == 2:
                m.leftBarline = bar.Repeat(direction="start")
                m.rightBarline = bar.Repeat(direction="end")
            part.append(m)
        parts.append(part)
    score = stream.Score(parts)
    score.insert(0, layout.StaffGroup(parts, symbol="brace"))
    text = lilypond.ly_from_music21(score)
    assert "\\new PianoStaff <<" in text
    assert '\\bar ".|:"' in text and '\\bar ":|."' in text
    assert '\\clef "bass_8"' in text and '\\clef ""' not in text
    (page,) = lilypond.engrave_lilypond(score, lilypond.default_style(WIDTH, STAFF_SPACE))
    counts = collections.Counter(_names(page))
    assert counts["brace"] == 1 and counts["clefG"] == counts["clefF"] == counts["clef8"] == 1
    assert counts["repeatDot"] == 8  # Two dots on each side of the repeat, on both staves.


def test_a_music_glyph_converted_once_is_drawn_as_when_converted_every_time(lilypond):
    """The prelude converts each (font, glyph) outline to a path once; with the cache off
    (every lookup a miss, as LilyPond's SVG backend does alone) the page is the same text."""
    style = lilypond.default_style(WIDTH, STAFF_SPACE)
    cached = lilypond.render_svg(lilypond.with_prelude(PIECE, style))
    uncached_prelude = lilypond.PRELUDE.replace("(or (hash-ref cache key)", "(or #f")
    assert uncached_prelude != lilypond.PRELUDE
    text = lilypond.with_prelude(PIECE, style).replace(lilypond.PRELUDE, uncached_prelude)
    assert lilypond.render_svg(text) == cached


# Two short pieces; seed 2 draws LilyPond for the chorale and verovio for the jig.
MIXED_PIECES = ["bach/bwv104.6.mxl", "ryansMammoth/DaysOfLangSyneJig.abc"]
MIXED = dict(num_pages=2, seed=2, workers=2, test_fraction=0.5, progress=False,
             pages_per_piece=1, width_range=(1200, 1400))
BOTH = ("verovio", "lilypond")


def _splits_by_key(out: pathlib.Path) -> dict[str, tuple[str, str]]:
    """piece key -> (split, page file name) of a corpus with one page a piece."""
    found = {}
    for split, (path,) in deepscores_json.annotation_files(out).items():
        for page in deepscores_json.load_pages(path):
            assert (out / "images" / page.filename).is_file()
            assert len(page.labels) > 0, page.filename
            key = page.filename.removeprefix("m21-").split("--page-")[0].rsplit("-", 1)[0]
            found[key] = (split, page.filename)
    return found


def test_corpus_mixes_engravers_per_piece(lilypond, tmp_path):
    """`generate(engravers=("verovio", "lilypond"))` engraves each piece with its drawn engraver
    (LilyPond's pages say emmentaler); the pages load, a rerun redoes nothing, the verovio
    pieces are the pages verovio alone makes, and every work keeps its split."""
    paths = corpus.corpus_pieces()
    pieces = [next(p for p in paths if p.endswith(name)) for name in MIXED_PIECES]
    drawn = {corpus.piece_key(p): engraver_of(corpus.piece_key(p), seed=MIXED["seed"],
                                               engravers=BOTH) for p in pieces}
    assert sorted(drawn.values()) == sorted(BOTH), "the pieces must draw both engravers"
    mixed, alone = tmp_path / "mixed", tmp_path / "verovio"
    stats = generate(str(mixed), pieces=pieces, engravers=BOTH, **MIXED)
    assert stats["pages"] == 2 and not stats["failed"] and not stats["crashed"]
    pages = _splits_by_key(mixed)
    assert pages.keys() == drawn.keys()
    for key, (_, filename) in pages.items():
        assert ("-emmentaler--" in filename) == (drawn[key] == "lilypond"), filename
    settings = json.loads((mixed / "engrave_settings.json").read_text())
    assert settings["lilypond"] == lilypond.version() and "verovio" in settings

    before = {p: p.stat().st_mtime_ns for p in mixed.rglob("*") if p.is_file()}
    stats = generate(str(mixed), pieces=pieces, engravers=BOTH, **MIXED)
    assert stats["new_pages"] == 0 and stats["resumed_pages"] == 2
    assert {p: p.stat().st_mtime_ns for p in mixed.rglob("*") if p.is_file()} == before
    with pytest.raises(ValueError, match=f"other settings.*delete {mixed}"):
        generate(str(mixed), pieces=pieces, **MIXED)  # verovio alone: another corpus

    generate(str(alone), pieces=pieces, **MIXED)
    by_verovio = _splits_by_key(alone)
    assert {k: s for k, (s, _) in pages.items()} == {k: s for k, (s, _) in by_verovio.items()}
    (jig,) = [k for k, e in drawn.items() if e == "verovio"]
    name = pages[jig][1]
    assert (mixed / "images" / name).read_bytes() == (alone / "images" / name).read_bytes()


def test_rasterize_plain_svg():
    """LilyPond's dialect: viewBox on the root, `<line>`s and `<a>` links drawn, rounded rects,
    and nothing stroked that does not ask to be (verovio's CSS strokes everything)."""
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        'viewBox="0 0 100 200">'
        '<rect x="10" y="20" width="30" height="10" fill="currentColor"/>'
        '<a xlink:href="textedit:///x.ly:1:2:3"><g transform="translate(0, 100)">'
        '<line stroke-width="2" stroke="currentColor" stroke-linecap="butt" x1="10" y1="0" '
        'x2="90" y2="0"/></g></a>'
        '<rect x="50" y="150" width="40" height="40" rx="20" ry="20" fill="currentColor"/>'
        '</svg>'
    )
    page = raster.rasterize(svg, 100, 200)
    ink = page < 128
    expected = np.zeros_like(ink)
    expected[20:30, 10:40] = True  # the rect, exactly, with no 1-unit stroke around it
    expected[99:101, 10:90] = True  # the line inside the link
    assert (ink[:140] == expected[:140]).all()
    disc = ink[150:190, 50:90]  # a circle: corners empty, middle full
    assert disc[20, :].all() and disc[:, 20].all() and not disc[0, 0] and not disc[-1, -1]


def test_char_boxes_match_the_drawn_text():
    """`char_boxes` is the ink of each character of plain-SVG text as `rasterize` draws it."""
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">'
           '<g transform="translate(20, 60)"><text font-family="serif" font-style="italic" '
           'font-size="30"><tspan>37</tspan></text></g></svg>')
    ink = raster.rasterize(svg, 100, 100) < 128
    boxes = raster.char_boxes("37", 30, italic=True)
    assert len(boxes) == 2 and boxes[0][2] <= boxes[1][0] + 1
    for x0, y0, x1, y1 in boxes:
        part = np.argwhere(ink[:, round(20 + x0) : round(20 + x1)])
        assert part[:, 0].min() == pytest.approx(60 + y0, abs=1)
        assert part[:, 0].max() + 1 == pytest.approx(60 + y1, abs=1)
    columns = np.flatnonzero(ink.any(axis=0))
    assert columns.min() == pytest.approx(20 + boxes[0][0], abs=1)
    assert columns.max() + 1 == pytest.approx(20 + boxes[1][2], abs=1)


def _rare_marks_score():
    """Seven bars holding what music21's LilyPond writer leaves out and the composer writes:
    a clef two octaves down, fingerings, a tremolo, a caesura, a segno and a coda, an
    arpeggio, a tuplet of 12, an ottava, pedalling and a multi-measure rest."""
    from music21 import (
        articulations,
        chord,
        clef,
        duration,
        expressions,
        meter,
        note,
        repeat,
        spanner,
        stream,
    )

    part = stream.Part(id="P1")
    low = clef.TrebleClef()
    low.octaveChange = -2
    m1 = stream.Measure(number=1)
    m1.append([low, meter.TimeSignature("4/4")])
    for finger in range(4):
        n = note.Note("E4", quarterLength=0.5)
        n.articulations.append(articulations.Fingering(finger))
        m1.append(n)
    held = note.Note("G4", quarterLength=2.0)
    tremolo = expressions.Tremolo()
    tremolo.numberOfMarks = 3
    held.expressions.append(tremolo)
    held.articulations.append(articulations.Caesura())
    m1.append(held)
    m2 = stream.Measure(number=2)
    m2.insert(0, repeat.Segno())
    spread = chord.Chord(["C4", "E4", "G4"], quarterLength=1.0)
    spread.expressions.append(expressions.ArpeggioMark())
    m2.append(spread)
    group = []
    for _ in range(12):
        n = note.Note("F4")
        n.duration = duration.Duration(0.125)
        n.duration.appendTuplet(duration.Tuplet(12, 8, 0.125))
        group.append(n)
    group[0].duration.tuplets[0].type, group[-1].duration.tuplets[0].type = "start", "stop"
    m2.append(group)
    m2.append(note.Note("A4", quarterLength=2.0))
    m3 = stream.Measure(number=3)
    m3.insert(0, repeat.Coda())
    quarters = [note.Note(p, quarterLength=1.0) for p in ("C5", "D5", "E4", "F4")]
    m3.append(quarters)
    rests = []
    measures = [m1, m2, m3]
    for number in (4, 5, 6):
        rest = note.Rest(quarterLength=4.0)
        rest.fullMeasure = True
        rests.append(rest)
        measures.append(stream.Measure([rest], number=number))
    part.append(measures)
    part.insert(0, spanner.Ottava(quarters[0], quarters[1], type="8va"))
    part.insert(0, expressions.PedalMark(quarters[2], quarters[3]))
    part.insert(0, spanner.MultiMeasureRest(rests, useSymbols=False))
    return stream.Score([part])


def test_marks_music21s_writer_drops_are_engraved_and_boxed(lilypond):
    """Each mark the composer writes and music21's LilyPond writer drops reaches LilyPond
    (through the MusicXML the corpus keeps, as `engrave_piece` reads it) as its class."""
    music21 = pytest.importorskip("music21")
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    score = music21.converter.parseData(GeneralObjectExporter(_rare_marks_score()).parse())
    text = lilypond.ly_from_music21(score)
    assert '\\clef "treble_15"' in text and "R 1 *3" in text
    (page,) = lilypond.engrave_lilypond(score, lilypond.default_style(WIDTH, STAFF_SPACE))
    counts = collections.Counter(_names(page))
    assert counts["clefG"] == counts["clef15"] >= 1  # one per system
    expected = {
        "fingering0": 1, "fingering1": 1, "fingering2": 1,
        "fingering3": 1, "tremolo3": 1, "caesura": 1, "segno": 1, "coda": 1, "arpeggiato": 1,
        "tuplet1": 1, "tuplet2": 1, "ottavaBracket": 1, "keyboardPedalPed": 1,
        "keyboardPedalUp": 1, "restHBar": 1, "restHNr": 1,
    }
    assert {name: counts[name] for name in expected} == expected
    assert not counts["restWhole"]  # the rest's measures are one H-bar, not three rests
    one, two = sorted(a["a_bbox"] for a in page.annotations
                       if DEEPSCORES_CLASSES[int(a["cat_id"]) - 1] in ("tuplet1", "tuplet2"))
    assert one[2] <= two[0] + 1  # the 1 of the 12 stands left of its 2


def _tuplet_notes(music21, quarter_lengths, kinds):
    """Triplet notes of these quarter lengths, their tuplets marked `kinds` (None: unmarked)."""
    notes = []
    for quarter_length, kind in zip(quarter_lengths, kinds, strict=True):
        n = music21.note.Note("E4")
        n.duration = music21.duration.Duration(quarter_length * 3 / 2)
        n.duration.appendTuplet(music21.duration.Tuplet(3, 2))
        n.duration.tuplets[0].type = kind
        notes.append(n)
    return notes


def test_tuplet_notes_outside_a_marked_group_keep_their_length(lilypond):
    """music21's writer opens `\\times` only at a note marked as a tuplet's start; unmarked
    tuplet notes after a group (as its MusicXML writer splits an eighth into a triplet eighth
    tied to a triplet sixteenth) and one-note tuplets would be written at their plain values,
    their measures running long (LilyPond then warns at the next time signature). Each gets
    a `\\times` of its own; the unmarked ones draw no number, the one-note tuplets draw theirs."""
    music21 = pytest.importorskip("music21")
    from music21 import meter, note, stream, tie

    part = stream.Part()
    group = _tuplet_notes(music21, (1 / 3, 1 / 3, 1 / 3), ("start", None, "stop"))
    split = _tuplet_notes(music21, (1 / 3, 1 / 6), (None, None))
    split[0].tie, split[1].tie = tie.Tie("start"), tie.Tie("stop")
    singles = _tuplet_notes(music21, (4 / 3, 2 / 3), ("startStop", "startStop"))
    for number, (signature, notes) in enumerate(
            [("2/4", [*group, *split, note.Note("G4", quarterLength=0.5)]),
             ("3/4", [*singles, note.Note("G4")]), ("2/4", [note.Note("G4", quarterLength=2)])]):
        measure = stream.Measure(number=number + 1)
        measure.append([meter.TimeSignature(signature), *notes])
        part.append(measure)
    text = lilypond.ly_from_music21(stream.Score([part]))
    assert text.count("\\times 2/3") == 5
    assert text.count("\\once \\omit TupletNumber") == 2
    run = subprocess.run([lilypond.executable(), "-dno-print-pages", "-o", os.devnull, "-"],
                         input=text, capture_output=True, text=True, check=True)
    assert "warning" not in run.stderr, run.stderr
    (page,) = lilypond.engrave_lilypond(text, lilypond.default_style(WIDTH, STAFF_SPACE))
    assert collections.Counter(_names(page))["tuplet3"] == 3


def test_multi_measure_rest_settings_only_where_the_input_has_one(lilypond):
    """`skipBars` and a one-bar expand limit move LilyPond's spacing of every page: they are
    set for input with an `R` times its bars, and the default corpus's pages stay as drawn."""
    style = lilypond.default_style(WIDTH, STAFF_SPACE)
    assert "skipBars" in lilypond.with_prelude("{ c'1 R 1 *3 }", style)
    assert "skipBars" not in lilypond.with_prelude("{ c'1 R1 r1 }", style)


def test_lilypond_killed_by_a_signal_is_run_again(lilypond, tmp_path, monkeypatch):
    real = lilypond.executable()
    tries = tmp_path / "tries"
    flaky = tmp_path / "flaky"  # dies of SIGSEGV on its first `crashes` runs
    flaky.write_text(
        "#!/bin/sh\n"
        f'echo x >> "{tries}"\n'
        f'if [ "$(wc -l < "{tries}")" -le "$CRASHES" ]; then kill -SEGV $$; fi\n'
        f'exec "{real}" "$@"\n'
    )
    flaky.chmod(0o755)
    monkeypatch.setattr(lilypond, "executable", lambda: str(flaky))
    ly = lilypond.with_prelude("{ c'1 }", lilypond.default_style(WIDTH, STAFF_SPACE))
    monkeypatch.setenv("CRASHES", "1")
    assert len(lilypond.render_svg(ly)) == 1
    assert len(tries.read_text().split()) == 2
    tries.unlink()
    monkeypatch.setenv("CRASHES", "99")  # a crash every time is still an error
    with pytest.raises(lilypond.EngraveError, match="exit -11"):
        lilypond.render_svg(ly)
    assert len(tries.read_text().split()) == 1 + lilypond._CRASH_RETRIES

"""Generated music (dwd_jax.engrave.compose): seeded, holding what the corpus lacks, and
engraved into the corpus at its configured share."""

from __future__ import annotations

import json
import os
import pathlib
import re

import numpy as np
import pytest
from music21 import articulations, dynamics, expressions, key, layout, meter, note, stream

from dwd_jax.engrave import compose, corpus, generate, lilypond
from dwd_jax.engrave.generate import GENERATED, _with_generated


def _xml(seed: int, folder: pathlib.Path) -> str:
    return pathlib.Path(compose.write(seed, str(folder / f"{seed}.musicxml"))).read_text()


def test_a_seed_gives_one_score(tmp_path):
    """The same bytes: no random part names, no date (a piano's two staves are one part)."""
    assert _xml(3, tmp_path) == _xml(3, tmp_path)
    assert _xml(3, tmp_path) != _xml(4, tmp_path)
    text = _xml(2, tmp_path)
    assert "encoding-date" not in text and re.findall(r'<score-part id="(\w+)"', text) == ["P1"]


def test_tuplets_are_written_as_composed(tmp_path):
    """Every tuplet note read back from the MusicXML lies in a group marked from start to stop,
    and every measure holds no more than its time signature: music21's writer, left to infer,
    "completes" a group a grace note interrupts by splitting the next note into tied tuplet
    notes (seeds 2, 4 and 5 among these)."""
    from music21 import converter

    for seed in range(6):
        score = converter.parse(_xml(seed, tmp_path))
        for part in score.parts:
            inside = False
            for n in part.recurse().notesAndRests:
                if not n.duration.tuplets:
                    continue
                kind = n.duration.tuplets[0].type
                assert inside or kind in ("start", "startStop"), (seed, n.measureNumber, n)
                inside = kind in ("start", None) and (inside or kind == "start")
            for measure in part.getElementsByClass("Measure"):
                assert measure.duration.quarterLength <= measure.barDuration.quarterLength


def test_time_signatures_hold_every_digit():
    digits = set("".join(t for t in compose.TIME_SIGNATURES if "/" in t))
    assert digits >= set("0123456789") - {"/"}


def test_time_signatures_favour_the_digits_the_corpus_rarely_writes():
    rng = np.random.default_rng(0)
    draws = [compose.time_signature(rng) for _ in range(4000)]
    symbols = sum(t in compose.SYMBOL_TIMES for t in draws) / len(draws)
    assert abs(symbols - compose.SYMBOL_TIME_SHARE) < 0.02
    numeric = [t for t in draws if "/" in t]
    holding = {d: sum(d in t for t in numeric) / len(numeric) for d in "0123456789"}
    # Drawn digit first: each digit is in at least its weight's share of the draws (some
    # signatures hold two); the digits the corpus lacks in more than a uniform draw's tenth.
    total = sum(compose.COMMON.digits.values())
    for digit, share in holding.items():
        assert share >= 0.9 * compose.COMMON.digits[digit] / total, (digit, share)
    assert min(holding[d] for d in "0567") > 0.12, holding


def test_time_signatures_and_keys_change_within_a_piece_in_every_part_alike():
    changes = []
    for seed in range(8):
        score = compose.compose(seed, every_class=seed % 2 == 1)
        per_part = [
            [(m.number, type(e).__name__, getattr(e, "ratioString", getattr(e, "sharps", None)))
             for m in part.getElementsByClass(stream.Measure)
             for e in m.getElementsByClass((meter.TimeSignature, key.KeySignature))]
            for part in score.parts
        ]
        assert all(p == per_part[0] for p in per_part)  # Barlines stay aligned.
        changes += [c for c in per_part[0] if c[0] > 1]
        for part in score.parts:  # Each measure is full in its own signature.
            for m in part.getElementsByClass(stream.Measure):
                assert abs(m.duration.quarterLength - m.barDuration.quarterLength) < 1e-6
    kinds = {kind for _, kind, _ in changes}
    assert kinds == {"TimeSignature", "KeySignature"}


def test_marks_placed_below_reach_lilypond_below():
    n = note.Note("C5", quarterLength=1.0)
    below = articulations.Accent()
    below.placement = "below"
    n.articulations += [below, articulations.Tenuto()]
    fermata = expressions.Fermata()
    fermata.type = "inverted"  # MusicXML's fermata below the staff (music21's default).
    n.expressions.append(fermata)
    m = note.Note("D5", quarterLength=1.0)
    upright = expressions.Fermata()
    upright.type = "upright"
    m.expressions.append(upright)
    part = stream.Part([stream.Measure([n, m, note.Rest(quarterLength=2.0)])])
    text = lilypond.ly_from_music21(part)
    assert "_> " in text and "-- " in text  # Forced below; left where LilyPond puts it.
    assert text.count("_\\fermata") == 1 and text.count("\\fermata") == 2


def _marks(every_class: bool) -> set[str]:
    """What eight generated scores hold, by name."""
    found = set()
    for seed in range(8):
        score = compose.compose(seed, every_class=every_class)
        flat = score.flatten()
        if flat.getElementsByClass(dynamics.Dynamic):
            found.add("dynamic")
        found.update(type(r).__name__ for r in flat.getElementsByClass(("Segno", "Coda")))
        for s in score.spannerBundle:
            found.add(type(s).__name__)
        for group in score.getElementsByClass(layout.StaffGroup):
            found.add(f"group:{group.symbol}")
        for n in flat.notes:
            found.update(type(a).__name__ for a in n.articulations)
            found.update(type(e).__name__ for e in n.expressions)
            if n.duration.isGrace:
                found.add("grace")
                found.add(f"grace {n.duration.type}")
                if n.pitch.accidental is not None:
                    found.add("grace accidental")
            if n.duration.tuplets:
                found.add("tuplet")
                number = str(n.duration.tuplets[0].numberNotesActual)
                found.update(f"tuplet digit {d}" for d in number)
            if n.duration.type == "128th":
                found.add("128th")
            if n.duration.quarterLength == 8.0:
                found.add("breve")
            for p in n.pitches:
                if p.accidental is not None and abs(p.accidental.alter) == 2:
                    found.add("double accidental")
        for part in score.parts:
            for m in part.getElementsByClass(stream.Measure):
                for barline in (m.leftBarline, m.rightBarline):
                    if getattr(barline, "direction", None) in ("start", "end"):
                        found.add(f"repeat:{barline.direction}")
                found.update(type(c).__name__ for c in m.getElementsByClass("Clef"))
                found.update("two octaves down" for c in m.getElementsByClass("Clef")
                             if c.octaveChange == -2)
                items = list(m.notesAndRests)
                for before, n, after in zip(items, items[1:], items[2:], strict=False):
                    # A short note between rests: nothing beams it, so its flag is drawn.
                    if before.isRest and after.isRest and n.isNote and n.quarterLength <= 0.25:
                        found.add("flagged")
    return found


_COMMON_MARKS = {
    "dynamic", "Crescendo", "Diminuendo", "Slur", "Accent", "Tenuto", "grace", "tuplet",
    "group:brace", "UpBow", "DownBow", "InvertedTurn", "Fermata", "grace accidental",
    "double accidental", "repeat:start", "repeat:end", "flagged", "AltoClef", "TenorClef",
    "breve",
}
_EVERY_CLASS_MARKS = {
    "Fingering", "Caesura", "Tremolo", "ArpeggioMark", "PedalMark", "Ottava", "MultiMeasureRest",
    "Segno", "Coda", "PercussionClef", "two octaves down", "128th", "grace half", "grace whole",
    "grace breve", *(f"tuplet digit {d}" for d in (1, 2, 4, 8, 9)),
}


def test_scores_hold_what_the_corpus_lacks_and_every_class_the_rest():
    common = _marks(every_class=False)
    assert _COMMON_MARKS <= common
    assert not common & _EVERY_CLASS_MARKS  # The default corpus's scores as they were.
    assert _COMMON_MARKS | _EVERY_CLASS_MARKS | {"grace eighth"} <= _marks(every_class=True)


def test_generated_pieces_take_their_share_of_every_prefix():
    order = [f"p{i}" for i in range(12)]
    assert _with_generated(order, "g", 0, 0.0) == order
    mixed = _with_generated(order, "g", 7, 0.25)
    generated = [p for p in mixed if os.path.basename(p).startswith(GENERATED)]
    assert [p for p in mixed if p.startswith("p")] == order  # The corpus order is kept.
    assert generated[:2] == ["g/generated-7-00000.musicxml", "g/generated-7-00001.musicxml"]
    for n in range(4, len(mixed) + 1, 4):  # Every fourth piece is generated.
        assert sum(os.path.basename(p).startswith(GENERATED) for p in mixed[:n]) == n // 4


def test_every_class_share_is_a_share_of_generated_pieces(tmp_path):
    with pytest.raises(ValueError, match="generated_share is 0"):
        generate(str(tmp_path), num_pages=1, every_class_share=0.5, progress=False)
    with pytest.raises(ValueError, match="not in"):
        generate(str(tmp_path), num_pages=1, generated_share=0.5, every_class_share=1.5,
                 progress=False)


def test_the_corpus_engraves_generated_pieces_with_their_classes(tmp_path):
    names = ("bach/bwv104.6.mxl", "ryansMammoth/DaysOfLangSyneJig.abc")
    pieces = [p for p in corpus.corpus_pieces() if p.endswith(names)]
    stats = generate(
        str(tmp_path), pieces=pieces, num_pages=4, seed=5, workers=2, progress=False,
        pages_per_piece=1, width_range=(1400, 1500), generated_share=0.5, every_class_share=0.5,
    )
    assert stats["pages"] == 4 and not stats["failed"] and not stats["crashed"]
    written = sorted(os.listdir(tmp_path / "generated"))
    assert written == ["generated-5-00000.musicxml", "generated-5-00001.musicxml"]
    # Every second generated piece holds every class's marks.
    for index, every_class in enumerate((False, True)):
        own = (tmp_path / "generated" / written[index]).read_bytes()
        path = compose.write(500_000 + index, str(tmp_path / "x.musicxml"), every_class=every_class)
        assert own == pathlib.Path(path).read_bytes()
    names = set()
    for split in ("train", "validation", "test"):
        data = json.loads((tmp_path / f"deepscores_{split}.json").read_text())
        categories = {k: v["name"] for k, v in data["categories"].items()}
        names.update(categories[a["cat_id"][0]] for a in data["annotations"].values())
        names.update(
            "generated" for image in data["images"] if GENERATED in image["filename"]
        )
    assert "generated" in names
    # Generated pages bring dynamics and articulations the chorale and the jig do not have.
    assert any(n.startswith("dynamic") for n in names)
    assert any(n.startswith("artic") for n in names)
    settings = json.loads((tmp_path / "engrave_settings.json").read_text())
    assert settings["generated_share"] == 0.5
    assert settings["compose"] == compose.VERSION
    assert settings["every_class_share"] == 0.5

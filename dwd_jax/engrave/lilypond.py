"""LilyPond as a second engraver: a score or LilyPond text -> pages in DeepScoresV2 classes.

The same pages as the verovio path (`piece`): grey PNG-ready rasters drawn by `raster` from the
page SVG, and annotation records (`piece.symbol_records`) with boxes from LilyPond's own
geometry. `engrave_piece` has `piece.engrave_piece`'s contract, so `generate` can hand a piece
to either engraver.

How the geometry is read. A prelude added to the input (`PRELUDE`) makes LilyPond's SVG backend
say what it draws:
  - a Score engraver sets every grob's `output-attributes` to a callback, so the backend wraps
    each grob's stencil in `<g class="GrobName" id=... data-size=(font-size) ...>`; the
    callback runs when the grob is printed, so the properties it records are final:
    NoteHead `data-pos` (staff-position) `data-log` (its note's duration log) `data-when`
    (onset in whole notes), Clef `data-pos`, Script `data-dir` (direction), Hairpin `data-grow`
    (grow-direction), TupletNumber and ClefModifier `data-text`;
  - the backend's `named-glyph` and `glyph-string` outputters are wrapped so each music-font
    glyph is drawn inside `<g data-glyph="feta glyph name">` (e.g. `noteheads.s2`, `three`).
A symbol's box is then the union of the shapes drawn inside its group: glyph outlines sampled
as `svg_symbols` samples verovio's paths, lines/rects/polygons/paths widened by half their
stroke (LilyPond strokes with round caps and joins), text measured by `raster.char_boxes`.

Grob -> DeepScoresV2 class (the names of `dwd_jax.classes`):
  NoteHead             noteheads.s2/s1/s0/sM1 -> noteheadBlack/Half/Whole/DoubleWhole +
                       OnLine/InSpace (parity of staff-position) + Small (font-size <= -2:
                       grace and cue notes); comments "onset:..;rel_position:..;duration:..;"
  Stem                 stem                      Beam       beam (one per beam polygon = line)
  LedgerLineSpanner    ledgerLine (one per line) Flag       flag8th..128th Up/Down (+Small 8th)
  Rest                 rests.* -> restDoubleWhole/Whole/Half/Quarter/8th..128th
  MultiMeasureRest     restHBar (a glyph-drawn one: its rest class); MultiMeasureRestNumber
                       digits -> restHNr (one per digit)
  Dots                 augmentationDot (one per dot)
  Accidental*          accidentalSharp/Flat/Natural (+Small), DoubleSharp, DoubleFlat
  KeySignature, KeyCancellation   keySharp/keyFlat/keyNatural (one per glyph)
  Clef                 clefG, clefF, clefCAlto/clefCTenor (staff-position 0/2; other C clefs
                       -> alto, as the verovio path), clefUnpitchedPercussion
  ClefModifier         clef8 / clef15 (text)
  TimeSignature        timeSig0..9 (one per digit), timeSigCommon, timeSigCutCommon
  DynamicText          dynamicP/M/F/S/Z/R (one per letter)
  Hairpin              dynamicCrescendoHairpin / dynamicDiminuendoHairpin (grow-direction)
  Slur, PhrasingSlur   slur;  Tie, LaissezVibrerTie, RepeatTie   tie
  Script               articAccent/Staccato/Tenuto Above/Below (direction),
                       articStaccatissimo/Marcato Above/Below (glyph), fermataAbove/Below,
                       ornamentTrill/Turn/TurnInverted/Mordent (prall and mordent),
                       stringsUpBow/DownBow, segno, coda
  Fermata              fermataAbove/Below        BreathingSign   caesura (caesura glyphs)
  Fingering            fingering0..5 (one per digit)
  TupletNumber         tuplet1..9 (one per digit of its text);  TupletBracket  tupletBracket
  StaffSymbol          staff (one per staff per system)
  SystemStartBrace     brace                     Arpeggio   arpeggiato
  StemTremolo          tremolo1..5 (its beam count)
  OttavaBracket        ottavaBracket             SustainPedal   keyboardPedalPed / keyboardPedalUp
  BarLine              repeatDot (its dots); the lines are not a DeepScoresV2 class
  any grob             segno/coda/fermata/caesura/pedal glyphs (marks drawn with them)
Not produced: graceNoteAcciaccatura*/Appoggiatura* (grace notes are Small noteheads, flags
and plain stems, as on the verovio path; music21's LilyPond writer drops grace notes anyway),
tremolo1..5 between two notes (LilyPond draws those strokes as a Beam: labelled beam),
restHBar and restHNr where music21 writes plain rests (a multi-measure rest marked by its
spanner is written as one `R` times its measures, drawn compressed).
Not DeepScoresV2 classes, so not boxed: barlines, brackets, breath commas, portato, other
notehead shapes (cross, diamond, slash), text (titles, lyrics, tempo words, bar numbers).
Metronome marks are hidden (their noteheads would be unannotated ink; verovio's path leaves
them out too).

LilyPond ships one music font (Emmentaler, optical sizes), so `PageStyle.font` only names the
files; page size, staff size and spacing follow the style.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
import subprocess
import tempfile
import xml.etree.ElementTree as ET

import numpy as np

from dwd_jax.engrave import glyphs, raster, svg_geometry, svg_symbols
from dwd_jax.engrave.piece import EngraveError, PieceTask, save_page, save_shard, symbol_records
from dwd_jax.engrave.style import A4_ASPECT, PageStyle

FONT = "Emmentaler"  # LilyPond's music font: names the page files, as DeepScoresV2's do
MISSING_LILYPOND = (
    "Engraving with LilyPond needs the `lilypond` package (LilyPond's binaries as a wheel): "
    "`pip install lilypond`, or `pip install 'dwd-jax[engrave]'`"
)
_SVG = "{http://www.w3.org/2000/svg}"
_LY_VERSION = "2.24.0"  # the syntax our prelude and music21's output are written in
_SMALL_FONT_SIZE = -2  # grace notes and cues are drawn at font-size -3
_MM_PER_PT = 25.4 / 72.27  # TeX points, LilyPond's staff-size unit

# Makes the SVG backend name each grob and each music glyph (see the module docstring).
PRELUDE = r"""
#(let* ((svg (resolve-module '(lily output-svg)))
        (table (module-ref svg 'stencil-dispatch-alist))
        (named-glyph (assq-ref table 'named-glyph))
        (music-path (module-ref svg 'music-string-to-path)))
   (define (tagged name body)
     (if (string-null? body) body
         (string-append "<g data-glyph=\"" name "\">\n" body "</g>\n")))
   ;; A music glyph's outline is the same every time it is drawn in one font (its place is
   ;; the enclosing group's): converted once, not per note head, a dense page is drawn ~3.6x
   ;; faster (BENCHMARKS.md). Not text glyphs: each one's offset along its string is in its
   ;; path.
   (define cache (make-hash-table 1024))
   (define (cached key make)
     (or (hash-ref cache key)
         (let ((value (make))) (hash-set! cache key value) value)))
   (module-set!
    svg 'stencil-dispatch-alist
    (cons*
     (cons 'named-glyph
           (lambda (font name)
             (cached (list font name) (lambda () (tagged name (named-glyph font name))))))
     (cons 'glyph-string
           (lambda (pango-font ps-name size cid? glyphs . rest)
             (let ((out (string-concatenate
                         (map (lambda (g) (tagged (last g) (music-path ps-name size g)))
                              glyphs))))
               (module-set! svg 'next-horiz-adv 0.0)
               out)))
     table)))

#(define (dwd-duration-log grob)
   ;; The note's own duration: NoteHead.duration-log stops at 2 (it picks the glyph).
   (let* ((cause (event-cause grob))
          (dur (and (ly:stream-event? cause) (ly:event-property cause 'duration #f))))
     (if (ly:duration? dur) (ly:duration-log dur) (ly:grob-property grob 'duration-log 2))))
#(define dwd-grob-count 0)
#(define (dwd-output-attributes grob)
   (set! dwd-grob-count (1+ dwd-grob-count))
   (let* ((name (grob::name grob))
          (prop (lambda (key default) (ly:grob-property grob key default)))
          (extra
           (case name
             ((NoteHead)
              (list (cons 'data-pos (prop 'staff-position 0))
                    (cons 'data-log (dwd-duration-log grob))
                    (cons 'data-when (exact->inexact (ly:moment-main
                      (ly:grob-property (ly:item-get-column grob) 'when))))))
             ((Clef) (list (cons 'data-pos (prop 'staff-position 0))))
             ((Script) (list (cons 'data-dir (prop 'direction 0))))
             ((Hairpin) (list (cons 'data-grow (prop 'grow-direction 0))))
             ((TupletNumber ClefModifier)
              (list (cons 'data-text (markup->string (prop 'text "")))))
             (else '()))))
     (append (list (cons 'class (symbol->string name))
                   (cons 'id (format #f "dwd~a" dwd-grob-count))
                   (cons 'data-size (prop 'font-size 0)))
             extra)))
#(define (dwd-tag-engraver context)
   (make-engraver
    (acknowledgers
     ((grob-interface engraver grob source-engraver)
      (ly:grob-set-property! grob 'output-attributes dwd-output-attributes)))))
"""

# --- glyph -> class tables ---------------------------------------------------------------

_NOTEHEADS = {"noteheads.s2": "noteheadBlack", "noteheads.s1": "noteheadHalf",
              "noteheads.s0": "noteheadWhole", "noteheads.sM1": "noteheadDoubleWhole",
              "noteheads.sM1double": "noteheadDoubleWhole"}
_RESTS = {"M1": "restDoubleWhole", "M1o": "restDoubleWhole", "0": "restWhole",
          "0o": "restWhole", "1": "restHalf", "1o": "restHalf", "2": "restQuarter",
          "2classical": "restQuarter", "2z": "restQuarter", "3": "rest8th", "4": "rest16th",
          "5": "rest32nd", "6": "rest64th", "7": "rest128th"}
_FLAG_VALUES = {"3": "8th", "4": "16th", "5": "32nd", "6": "64th", "7": "128th"}
# accidental glyph -> (note accidental class, key-signature class or None)
_ACCIDENTALS = {
    "accidentals.sharp": ("accidentalSharp", "keySharp"),
    "accidentals.flat": ("accidentalFlat", "keyFlat"),
    "accidentals.natural": ("accidentalNatural", "keyNatural"),
    "accidentals.doublesharp": ("accidentalDoubleSharp", None),
    "accidentals.flatflat": ("accidentalDoubleFlat", None),
}
_DIGITS = {name: d for d, name in enumerate(
    ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"))}
_LETTERS = {"p": "dynamicP", "m": "dynamicM", "f": "dynamicF", "s": "dynamicS",
            "z": "dynamicZ", "r": "dynamicR"}
_CLEFS = {"G": "clefG", "GG": "clefG", "tenorG": "clefG", "F": "clefF",
          "percussion": "clefUnpitchedPercussion", "varpercussion": "clefUnpitchedPercussion"}
# Script glyphs whose class does not depend on the direction.
_SCRIPTS = {
    "scripts.ustaccatissimo": "articStaccatissimoAbove",
    "scripts.dstaccatissimo": "articStaccatissimoBelow",
    "scripts.umarcato": "articMarcatoAbove", "scripts.dmarcato": "articMarcatoBelow",
    "scripts.trill": "ornamentTrill", "scripts.turn": "ornamentTurn",
    "scripts.reverseturn": "ornamentTurnInverted", "scripts.prall": "ornamentMordent",
    "scripts.mordent": "ornamentMordent", "scripts.upbow": "stringsUpBow",
    "scripts.downbow": "stringsDownBow",
}
# Script glyphs drawn the same above and below the staff: the grob's direction decides.
_DIRECTED_SCRIPTS = {"scripts.sforzato": "articAccent", "scripts.staccato": "articStaccato",
                     "scripts.tenuto": "articTenuto"}
# Glyphs with one meaning in whichever grob draws them (marks, fermatas, pedals, caesuras).
_ANY_GROB = {"scripts.segno": "segno", "scripts.varsegno": "segno", "scripts.coda": "coda",
             "scripts.varcoda": "coda", "scripts.caesura.curved": "caesura",
             "scripts.caesura.straight": "caesura", "pedal.Ped": "keyboardPedalPed",
             "pedal.*": "keyboardPedalUp"}
_UNIONS = {"Slur": "slur", "PhrasingSlur": "slur", "Tie": "tie", "LaissezVibrerTie": "tie",
           "RepeatTie": "tie", "TupletBracket": "tupletBracket", "StaffSymbol": "staff",
           "OttavaBracket": "ottavaBracket", "Arpeggio": "arpeggiato"}


@functools.cache
def executable() -> str:
    """Path of the `lilypond` binary from the `lilypond` wheel.

    Raises:
      ImportError: the wheel is not installed (says how to install it).
    """
    try:
        import lilypond
    except ImportError as error:
        raise ImportError(f"{MISSING_LILYPOND} ({error})") from error
    return str(lilypond.executable())


@functools.cache
def version() -> str:
    """LilyPond's version string, e.g. "2.25.12" (for a corpus's settings)."""
    out = subprocess.run([executable(), "--version"], capture_output=True, text=True,
                         check=True).stdout
    return out.split()[2]


def ly_from_music21(score) -> str:
    """LilyPond input text of a music21 stream, fixed for LilyPond 2.24+.

    music21 writes `\\version "2.25"` (refused: unstable versions need three numbers),
    includes lilypond-book's preamble (which crops pages to the music) and forces the system
    breaks of the source file (`\\break`, which overfill LilyPond's lines at other staff
    sizes); the version is replaced, the rest removed, so LilyPond breaks lines itself (as
    the verovio path's `breaks: auto`). A score whose staves one brace joins is written as a
    PianoStaff (music21 writes no staff groups). Its translator writes notes, rests, chords,
    beams, ties, tuplets, fermatas, lyrics, clefs, keys and time signatures; `_converter`
    adds dynamics, hairpins, slurs, articulations and ornaments, fingerings, tremolos,
    arpeggios, pedalling, caesuras, segno and coda marks, ottavas, multi-measure rests,
    repeat barlines and the clef names (and two-octave marks) music21 lacks. Grace notes are
    dropped by music21.

    Args:
      score: a music21 Score, Part or other stream.

    Returns:
      LilyPond input text.
    """
    converter = _converter()()
    converter.loadFromMusic21Object(score)
    text = str(converter.topLevelObject)
    if _braced(score):  # music21 writes no staff groups: a piano's brace would be missing.
        text = re.sub(r"(\\score\s*\{\s*)<<", r"\1\\new PianoStaff <<", text, count=1)
    text = text.replace('\\include "lilypond-book-preamble.ly"', "")
    text = re.sub(r"\\break\b", "", text)
    return re.sub(r'\\version\s+"[^"]*"', f'\\\\version "{_LY_VERSION}"', text, count=1)


def _braced(score) -> bool:
    """Whether one brace joins all of a score's staves (a piano's, a harp's): LilyPond's
    PianoStaff. Groups of some of its staves are not written (music21 writes none)."""
    parts = list(getattr(score, "parts", ()))
    if len(parts) < 2:
        return False
    return any(
        group.symbol == "brace" and set(map(id, group.getSpannedElements())) >= set(map(id, parts))
        for group in score.getElementsByClass("StaffGroup")
    )


# (music21 clef sign, line) -> LilyPond clef name.
_CLEF_NAMES = {("G", 2): "treble", ("F", 4): "bass", ("C", 3): "alto", ("C", 4): "tenor",
               ("C", 1): "soprano", ("C", 2): "mezzosoprano", ("F", 3): "varbaritone",
               ("C", 5): "baritone", ("G", 1): "french", ("F", 5): "subbass"}
# music21 articulation / expression class -> LilyPond post-event.
_ARTICULATIONS = {"Staccato": "-.", "Accent": "->", "Tenuto": "--", "Staccatissimo": "-!",
                  "StrongAccent": "-^", "UpBow": "\\upbow", "DownBow": "\\downbow"}
_EXPRESSIONS = {"Trill": "\\trill", "Turn": "\\turn", "InvertedTurn": "\\reverseturn",
                "Mordent": "\\mordent", "InvertedMordent": "\\prall"}
# Dynamics LilyPond predefines (music21's value -> the same command).
_DYNAMICS = frozenset({"ppppp", "pppp", "ppp", "pp", "p", "mp", "mf", "f", "ff", "fff", "ffff",
                       "fffff", "fp", "sf", "sff", "sp", "spp", "sfz", "rfz"})


@functools.cache
def _converter():
    """music21's LilypondConverter, run with the wheel's binary and writing more marks."""
    from music21.lily.translate import LilypondConverter

    class Converter(LilypondConverter):
        def __init__(self):
            self._dynamics_done: set[int] = set()
            self._lone_tuplet = False  # a `\times` opened for one note, closed after it
            super().__init__()

        def setContextForTupletStart(self, inObj):
            # music21 opens `\times` only at a note marked as a tuplet's start: a tuplet note
            # outside a group that carries no mark (music21's MusicXML writer splits notes into
            # such, e.g. an eighth after a triplet into a triplet eighth tied to a triplet
            # sixteenth) or a tuplet of one note would be written at its plain value, and its
            # measure run long. It gets a `\times` of its own, closed after it; an unmarked
            # one unbracketed and unnumbered, as its source draws it.
            tuplets = inObj.duration.tuplets
            kind = tuplets[0].type if tuplets else "none"
            if kind == "startStop" or (kind in (None, "stop") and not self._in_times()):
                if kind != "startStop":
                    self._append_command("\\once \\omit TupletBracket \\once \\omit TupletNumber")
                self._lone_tuplet = True
                return self.setContextForTimeFraction(int(tuplets[0].tupletNormal[0]),
                                                      int(tuplets[0].tupletActual[0]))
            return super().setContextForTupletStart(inObj)

        def setContextForTupletStop(self, inObj):
            if self._lone_tuplet:
                self._lone_tuplet = False
                self.restoreContext()
                return None
            return super().setContextForTupletStop(inObj)

        def _in_times(self) -> bool:
            """Whether music is being written inside a tuplet's group (a `times` prefix)."""
            sequential = self.context.getParent()
            prefix = sequential.getParent() if sequential is not None else None
            return getattr(prefix, "type", None) == "times"

        def findLilyExec(self):  # the wheel's binary, not music21's configured path
            self.LILYEXEC = executable()
            return self.LILYEXEC

        def postEventsFromObject(self, generalNote):
            events = super().postEventsFromObject(generalNote)
            beams = getattr(generalNote, "beams", None)
            if "Chord" in generalNote.classes and beams:
                # music21 brackets the beams of notes only; a chord's unclosed beam would run
                # on to the end of the part.
                kind = beams.beamsList[0].type
                events = (["[ "] if kind == "start" else ["] "] if kind == "stop" else []) + events
            expressions = getattr(generalNote, "expressions", ())
            if any(getattr(e, "type", None) == "inverted" for e in expressions):
                # music21 writes every fermata above; MusicXML's inverted one (music21's
                # default type, as verovio reads it) is drawn below the staff.
                events = ["_\\fermata " if e == "\\fermata " else e for e in events]
            return events + _marks(generalNote, self._dynamics_done)

        def lyEmbeddedScmFromClef(self, clefObj):
            # music21 names only a few clefs and writes `\clef ""` (a treble clef) for the
            # others (the bass clef an octave down among them), and drops the octave of a
            # named clef two octaves down or up.
            scm = super().lyEmbeddedScmFromClef(clefObj)
            base = _CLEF_NAMES.get((clefObj.sign, clefObj.line))
            octave = {-2: "_15", -1: "_8", 0: "", 1: "^8", 2: "^15"}.get(
                clefObj.octaveChange or 0, "")
            if '""' in scm.content and base is not None:
                scm.content = scm.content.replace('""', f'"{base}{octave}"')
            elif octave and f'"{base}"' in scm.content:
                scm.content = scm.content.replace(f'"{base}"', f'"{base}{octave}"')
            return scm

        def lySimpleMusicFromNoteOrRest(self, noteOrRest):
            # A multi-measure rest's first rest is LilyPond's `R` times its measures: with
            # `skipBars` and an expand limit of one bar (`style_block`) it is drawn as one
            # H-bar with its count, as verovio's `multiRestStyle: block` draws it.
            music = super().lySimpleMusicFromNoteOrRest(noteOrRest)
            run = _multi_rest(noteOrRest)
            if run is not None:
                element = music.eventChord.simpleChordElements
                element.parts = ["R " if part == "r " else part for part in element.parts]
                element.parts.append(f"*{len(run.getSpannedElements())} ")
            return music

        def appendM21ObjectToContext(self, thisObject):
            run = _multi_rest(thisObject, first=False)
            if run is not None and not run.isFirst(thisObject):
                return  # the first rest of the run stands for it
            # music21 writes no segno, coda, ottava or caesura: the commands that draw them
            # go before and after the object that carries them.
            before, after = _commands_around(thisObject)
            for command in before:
                self._append_command(command)
            super().appendM21ObjectToContext(thisObject)
            for command in after:
                self._append_command(command)

        def _append_command(self, command: str) -> None:
            from music21.lily import lilyObjects

            scm = lilyObjects.LyEmbeddedScm(command)
            self.context.contents.append(scm)
            scm.setParent(self.context)

        def closeMeasure(self, barChecksOnly=False):
            # music21 writes an end repeat as a final barline and drops start repeats (a
            # measure's left barline): the bar between two measures says both.
            measure = self.currentMeasure
            closing = super().closeMeasure(barChecksOnly)
            if closing is None or barChecksOnly or self.variantMode:
                return closing
            ends = getattr(measure.rightBarline, "direction", None) == "end"
            following = measure.next("Measure", activeSiteOnly=True)
            starts = following is not None and (
                getattr(following.leftBarline, "direction", None) == "start")
            if ends or starts:
                kind = ":|.|:" if ends and starts else ":|." if ends else ".|:"
                closing.content = re.sub(r'\\bar "[^"]*"', f'\\\\bar "{kind}"', closing.content)
            return closing

    return Converter


# music21 duration type -> the flags (or beams) of its note.
_FLAG_COUNTS = {"eighth": 1, "16th": 2, "32nd": 3, "64th": 4, "128th": 5}
# music21 Ottava type -> LilyPond's \ottava number.
_OTTAVAS = {"8va": 1, "8vb": -1, "15ma": 2, "15mb": -2}


def _multi_rest(obj, *, first: bool = True):
    """The MultiMeasureRest spanner a rest belongs to (its first rest only, with `first`),
    else None."""
    if "Rest" not in getattr(obj, "classes", ()):
        return None
    for spanner in obj.getSpannerSites():
        if type(spanner).__name__ == "MultiMeasureRest" and (not first or spanner.isFirst(obj)):
            return spanner
    return None


def _commands_around(obj) -> tuple[list[str], list[str]]:
    """LilyPond commands music21 does not write for an object of a measure: a segno or coda
    mark (before it), an ottava that starts (before) or ends (after) on a note, a caesura
    after a note."""
    kind = type(obj).__name__
    if kind == "Segno":
        return ["\\segnoMark \\default"], []
    if kind == "Coda":
        return ["\\codaMark \\default"], []
    before, after = [], []
    if "GeneralNote" in obj.classes:
        for spanner in obj.getSpannerSites():
            if type(spanner).__name__ == "Ottava" and spanner.type in _OTTAVAS:
                if spanner.isFirst(obj):
                    before.append(f"\\ottava #{_OTTAVAS[spanner.type]}")
                if spanner.isLast(obj):
                    after.append("\\ottava #0")
        if any(type(a).__name__ == "Caesura" for a in getattr(obj, "articulations", ())):
            after.append("\\caesura")
    return before, after


def _placed(event: str, placement: str | None) -> str:
    """A post-event forced above or below the staff (`placement` "above" or "below"; LilyPond's
    `^` and `_`), or left where LilyPond puts it (`-`, or nothing before a command)."""
    direction = {"above": "^", "below": "_"}.get(placement or "")
    return direction + event.removeprefix("-") if direction else event


def _marks(note, dynamics_done: set[int]) -> list[str]:
    """LilyPond post-events for a music21 note, chord or rest: its articulations, ornaments,
    fingerings, the slurs and hairpins it starts or ends, and a dynamic at its offset (each
    dynamic once, on the first note met at its offset)."""
    out = []
    for art in getattr(note, "articulations", ()):
        kind = type(art).__name__
        if kind in _ARTICULATIONS:
            out.append(_placed(_ARTICULATIONS[kind], getattr(art, "placement", None)) + " ")
        elif kind == "Fingering" and str(art.fingerNumber).isdigit():
            out.append(f"-{art.fingerNumber} ")
    for expr in getattr(note, "expressions", ()):
        kind = type(expr).__name__
        if kind in _EXPRESSIONS:
            out.append(_EXPRESSIONS[kind] + " ")
        elif kind == "ArpeggioMark" and "Chord" in note.classes:
            out.append("\\arpeggio ")
        elif kind == "Tremolo" and 1 <= expr.numberOfMarks <= 5:
            # Strokes through the stem: LilyPond counts them in note values past the flags.
            flags = _FLAG_COUNTS.get(note.duration.type, 0)
            out.append(f":{2 ** (2 + flags + expr.numberOfMarks)} ")
    site = note.activeSite
    if site is not None:
        sites = [site] + ([site.activeSite] if site.activeSite is not None and
                          "Voice" in site.classes else [])
        offset = note.getOffsetBySite(site)
        for container in sites:
            for dyn in container.getElementsByOffset(offset).getElementsByClass("Dynamic"):
                if id(dyn) not in dynamics_done and dyn.value in _DYNAMICS:
                    dynamics_done.add(id(dyn))
                    out.append(f"\\{dyn.value} ")
    for spanner in note.getSpannerSites():
        kind = type(spanner).__name__
        elements = spanner.getSpannedElements()
        if len(elements) < 2 or kind not in ("Slur", "Crescendo", "Diminuendo", "PedalMark"):
            continue
        first, last = spanner.isFirst(note), spanner.isLast(note)
        if kind == "PedalMark":
            out.append("\\sustainOn " if first else "\\sustainOff " if last else "")
        elif kind == "Slur":
            out.append("( " if first else ") " if last else "")
        else:
            out.append(("\\< " if kind == "Crescendo" else "\\> ") if first else
                       "\\! " if last else "")
    return out


def style_block(style: PageStyle, *, multi_rests: bool = False) -> str:
    """Page size, staff size and spacing of a page style in LilyPond input.

    The page is A4 wide (210 mm) with the style's aspect; the staff size makes one staff space
    `style.staff_space_px` pixels once the page is `style.width_px` wide. verovio's spacing
    factors map onto LilyPond's: linear spacing onto the spacing increment (default 1.2 at
    verovio's 0.25), staff and system gaps (verovio units, half a staff space) onto the basic
    distances (staff spaces). With `multi_rests` a multi-measure rest (`R` times its bars) is
    drawn compressed, as one H-bar with its count (`skipBars`, an expand limit of one bar);
    only then, since both move LilyPond's spacing of pages that have none.
    """
    width_mm = 210.0
    height_mm = width_mm * style.height_px / style.width_px
    staff_space_mm = width_mm * style.staff_space_px / style.width_px
    staff_size_pt = 4 * staff_space_mm / _MM_PER_PT
    return "\n".join([
        f"#(set-global-staff-size {staff_size_pt:.4f})",
        "\\paper {",
        f"  #(set-paper-size '(cons (* {width_mm:.4f} mm) (* {height_mm:.4f} mm)))",
        f"  system-system-spacing.basic-distance = #{8 + style.spacing_system / 2:.3f}",
        "}",
        "\\header { tagline = ##f }",
        "\\layout {",
        "  \\context { \\Score \\consists #dwd-tag-engraver",
        *(["    skipBars = ##t", "    \\override MultiMeasureRest.expand-limit = #1"]
          if multi_rests else []),
        "    \\override MetronomeMark.stencil = ##f",
        f"    \\override SpacingSpanner.spacing-increment = #{4.8 * style.spacing_linear:.3f}",
        "  }",
        "  \\context { \\Staff",
        "    \\override VerticalAxisGroup.staff-staff-spacing.basic-distance = "
        f"#{4 + style.spacing_staff / 2:.3f}",
        "  }",
        "}",
    ])


def default_style(width_px: int = 1960, staff_space_px: float = 17.0) -> PageStyle:
    """A DeepScoresV2-like page (1960 px wide, 17 px staff space) at LilyPond's spacing."""
    return PageStyle(font=FONT, width_px=width_px, height_px=round(width_px * A4_ASPECT),
                     staff_space_px=staff_space_px, spacing_linear=0.25,
                     spacing_non_linear=0.6, spacing_staff=10, spacing_system=8)


def with_prelude(ly: str, style: PageStyle) -> str:
    """The input with `PRELUDE` and the style inserted after its `\\version` line (with the
    settings of multi-measure rests where it has one)."""
    multi_rests = re.search(r"\bR\s*[\d.]+\s*\*\s*\d", ly) is not None
    head = PRELUDE + "\n" + style_block(style, multi_rests=multi_rests) + "\n"
    match = re.search(r'\\version\s+"[^"]*"[^\n]*\n', ly)
    if match is None:
        return f'\\version "{_LY_VERSION}"\n' + head + ly
    return ly[:match.end()] + head + ly[match.end():]


# LilyPond 2.25 now and then dies of a signal (SIGSEGV, SIGFPE) on input it draws on another
# try: one piece of the default corpus in about four runs. Killed by a signal, it is run again
# (up to this many times), so that a corpus does not depend on the crashes of the day.
_CRASH_RETRIES = 3


def render_svg(ly: str, *, timeout_s: float = 300.0) -> list[str]:
    """Runs LilyPond's SVG backend on complete input text (again where a signal killed it).

    Args:
      ly: LilyPond input (with `PRELUDE` where boxes are wanted).
      timeout_s: LilyPond is killed after this long.

    Returns:
      one SVG string per page.

    Raises:
      EngraveError: LilyPond failed or wrote no page (with the end of its log).
    """
    with tempfile.TemporaryDirectory(prefix="dwd-lily-") as tmp:
        with open(os.path.join(tmp, "score.ly"), "w") as f:
            f.write(ly)
        for _ in range(1 + _CRASH_RETRIES):
            try:
                run = subprocess.run(
                    [executable(), "-s", "-dbackend=svg", "-dno-point-and-click", "-o", "page",
                     "score.ly"], cwd=tmp, capture_output=True, text=True, timeout=timeout_s)
            except subprocess.TimeoutExpired:
                raise EngraveError(f"LilyPond took over {timeout_s:g} s") from None
            if run.returncode >= 0:
                break
        names = sorted((n for n in os.listdir(tmp) if re.fullmatch(r"page(-\d+)?\.svg", n)),
                       key=lambda n: int(n[5:-4] or 0))
        if run.returncode != 0 or not names:
            raise EngraveError(f"LilyPond failed (exit {run.returncode}): {run.stderr[-800:]}")
        pages = []
        for name in names:
            with open(os.path.join(tmp, name)) as f:
                pages.append(f.read())
        return pages


# --- SVG -> symbols ------------------------------------------------------------------------

@dataclasses.dataclass
class _Piece:
    """Ink drawn inside one grob group: one glyph (glyph name) or one other shape."""

    glyph: str  # feta glyph name, "" for lines, rects, polygons, paths and text
    tag: str  # the SVG element ("path", "rect", "line", "polygon", "text", ...)
    box: tuple[float, float, float, float]
    text: str = ""  # the character, for text (one piece per character)


@dataclasses.dataclass
class _Grob:
    name: str
    attrs: dict[str, str]
    pieces: list[_Piece] = dataclasses.field(default_factory=list)

    def num(self, key: str, default: float = 0.0) -> float:
        try:
            return float(self.attrs.get(key, default))
        except ValueError:
            return default


@functools.cache
def _local_points(d: str) -> np.ndarray:
    """f64[N, 2] points on a path (curves sampled), cached: glyph outlines repeat."""
    pts = svg_symbols.path_points(d)
    return np.asarray(pts, np.float64).reshape(-1, 2)


def _transformed_bounds(m, pts: np.ndarray) -> tuple[float, float, float, float]:
    a, b, c, d, e, f = m
    x = a * pts[:, 0] + c * pts[:, 1] + e
    y = b * pts[:, 0] + d * pts[:, 1] + f
    return (float(x.min()), float(y.min()), float(x.max()), float(y.max()))


def _shape_box(el: ET.Element, tag: str, m) -> tuple[float, float, float, float] | None:
    """Inked box of one shape under transform `m` (strokes widened with round caps/joins)."""
    if tag == "path":
        pts = _local_points(el.get("d", ""))
    elif tag == "line":
        pts = np.array([[float(el.get("x1", 0)), float(el.get("y1", 0))],
                        [float(el.get("x2", 0)), float(el.get("y2", 0))]])
    elif tag in ("polygon", "polyline"):
        pts = np.asarray(svg_geometry.parse_numbers(el.get("points")), np.float64).reshape(-1, 2)
    elif tag == "rect":
        x, y = float(el.get("x", 0)), float(el.get("y", 0))
        pts = np.array([[x, y], [x + float(el.get("width", 0)), y + float(el.get("height", 0))]])
    elif tag in ("circle", "ellipse"):
        cx, cy = float(el.get("cx", 0)), float(el.get("cy", 0))
        rx, ry = float(el.get("rx", el.get("r", 0))), float(el.get("ry", el.get("r", 0)))
        pts = np.array([[cx - rx, cy - ry], [cx + rx, cy + ry]])
    else:
        return None
    if not len(pts):
        return None
    x0, y0, x1, y1 = _transformed_bounds(m, pts)
    if el.get("stroke") not in (None, "none"):
        half = float(el.get("stroke-width", 1)) / 2 * math.sqrt(abs(m[0] * m[3] - m[1] * m[2]))
        x0, y0, x1, y1 = x0 - half, y0 - half, x1 + half, y1 + half
    return (x0, y0, x1, y1)


def _text_boxes(el: ET.Element, m) -> list[tuple[str, tuple[float, float, float, float]]]:
    """Each character of a LilyPond `<text>` with its box as `raster` draws it (one run,
    anchored at its start): a tuplet number of two digits is two symbols."""
    text = "".join(el.itertext()).strip("\n")
    size = float(el.get("font-size", 0))
    if not text.strip() or size <= 0:
        return []
    boxes = raster.char_boxes(text, size, italic=el.get("font-style") == "italic",
                              bold=el.get("font-weight") == "bold")
    ox, oy = float(el.get("x", 0)), float(el.get("y", 0))
    return [(ch, _transformed_bounds(m, np.array([[ox + x0, oy + y0], [ox + x1, oy + y1],
                                                  [ox + x0, oy + y1], [ox + x1, oy + y0]])))
            for ch, (x0, y0, x1, y1) in zip(text, boxes, strict=True) if not ch.isspace()]


def _collect(el: ET.Element, m, grob: _Grob | None, glyph: str, grobs: list[_Grob],
             glyph_piece: list) -> None:
    """Walks the page SVG, giving each grob group its pieces of ink."""
    tag = el.tag.removeprefix(_SVG)
    if tag in ("style", "defs", "title", "desc"):
        return
    if el.get("transform"):
        m = svg_geometry.compose(m, svg_geometry.parse_transform(el.get("transform")))
    if tag in ("g", "a", "svg"):
        if el.get("class"):
            grob = _Grob(el.get("class"), dict(el.attrib))
            grobs.append(grob)
        if el.get("data-glyph") is not None and grob is not None:
            # One piece per glyph, whatever number of shapes draw it.
            empty = (math.inf, math.inf, -math.inf, -math.inf)
            piece = _Piece(el.get("data-glyph"), "glyph", empty)
            glyph_piece = [piece]
            for child in el:
                _collect(child, m, grob, el.get("data-glyph"), grobs, glyph_piece)
            if piece.box[0] <= piece.box[2]:
                grob.pieces.append(piece)
            return
        for child in el:
            _collect(child, m, grob, glyph, grobs, glyph_piece)
        return
    if grob is None:
        return  # page furniture: titles, headers
    if tag == "text":
        found = _text_boxes(el, m)
    else:
        box = _shape_box(el, tag, m)
        found = [("", box)] if box is not None else []
    for text, box in found:
        if glyph:
            glyph_piece[0].box = _union([glyph_piece[0].box, box])
        else:
            grob.pieces.append(_Piece("", tag, box, text))


def _union(boxes) -> tuple[float, float, float, float] | None:
    boxes = list(boxes)
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


def _digit(glyph: str) -> int | None:
    """0..9 of a feta digit glyph (`three`, `fattened.three`, `four.alt`, ...), else None."""
    base = glyph.removeprefix("fattened.").removeprefix("fixedwidth.").removesuffix(".alt")
    return _DIGITS.get(base)


def _notehead(grob: _Grob, piece: _Piece) -> tuple[str, str] | None:
    family = _NOTEHEADS.get(piece.glyph)
    if family is None:
        return None
    pos = round(grob.num("data-pos"))
    name = family + ("OnLine" if pos % 2 == 0 else "InSpace")
    if grob.num("data-size") <= _SMALL_FONT_SIZE:
        name += "Small"
    log = round(grob.num("data-log", 2))
    fields = []
    if "data-when" in grob.attrs:
        fields.append(f"onset:{4 * grob.num('data-when'):g}")
    fields.append(f"rel_position:{pos}")
    if log >= 0:
        fields.append(f"duration:{2 ** log}")
    return name, "".join(f + ";" for f in fields)


def _glyph_class(grob: _Grob, glyph: str) -> str | None:
    """Class of one glyph drawn by `grob` (None: not a DeepScoresV2 class)."""
    name = grob.name
    small = grob.num("data-size") <= _SMALL_FONT_SIZE
    if glyph in _ANY_GROB:
        return _ANY_GROB[glyph]
    if "fermata" in glyph and glyph.startswith("scripts."):
        return "fermataAbove" if glyph.startswith("scripts.u") else "fermataBelow"
    if name == "Rest" or (name == "MultiMeasureRest" and glyph.startswith("rests.")):
        return _RESTS.get(glyph.removeprefix("rests."))
    if name == "Flag" and glyph.startswith("flags."):
        value = _FLAG_VALUES.get(glyph[len("flags.u"):])
        if value is None or glyph[6] not in "ud":
            return None  # grace slashes, stacked-flag styles
        cls = f"flag{value}{'Up' if glyph[6] == 'u' else 'Down'}"
        return cls + "Small" if small and cls in glyphs.HAS_SMALL else cls
    if glyph in _ACCIDENTALS:
        note_class, key_class = _ACCIDENTALS[glyph]
        if name in ("KeySignature", "KeyCancellation"):
            return key_class
        if name.startswith("Accidental"):
            return note_class + "Small" if small and note_class in glyphs.HAS_SMALL \
                else note_class
        return None
    if name == "Clef" and glyph.startswith("clefs."):
        base = glyph.removeprefix("clefs.").removesuffix("_change")
        if base in ("C", "varC"):
            return "clefCTenor" if round(grob.num("data-pos")) == 2 else "clefCAlto"
        return _CLEFS.get(base)
    if name == "TimeSignature":
        if glyph == "timesig.C44":
            return "timeSigCommon"
        if glyph == "timesig.C22":
            return "timeSigCutCommon"
        digit = _digit(glyph)
        return None if digit is None else f"timeSig{digit}"
    if name == "DynamicText":
        return _LETTERS.get(glyph)
    if name == "Fingering":
        digit = _digit(glyph)
        return f"fingering{digit}" if digit is not None and digit <= 5 else None
    if name == "MultiMeasureRestNumber":
        return "restHNr" if _digit(glyph) is not None else None
    if name == "Dots" and glyph == "dots.dot":
        return "augmentationDot"
    if name == "BarLine" and glyph == "dots.dot":
        return "repeatDot"
    if name == "Script":
        if glyph in _SCRIPTS:
            return _SCRIPTS[glyph]
        if glyph in _DIRECTED_SCRIPTS:
            return _DIRECTED_SCRIPTS[glyph] + ("Below" if grob.num("data-dir") < 0 else "Above")
        return None
    if name == "SystemStartBrace" and glyph.startswith("brace"):
        return "brace"
    if name == "TrillSpanner" and glyph == "scripts.trill":
        return "ornamentTrill"
    return None


def _grob_symbols(grob: _Grob) -> list[tuple[str, tuple[float, ...], str]]:
    """(class, box, comments) of the DeepScoresV2 symbols one grob drew."""
    name, pieces = grob.name, grob.pieces
    if not pieces:
        return []
    if name in _UNIONS:
        shapes = [p.box for p in pieces if name != "OttavaBracket" or p.tag != "text"]
        box = _union(shapes)
        return [(_UNIONS[name], box, "")] if box else []
    if name == "Hairpin":
        grow = "dynamicCrescendoHairpin" if grob.num("data-grow") > 0 \
            else "dynamicDiminuendoHairpin"
        return [(grow, _union(p.box for p in pieces), "")]
    if name in ("Stem", "LedgerLineSpanner", "Beam"):
        cls = {"Stem": "stem", "LedgerLineSpanner": "ledgerLine", "Beam": "beam"}[name]
        return [(cls, p.box, "") for p in pieces if not p.glyph]
    if name == "StemTremolo":
        count = sum(1 for p in pieces if p.tag == "polygon")
        return [(f"tremolo{count}", _union(p.box for p in pieces), "")] if 1 <= count <= 5 \
            else []
    if name == "MultiMeasureRest" and not any(p.glyph for p in pieces):
        return [("restHBar", _union(p.box for p in pieces), "")]
    if name in ("TupletNumber", "ClefModifier"):
        text = grob.attrs.get("data-text", "").strip()
        box = _union(p.box for p in pieces)
        if name == "TupletNumber" and text.isdigit() and "0" not in text:
            # One box per digit (DeepScoresV2's tuplet1..9), "11" as two ones.
            return [(f"tuplet{p.text}", p.box, "") for p in pieces if p.text.isdigit()]
        if name == "ClefModifier" and text in ("8", "15"):
            return [(f"clef{text}", box, "")]
        return []
    out = []
    for p in pieces:
        if not p.glyph:
            continue
        if name == "NoteHead":
            found = _notehead(grob, p)
            if found:
                out.append((found[0], p.box, found[1]))
            continue
        cls = _glyph_class(grob, p.glyph)
        if cls:
            out.append((cls, p.box, ""))
    return out


def parse_page(svg: str) -> tuple[list[svg_symbols.Symbol], list[str],
                                  tuple[float, float, float, float]]:
    """Symbols of one LilyPond page SVG made with `PRELUDE`.

    Args:
      svg: one page from `render_svg`.

    Returns:
      (symbols, comments, view_box): boxes in viewBox units (staff spaces), one comments
      string per symbol ("" except noteheads), view_box = (x, y, w, h).
    """
    root = ET.fromstring(svg)
    page, _ = raster.view_box_of(root)
    view_box = tuple(float(v) for v in page.get("viewBox").split())
    grobs: list[_Grob] = []
    _collect(root, svg_geometry.IDENTITY, None, "", grobs, [])
    symbols, comments = [], []
    for grob in grobs:
        for cls, box, comment in _grob_symbols(grob):
            symbols.append(svg_symbols.Symbol(cls, tuple(box)))
            comments.append(comment)
    return symbols, comments, view_box


# --- engraving -----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class EngravedPage:
    """One page: its raster and DeepScoresV2 annotation records.

    Attributes:
      number: the page's number in the piece, from 1.
      image: u8[H, W] grey page, 255 = paper.
      annotations: records {"a_bbox" [x0, y0, x1, y1] px, "o_bbox", "cat_id" (DeepScoresV2
        `deepscores` id as a string), "area", "comments"}, as `piece.symbol_records`.
      svg: the page SVG LilyPond wrote.
    """

    number: int
    image: np.ndarray
    annotations: list[dict]
    svg: str


def engrave_lilypond(source, style: PageStyle | None = None, *, max_pages: int | None = None,
                     timeout_s: float = 300.0) -> list[EngravedPage]:
    """Engraves a score with LilyPond into annotated pages.

    Args:
      source: a music21 stream (Score, Part, ...) or LilyPond input text (a `\\version` line
        optional; `\\paper`/`\\layout` settings of its own are merged after the style's).
      style: page size, staff size and spacing (`style.sample_style` or `default_style`).
      max_pages: annotate and rasterise at most this many pages from the start.
      timeout_s: LilyPond is killed after this long.

    Returns:
      the pages, in order.

    Raises:
      EngraveError: LilyPond failed on the input.
    """
    style = style or default_style()
    ly = source if isinstance(source, str) else ly_from_music21(source)
    svgs = render_svg(with_prelude(ly, style), timeout_s=timeout_s)
    pages = []
    for number, svg in enumerate(svgs[:max_pages], start=1):
        symbols, comments, view_box = parse_page(svg)
        image = raster.rasterize(svg, style.width_px, style.height_px)
        pages.append(EngravedPage(number, image, symbol_records(symbols, view_box, image,
                                                                comments), svg))
    return pages


def engrave_piece(task: PieceTask, *, staff_measures_per_page: int = 60) -> dict:
    """`piece.engrave_piece` with LilyPond: a corpus file -> written pages and shard.

    LilyPond lays out and draws the whole input, so a long piece is first cut to the measures
    of about one page more than wanted: `staff_measures_per_page` measures of a single staff
    fill a page, fewer as the staves multiply (96 measures of a six-voice mass made eight
    LilyPond pages and cost 22 s uncut).

    Args:
      task: the piece (its style's font is not used: pages are named `...-emmentaler--...`).
      staff_measures_per_page: measures a page holds when the score has one staff.

    Returns:
      the shard {"key", "pages": [{"filename", "width", "height", "annotations"}]}.

    Raises:
      EngraveError: music21 cannot read the file, or LilyPond engraves no annotated page.
    """
    import music21

    # Pages are named after the font that drew them (and differ from verovio's pages).
    task = dataclasses.replace(task, style=dataclasses.replace(task.style, font=FONT))
    try:
        score = music21.converter.parse(task.path)
    except Exception as error:  # music21 raises many kinds on files it cannot read
        raise EngraveError(f"music21 could not load {task.path}: {error}") from error
    if isinstance(score, music21.stream.Score) and score.parts:
        keep = math.ceil((task.max_pages + 1) * staff_measures_per_page / len(score.parts))
        if len(score.parts[0].getElementsByClass(music21.stream.Measure)) > keep:
            score = score.measures(0, keep, indicesNotNumbers=True)  # numbers may jump
    pages = [save_page(task, page.number, page.image, page.annotations)
             for page in engrave_lilypond(score, task.style, max_pages=task.max_pages)
             if page.annotations]
    if not pages:
        raise EngraveError(f"LilyPond engraved no annotated page from {task.path}")
    return save_shard(task, pages)

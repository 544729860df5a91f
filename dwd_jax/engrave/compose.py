"""Generated music for what the music21 corpus lacks: seeded, varied, plausible scores.

The corpus is mostly chorales, string quartets and masses: few accents or tenuto marks, few
dynamics and hairpins, few tuplets, time signatures of a handful of digits, no tenor or octave
clefs, no grace notes, few piano systems with braces. `compose(seed)` writes a score that has
them, in the proportions a real score might: a piano piece (two staves joined by a brace), a
solo line, or a small ensemble, with a time signature drawn digit first (so that every digit
is as common as any other), a key of up to seven sharps or flats, both changing now and then
within the piece (one signature per piece would leave its digits the rarest classes), and
measures filled with notes, chords, rests and tuplets whose pitches walk stepwise within the
clef's range, marked with articulations (a share placed below the staff whatever the stem),
ornaments, upright and inverted fermatas, bowings, dynamics, hairpins, slurs, ties, repeats,
double sharps and flats, and grace notes (a share of them chromatic, so that they carry small
accidentals). How often each is drawn is set so that a few hundred pages hold at least a few
hundred of each symbol (`benchmarks/corpus_counts.py` counts them): the rare symbols are
drawn far more often than in real music, the common ones come from the corpus's pieces.

`compose(seed, every_class=True)` writes, besides, the symbols of the DeepScoresV2 classes
that the rates above leave out (`EVERY_CLASS`): fingerings, tremolos, arpeggios, caesuras,
piano pedalling, segno and coda marks, ottava brackets, multi-measure rests, percussion clefs
and clefs two octaves down, 128th notes and rests, grace notes of every value (for every small
note head) and tuplets of every digit, with the rarer symbols above drawn more often still so
that they keep 200 training objects among the new ones. Such pages are much busier than real
music (`configs/every_class.py` says what training on them costs).

The same seed gives the same score; `write(seed, path)` saves it as MusicXML, which both
engravers read.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
from music21 import (
    articulations,
    bar,
    clef,
    dynamics,
    expressions,
    instrument,
    key,
    layout,
    meter,
    note,
    repeat,
    spanner,
    stream,
    tie,
)
from music21 import chord as chord_lib
from music21 import duration as duration_lib
from music21 import pitch as pitch_lib
from music21.musicxml.m21ToXml import GeneralObjectExporter

# Raised whenever a seed's score changes, so that a corpus holding older generated music is
# refused (the engraving settings record it) instead of mixed with the new. Scores composed
# with `every_class` are told apart by the settings' `every_class_share`.
VERSION = 3
# Every digit 0-9 occurs; "c" and "cut" are common and alla breve time.
TIME_SIGNATURES = (
    "2/4", "3/4", "4/4", "c", "cut", "2/2", "3/8", "6/8", "9/8", "12/8", "5/4", "7/8",
    "5/8", "3/2", "6/4", "10/8", "4/8", "7/4", "9/4", "11/8", "4/2",
)
SYMBOL_TIMES = ("c", "cut")  # Signatures without digits, drawn with this share:
SYMBOL_TIME_SHARE = 0.3
KEY_CHANGE = 0.16  # Chance per measure (after the first) of a new key (cancelling the old).
# Chance per measure of an end repeat on its right, and of a start repeat on its left.
END_REPEAT, START_REPEAT = 0.06, 0.04
# Share of articulations placed below the staff (engravers otherwise put most above).
BELOW_SHARE = 0.35


def _two_octaves_down(clef_class):
    """A clef class's clef sounding two octaves lower (the 15 below it)."""
    def make():
        made = clef_class()
        made.octaveChange = -2
        return made
    return make


# (clef, lowest MIDI pitch, highest) for a staff's line; a percussion staff's notes are
# placed as a treble staff's.
CLEFS = {
    "treble": (clef.TrebleClef, 60, 84),
    "bass": (clef.BassClef, 40, 64),
    "alto": (clef.AltoClef, 50, 74),
    "tenor": (clef.TenorClef, 47, 71),
    "treble8vb": (clef.Treble8vbClef, 48, 72),
    "bass8vb": (clef.Bass8vbClef, 28, 52),
    "treble15mb": (_two_octaves_down(clef.TrebleClef), 36, 60),
    "bass15mb": (_two_octaves_down(clef.BassClef), 16, 40),
    "percussion": (clef.PercussionClef, 60, 79),
}
# Chance per note of an articulation (one of these), of an ornament, of a fermata (and the
# share of fermatas inverted: the corpus's are mostly upright).
ARTICULATIONS = (
    articulations.Accent, articulations.Tenuto, articulations.Staccato,
    articulations.StrongAccent, articulations.Staccatissimo, articulations.UpBow,
    articulations.DownBow,
)
ARTICULATION_RATE = 0.26
ORNAMENTS = (expressions.Trill, expressions.Mordent, expressions.Turn, expressions.InvertedTurn)
ORNAMENT_RATE = 0.075
FERMATA_RATE, INVERTED_FERMATA_SHARE = 0.025, 0.7
CHROMATIC_GRACE_SHARE = 0.8  # Share of grace notes a chromatic neighbour (with an accidental).
# Chance per note of a dynamic, drawn with these weights: those with the letters r, z, s and
# m are weighted up (f and p come with the corpus's pieces).
DYNAMIC_RATE = 0.1
DYNAMICS = {"ppp": 0.04, "pp": 0.06, "p": 0.08, "mp": 0.1, "mf": 0.1, "f": 0.08, "ff": 0.06,
            "fff": 0.03, "sf": 0.08, "sfz": 0.1, "fp": 0.05, "rfz": 0.17, "sfp": 0.05}
FLAG_UP_SHARE = 0.5  # Share of flagged notes (see `Rates.flagged`) with the stem up.
# Tuplet number -> (the notes it stands for, their value in quarter lengths).
TUPLETS = {2: (3, 0.5), 3: (2, 0.5), 4: (3, 0.5), 5: (4, 0.25), 6: (4, 0.25), 7: (4, 0.25),
           8: (6, 0.25), 9: (8, 0.125), 11: (8, 0.125), 12: (8, 0.125)}


@dataclasses.dataclass(frozen=True)
class Rates:
    """How often a score holds what; `COMMON` and `EVERY_CLASS` are the two in use.

    Attributes:
      layouts: chances of a piano piece, a solo line and an ensemble.
      clefs: clefs of a solo or ensemble staff, with their weights (C clefs are rare in the
        corpus).
      clef_change: chance per measure (after the first) of a clef change, to one of
        `changed_clefs`.
      changed_clefs: see `clef_change`.
      time_change: chance per measure (after the first) of a new time signature.
      digits: a signature's digit is drawn with these weights, then a signature that holds it
        (the corpus's pieces write 2, 4 and 8 by the thousand; 0, 5 and 6 are in fewest
        signatures, so weighted most).
      values, weights: note values in quarter lengths, with their weights among those that
        fit what is left of the measure (a breve fits 4/2 and 9/4 only).
      rest: chance of a rest instead of a note.
      flagged: chance that a note of a 16th or shorter stands between two rests of its own
        value, where nothing beams it: its flag is drawn (beamed runs leave flags the rarest
        classes); `FLAG_UP_SHARE` of them with the stem up whatever the pitch (engravers put
        most of the clef's range down).
      tuplet: chance per beat of a tuplet.
      tuplets, tuplet_weights: its number drawn from `tuplets` (keys of `TUPLETS`) with
        these weights, or uniformly where None.
      double_accidental: chance per single note of a double sharp or flat spelling (each).
      grace: chance per note of a grace note before it.
      every_class: also write the marks of `EVERY_CLASS` (the module docstring).
    """

    layouts: tuple[float, float, float]
    clefs: dict[str, float]
    clef_change: float
    changed_clefs: tuple[str, ...]
    time_change: float
    digits: dict[str, float]
    values: tuple[float, ...]
    weights: tuple[float, ...]
    rest: float
    flagged: float
    tuplet: float
    tuplets: tuple[int, ...]
    tuplet_weights: tuple[float, ...] | None
    double_accidental: float
    grace: float
    every_class: bool = False


COMMON = Rates(
    layouts=(0.5, 0.25, 0.25),
    clefs={"treble": 0.1, "bass": 0.15, "alto": 0.35, "tenor": 0.2, "treble8vb": 0.1,
           "bass8vb": 0.1},
    clef_change=0.12,
    changed_clefs=("alto", "tenor", "treble8vb", "bass8vb"),
    time_change=0.65,
    digits={"0": 0.14, "1": 0.05, "2": 0.05, "3": 0.14, "4": 0.03, "5": 0.21, "6": 0.18,
            "7": 0.16, "8": 0.03, "9": 0.17},
    values=(8.0, 4.0, 3.0, 2.0, 1.5, 1.0, 0.75, 0.5, 0.25, 0.125, 0.0625),
    weights=(1.0, 0.03, 0.03, 0.1, 0.07, 0.27, 0.05, 0.25, 0.12, 0.07, 0.05),
    rest=0.15,
    flagged=0.5,
    tuplet=0.12,
    tuplets=(3, 5, 6, 7),
    tuplet_weights=None,
    double_accidental=0.07,
    grace=0.24,
)
# Every digit 1-9 is a tuplet number (11 and 12 bring the 1); those over a dotted beat fit
# fewer measures, so weigh more. The rarer symbols of `COMMON` are drawn more often, so that
# they keep 200 training objects a class among the new marks.
EVERY_CLASS = Rates(
    layouts=(0.4, 0.3, 0.3),
    clefs={"treble": 0.04, "bass": 0.05, "alto": 0.18, "tenor": 0.2, "treble8vb": 0.03,
           "bass8vb": 0.03, "treble15mb": 0.06, "bass15mb": 0.06, "percussion": 0.35},
    clef_change=0.16,
    changed_clefs=("alto", "tenor", "treble8vb", "bass8vb", "treble15mb", "bass15mb"),
    time_change=0.9,
    digits={"0": 0.16, "1": 0.04, "2": 0.03, "3": 0.17, "4": 0.02, "5": 0.17, "6": 0.2,
            "7": 0.17, "8": 0.02, "9": 0.19},
    values=(8.0, 4.0, 3.0, 2.0, 1.5, 1.0, 0.75, 0.5, 0.25, 0.125, 0.0625, 0.03125),
    weights=(1.0, 0.03, 0.03, 0.1, 0.07, 0.27, 0.05, 0.25, 0.14, 0.1, 0.08, 0.07),
    rest=0.2,
    flagged=0.9,
    tuplet=0.42,
    tuplets=(2, 3, 4, 5, 6, 7, 8, 9, 11, 12),
    tuplet_weights=(1.2, 1.2, 1.6, 1.6, 1.5, 1.5, 1.6, 1.4, 0.5, 0.5),
    double_accidental=0.12,
    grace=0.4,
    every_class=True,
)
# The marks only `EVERY_CLASS` writes. A grace note's value, with these weights: each value's
# small head is a DeepScoresV2 class (engravers draw grace notes at cue size).
GRACE_TYPES = {"eighth": 0.25, "half": 0.25, "whole": 0.25, "breve": 0.25}
# Chance per note of a fingering (a digit 0-5), of a caesura after it; per note of an eighth
# or longer, of a tremolo (one to five strokes); per chord, of an arpeggio; per note of a
# piano's lower staff, of a pedal held over the next few notes.
FINGERING_RATE, CAESURA_RATE, TREMOLO_RATE, ARPEGGIO_RATE, PEDAL_RATE = (
    0.14, 0.03, 0.5, 0.3, 0.15)
# Chance per measure (after the first) of a segno, of a coda mark (both over the top staff),
# and of an ottava bracket over the top staff's notes of the measure.
SEGNO_RATE, CODA_RATE, OTTAVA_RATE = 0.35, 0.45, 0.6
# Chance per measure (not the first, nor near the end) of a multi-measure rest in every part, of
# MULTI_REST_LENGTHS measures (drawn uniformly).
MULTI_REST_RATE, MULTI_REST_LENGTHS = 0.4, (2, 3, 4, 5, 6, 7, 8, 9, 12, 16)
_MAJOR = (0, 2, 4, 5, 7, 9, 11)


def compose(seed: int, *, every_class: bool = False,
            measures: tuple[int, int] = (16, 28)) -> stream.Score:
    """A generated score (see the module docstring), with `EVERY_CLASS`'s rates and marks if
    `every_class`, else `COMMON`'s; `measures` is the range of its length."""
    rates = EVERY_CLASS if every_class else COMMON
    rng = np.random.default_rng(seed)
    layout_kind = rng.choice(["piano", "solo", "ensemble"], p=list(rates.layouts))
    if layout_kind == "piano":
        clefs = [("treble", "bass"), ("treble", "treble"), ("bass", "bass")][rng.integers(3)]
    else:
        names, weights = zip(*rates.clefs.items(), strict=True)
        size = 1 if layout_kind == "solo" else int(rng.integers(2, 4))
        clefs = tuple(str(c) for c in rng.choice(names, size=size,
                                                 p=np.asarray(weights) / sum(weights)))
    count = int(rng.integers(*measures))
    plan = _plan(rng, count, rates)
    score = stream.Score()
    parts = []
    for i, clef_name in enumerate(clefs):
        part = stream.PartStaff() if layout_kind == "piano" else stream.Part()
        part.id = f"P{i + 1}"
        parts.append(part)
        notes = _fill(part, rng, clef_name, plan, rates)
        if rates.every_class and layout_kind == "piano" and i == len(clefs) - 1:
            _pedal(part, notes, rng)
        score.insert(0, part)
    if rates.every_class:
        _mark_top(parts[0], rng)
    if len(parts) > 1:
        # A piano's staves are braced; an ensemble's bracketed, or braced as a keyboard's.
        braced = layout_kind == "piano" or rng.random() < 0.6
        symbol = "brace" if braced else "bracket"
        score.insert(0, layout.StaffGroup(parts, symbol=symbol, barTogether=True))
    return score


def write(seed: int, path: str, *, every_class: bool = False) -> str:
    """`compose(seed, every_class=every_class)` written to `path` as MusicXML; returns `path`.

    One seed writes the same bytes on any day: the parts are named P1, P2, ... (music21 names
    a part without an instrument by a random hash) and no encoding date is written.
    """
    score = compose(seed, every_class=every_class)
    for i, part in enumerate(score.parts):
        named = instrument.Instrument()
        named.partId, named.instrumentId = f"P{i + 1}", f"P{i + 1}-I1"
        part.insert(0, named)
    data = GeneralObjectExporter(score).parse()
    with open(path, "wb") as f:
        f.write(re.sub(rb"\s*<encoding-date>[^<]*</encoding-date>", b"", data))
    return path


def time_signature(rng, rates: Rates = COMMON) -> str:
    """A time signature: common or alla breve time with `SYMBOL_TIME_SHARE`, otherwise a
    digit drawn with `rates.digits` and then one of `TIME_SIGNATURES` that holds it."""
    if rng.random() < SYMBOL_TIME_SHARE:
        return str(rng.choice(SYMBOL_TIMES))
    digits, weights = zip(*rates.digits.items(), strict=True)
    digit = str(rng.choice(digits, p=np.asarray(weights) / sum(weights)))
    return str(rng.choice([t for t in TIME_SIGNATURES if digit in t]))


def _plan(rng, count: int, rates: Rates) -> list[tuple[str | None, int | None, int]]:
    """Per measure, the time signature and the key (sharps) it starts, None where they carry
    on (both in the first measure, and changes now and then), and the number of the
    multi-measure rest it belongs to (0: none; a rest's measures change neither; only with
    `rates.every_class`); every part follows one plan."""
    time, sharps = time_signature(rng, rates), int(rng.integers(-7, 8))
    plan = [(time, sharps, 0)]
    rests = 0
    while len(plan) < count:
        # A multi-measure rest only where a measure is one (dotted) value long: a 5/4 bar's
        # rest is two rests, not one that the engravers can join across measures.
        if (rates.every_class and len(plan) < count - 2
                and meter.TimeSignature(time).barDuration.type != "complex"
                and rng.random() < MULTI_REST_RATE):
            rests += 1
            length = int(rng.choice(MULTI_REST_LENGTHS))
            plan.extend([(None, None, rests)] * length)
            continue
        new_time = time_signature(rng, rates) if rng.random() < rates.time_change else None
        new_time = None if new_time == time else new_time
        new_sharps = None
        if rng.random() < KEY_CHANGE:
            new_sharps = int(rng.choice([k for k in range(-7, 8) if k != sharps]))
        time = new_time or time
        sharps = sharps if new_sharps is None else new_sharps
        plan.append((new_time, new_sharps, 0))
    return plan


def _fill(part, rng, clef_name: str, plan: list[tuple[str | None, int | None, int]],
          rates: Rates) -> list:
    """Writes the part's measures; returns its notes and chords in order."""
    clef_class, low, high = CLEFS[clef_name]
    pitch = int(rng.integers(low + 4, high - 4))
    notes = []
    rests: dict[int, list] = {}  # multi-measure rest number -> its measures' rests
    count = len(plan)
    for number, (time, new_sharps, rest_run) in enumerate(plan, start=1):
        measure = stream.Measure(number=number)
        if number == 1:
            measure.append(clef_class())
        elif rng.random() < rates.clef_change:
            changed = [c for c in rates.changed_clefs if c != clef_name]
            measure.append(CLEFS[str(rng.choice(changed))][0]())
        if number > 1 and rng.random() < START_REPEAT:
            measure.leftBarline = bar.Repeat(direction="start")
        if new_sharps is not None:
            sharps = new_sharps
            tonic = (sharps * 7) % 12
            scale = {(tonic + s) % 12 for s in _MAJOR}
            measure.append(key.KeySignature(sharps))
        if time is not None:
            signature = meter.TimeSignature(time)
            bar_length = signature.barDuration.quarterLength
            measure.append(signature)
        if rest_run:
            rest = note.Rest(quarterLength=bar_length)
            rest.fullMeasure = True
            measure.append(rest)
            rests.setdefault(rest_run, []).append(rest)
            part.append(measure)
            continue
        filled = 0.0
        while filled < bar_length - 1e-9:
            left = bar_length - filled
            # COMMON's tuplets all span one beat: one is drawn only where a beat is left.
            if rng.random() < rates.tuplet and (rates.every_class or left >= 1.0):
                actual = _tuplet_number(rng, rates)
                normal, base = TUPLETS[actual]
                if left >= normal * base - 1e-9:
                    group = _tuplet(rng, actual, pitch, scale, low, high, sharps)
                    measure.append(group)
                    notes.extend(group)
                    filled += normal * base
                    continue
            value = _value(rng, left, rates)
            if rng.random() < rates.rest:
                item = note.Rest(quarterLength=value)
            else:
                pitch = _step(rng, pitch, scale, low, high)
                item = _note(rng, pitch, value, sharps, rates)
                notes.append(item)
                if value <= 0.25 and left >= 3 * value - 1e-9 and rng.random() < rates.flagged:
                    measure.append(note.Rest(quarterLength=value))
                    if rng.random() < FLAG_UP_SHARE:
                        item.stemDirection = "up"
                    measure.append(item)
                    item = note.Rest(quarterLength=value)
                    filled += 2 * value
            measure.append(item)
            filled += value
        if number == count:
            measure.rightBarline = bar.Barline("final")
        elif rng.random() < END_REPEAT:
            measure.rightBarline = bar.Repeat(direction="end")
        elif rng.random() < 0.05:
            measure.rightBarline = bar.Barline("double")
        part.append(measure)
    for run in rests.values():
        # An H-bar with its count (music21 asks for church-rest symbols by default).
        part.insert(0, spanner.MultiMeasureRest(run, useSymbols=False))
    _mark(part, notes, rng, rates)
    return notes


def _value(rng, left: float, rates: Rates) -> float:
    fits = [(v, w) for v, w in zip(rates.values, rates.weights, strict=True) if v <= left + 1e-9]
    values, weights = zip(*fits, strict=True)
    weights = np.asarray(weights) / sum(weights)
    return float(rng.choice(values, p=weights))


def _tuplet_number(rng, rates: Rates) -> int:
    if rates.tuplet_weights is None:
        return int(rng.choice(rates.tuplets))
    weights = np.asarray(rates.tuplet_weights) / sum(rates.tuplet_weights)
    return int(rng.choice(rates.tuplets, p=weights))
def _step(rng, pitch: int, scale: set[int], low: int, high: int) -> int:
    """A step or small leap from `pitch`, kept in range, landing on the scale mostly."""
    move = int(rng.choice([-4, -3, -2, -1, 1, 2, 3, 4, 0, 7, -7]))
    pitch = int(np.clip(pitch + move, low, high))
    if pitch % 12 not in scale and rng.random() < 0.85:
        pitch = pitch + 1 if (pitch + 1) % 12 in scale and pitch + 1 <= high else pitch - 1
    return pitch


def _spelled(midi: int, sharps: int) -> pitch_lib.Pitch:
    """The pitch of a MIDI number spelled with flats in a flat key, sharps otherwise."""
    spelled = pitch_lib.Pitch(midi)
    if sharps < 0 and spelled.accidental is not None and spelled.accidental.name == "sharp":
        spelled = spelled.getEnharmonic()
    return spelled




def _note(rng, pitch: int, value: float, sharps: int, rates: Rates):
    """A note, or a chord of two to four notes above `pitch`, spelled in the key (music21
    shows the accidentals the key does not give when it writes the score); a note now and
    then with a double sharp or flat instead."""
    if rng.random() < 0.18:
        size = int(rng.integers(2, 5))
        above = sorted(int(d) for d in rng.choice([3, 4, 5, 7, 8, 9, 12], size - 1, False))
        midis = [pitch, *(pitch + d for d in above)]
        return chord_lib.Chord([_spelled(m, sharps) for m in midis], quarterLength=value)
    spelled = _spelled(pitch, sharps)
    draw = rng.random()
    if draw < 2 * rates.double_accidental:  # Spelled with a double sharp or flat, if it has one.
        double = spelled.getLowerEnharmonic() if draw < rates.double_accidental else (
            spelled.getHigherEnharmonic())
        if double.accidental is not None and abs(double.accidental.alter) == 2:
            spelled = double
    return note.Note(spelled, quarterLength=value)


def _tuplet(rng, actual: int, pitch: int, scale: set[int], low: int, high: int,
            sharps: int) -> list:
    """`actual` notes in the time of `TUPLETS[actual]`, as a tuplet."""
    normal, base = TUPLETS[actual]
    group = []
    for _ in range(actual):
        pitch = _step(rng, pitch, scale, low, high)
        n = note.Note(_spelled(pitch, sharps))
        n.duration = duration_lib.Duration(base)
        n.duration.appendTuplet(duration_lib.Tuplet(actual, normal, base))
        # Written as meant: music21's MusicXML writer otherwise "completes" a group that a
        # grace note interrupts by splitting the next note into tied tuplet notes.
        n.duration.expressionIsInferred = False
        group.append(n)
    group[0].duration.tuplets[0].type = "start"
    group[-1].duration.tuplets[0].type = "stop"
    return group


def _mark(part, notes: list, rng, rates: Rates) -> None:
    """Articulations, ornaments, dynamics, hairpins, slurs, ties and grace notes; with
    `rates.every_class` fingerings, caesuras, tremolos and arpeggios too."""
    for i, n in enumerate(notes):
        if rng.random() < ARTICULATION_RATE:
            mark = ARTICULATIONS[int(rng.integers(len(ARTICULATIONS)))]()
            if rng.random() < BELOW_SHARE:
                mark.placement = "below"
            n.articulations.append(mark)
        if rates.every_class:
            _mark_every_class(n, rng)
        if rng.random() < ORNAMENT_RATE:
            n.expressions.append(ORNAMENTS[int(rng.integers(len(ORNAMENTS)))]())
        if rng.random() < FERMATA_RATE:
            fermata = expressions.Fermata()
            # MusicXML's type: music21's default is "inverted", below the staff.
            fermata.type = "inverted" if rng.random() < INVERTED_FERMATA_SHARE else "upright"
            n.expressions.append(fermata)
        if rng.random() < DYNAMIC_RATE:
            measure = n.getContextByClass(stream.Measure)
            if measure is not None:
                names, weights = zip(*DYNAMICS.items(), strict=True)
                value = str(rng.choice(names, p=np.asarray(weights) / sum(weights)))
                measure.insert(n.offset, dynamics.Dynamic(value))
        if rng.random() < 0.05 and i + 2 < len(notes):
            span = notes[i : i + int(rng.integers(2, min(7, len(notes) - i) + 1))]
            wedge = dynamics.Crescendo if rng.random() < 0.5 else dynamics.Diminuendo
            part.insert(0, wedge(span))
        if rng.random() < 0.07 and i + 2 < len(notes):
            span = notes[i : i + int(rng.integers(2, min(7, len(notes) - i) + 1))]
            part.insert(0, spanner.Slur(span))
        if (
            rng.random() < 0.05
            and i + 1 < len(notes)
            and isinstance(n, note.Note)
            and isinstance(notes[i + 1], note.Note)
            and notes[i + 1].pitch.midi == n.pitch.midi
        ):
            n.tie = tie.Tie("start")
        if rng.random() < rates.grace and isinstance(n, note.Note):
            measure = n.getContextByClass(stream.Measure)
            if measure is not None:
                # Most of them a chromatic neighbour, spelled with a sharp, flat or natural.
                step = int(rng.choice([-2, -1, 1, 2]))
                value = "eighth"
                if rates.every_class:
                    names, weights = zip(*GRACE_TYPES.items(), strict=True)
                    value = str(rng.choice(names, p=np.asarray(weights) / sum(weights)))
                grace = note.Note(n.pitch.midi + step, type=value)
                if value in ("whole", "breve"):
                    # Written stemless: verovio 6.4 given a stem direction for a whole or
                    # breve grace note among beamed notes lays the whole page out wrongly.
                    grace.stemDirection = "noStem"
                if rng.random() < CHROMATIC_GRACE_SHARE:
                    grace.pitch = n.pitch.transpose(1 if step > 0 else -1)
                    if grace.pitch.accidental is None and rng.random() < 0.5:
                        # B, C, E or F a semitone off, spelled as the sharp or flat it is.
                        spelled = (grace.pitch.getLowerEnharmonic() if step > 0
                                   else grace.pitch.getHigherEnharmonic())
                        if abs(spelled.accidental.alter) == 1:
                            grace.pitch = spelled
                    grace.pitch.accidental = grace.pitch.accidental or "natural"
                measure.insert(n.offset, grace.getGrace())


def _mark_every_class(n, rng) -> None:
    """A fingering, a caesura, a tremolo and an arpeggio, each with its chance."""
    if rng.random() < FINGERING_RATE:
        n.articulations.append(articulations.Fingering(int(rng.integers(6))))
    if rng.random() < CAESURA_RATE:
        n.articulations.append(articulations.Caesura())
    if n.quarterLength >= 0.5 and rng.random() < TREMOLO_RATE:
        tremolo = expressions.Tremolo()
        tremolo.numberOfMarks = int(rng.integers(1, 6))
        n.expressions.append(tremolo)
    if isinstance(n, chord_lib.Chord) and rng.random() < ARPEGGIO_RATE:
        n.expressions.append(expressions.ArpeggioMark())


def _pedal(part, notes: list, rng) -> None:
    """Piano pedalling: pedal held from a note over the next few (spans apart)."""
    i = 0
    while i + 2 < len(notes):
        if rng.random() < PEDAL_RATE:
            end = min(len(notes) - 1, i + int(rng.integers(2, 7)))
            part.insert(0, expressions.PedalMark(notes[i], notes[end]))
            i = end + 1
        else:
            i += 1


def _mark_top(part, rng) -> None:
    """Segno and coda marks and ottava brackets over the top staff's measures."""
    for measure in list(part.getElementsByClass(stream.Measure))[1:]:
        held = list(measure.getElementsByClass((note.Note, chord_lib.Chord)))
        if not held:
            continue  # a multi-measure rest's: one mark would stand for all of its measures
        if rng.random() < SEGNO_RATE:
            measure.insert(0, repeat.Segno())
        if rng.random() < CODA_RATE:
            measure.insert(0, repeat.Coda())
        if len(held) >= 2 and rng.random() < OTTAVA_RATE:
            part.insert(0, spanner.Ottava(held[0], held[-1], type="8va"))

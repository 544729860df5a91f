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
The same seed gives the same score; `write(seed, path)` saves it as MusicXML, which both
engravers read.
"""

from __future__ import annotations

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
    spanner,
    stream,
    tie,
)
from music21 import chord as chord_lib
from music21 import duration as duration_lib
from music21 import pitch as pitch_lib
from music21.musicxml.m21ToXml import GeneralObjectExporter

# Raised whenever a seed's score changes, so that a corpus holding older generated music is
# refused (the engraving settings record it) instead of mixed with the new.
VERSION = 3
# Every digit 0-9 occurs; "c" and "cut" are common and alla breve time.
TIME_SIGNATURES = (
    "2/4", "3/4", "4/4", "c", "cut", "2/2", "3/8", "6/8", "9/8", "12/8", "5/4", "7/8",
    "5/8", "3/2", "6/4", "10/8", "4/8", "7/4", "9/4", "11/8", "4/2",
)
SYMBOL_TIMES = ("c", "cut")  # Signatures without digits, drawn with this share:
SYMBOL_TIME_SHARE = 0.3
# The others: a digit drawn with these weights, then a signature that holds it. The corpus's
# pieces write 2, 4 and 8 by the thousand; 0, 5 and 6 are in fewest signatures, so weighted most.
DIGIT_WEIGHTS = {"0": 0.14, "1": 0.05, "2": 0.05, "3": 0.14, "4": 0.03, "5": 0.21, "6": 0.18,
                 "7": 0.16, "8": 0.03, "9": 0.17}
# Chance per measure (after the first) of a new time signature, and of a new key (whose
# naturals cancel the old one).
TIME_CHANGE = 0.65
KEY_CHANGE = 0.16
# Chance per measure (after the first) of a clef change, to one of CHANGED_CLEFS.
CLEF_CHANGE = 0.12
CHANGED_CLEFS = ("alto", "tenor", "treble8vb", "bass8vb")
# Chance per measure of an end repeat on its right, and of a start repeat on its left.
END_REPEAT, START_REPEAT = 0.06, 0.04
# Share of articulations placed below the staff (engravers otherwise put most above).
BELOW_SHARE = 0.35
# (clef, lowest MIDI pitch, highest) for a staff's line.
CLEFS = {
    "treble": (clef.TrebleClef, 60, 84),
    "bass": (clef.BassClef, 40, 64),
    "alto": (clef.AltoClef, 50, 74),
    "tenor": (clef.TenorClef, 47, 71),
    "treble8vb": (clef.Treble8vbClef, 48, 72),
    "bass8vb": (clef.Bass8vbClef, 28, 52),
}
# Clefs of a solo or ensemble staff, with their weights (C clefs are rare in the corpus).
CLEF_WEIGHTS = {"treble": 0.1, "bass": 0.15, "alto": 0.35, "tenor": 0.2, "treble8vb": 0.1,
                "bass8vb": 0.1}
# Chance per note of an articulation (one of these), of an ornament, of a fermata (and the
# share of fermatas inverted: the corpus's are mostly upright) and of a grace note before it.
ARTICULATIONS = (
    articulations.Accent, articulations.Tenuto, articulations.Staccato,
    articulations.StrongAccent, articulations.Staccatissimo, articulations.UpBow,
    articulations.DownBow,
)
ARTICULATION_RATE = 0.26
ORNAMENTS = (expressions.Trill, expressions.Mordent, expressions.Turn, expressions.InvertedTurn)
ORNAMENT_RATE = 0.075
FERMATA_RATE, INVERTED_FERMATA_SHARE = 0.025, 0.7
GRACE_RATE, CHROMATIC_GRACE_SHARE = 0.24, 0.8
# Chance per note of a dynamic, drawn with these weights: those with the letters r, z, s and
# m are weighted up (f and p come with the corpus's pieces).
DYNAMIC_RATE = 0.1
DYNAMICS = {"ppp": 0.04, "pp": 0.06, "p": 0.08, "mp": 0.1, "mf": 0.1, "f": 0.08, "ff": 0.06,
            "fff": 0.03, "sf": 0.08, "sfz": 0.1, "fp": 0.05, "rfz": 0.17, "sfp": 0.05}
# Note values in quarter lengths, with their weights among those that fit what is left of the
# measure (a breve fits 4/2 and 9/4 only); a rest instead of a note with REST_RATE.
VALUES = (8.0, 4.0, 3.0, 2.0, 1.5, 1.0, 0.75, 0.5, 0.25, 0.125, 0.0625)
WEIGHTS = (1.0, 0.03, 0.03, 0.1, 0.07, 0.27, 0.05, 0.25, 0.12, 0.07, 0.05)
REST_RATE = 0.15
# Chance that a note of a 16th or shorter stands between two rests of its own value, where
# nothing beams it: its flag is drawn (beamed runs leave flags the rarest classes); a share of
# them with the stem up whatever the pitch (engravers put most of the clef's range down).
FLAGGED_RATE, FLAG_UP_SHARE = 0.5, 0.5
# Chance per beat of a tuplet (of TUPLETS' sizes, drawn uniformly).
TUPLET_RATE, TUPLETS = 0.12, (3, 5, 6, 7)
# Chance per single note of a double sharp or flat spelling (each).
DOUBLE_ACCIDENTAL_RATE = 0.07
_MAJOR = (0, 2, 4, 5, 7, 9, 11)


def compose(seed: int, *, measures: tuple[int, int] = (16, 28)) -> stream.Score:
    """A generated score (see the module docstring); `measures` is the range of its length."""
    rng = np.random.default_rng(seed)
    layout_kind = rng.choice(["piano", "solo", "ensemble"], p=[0.5, 0.25, 0.25])
    if layout_kind == "piano":
        clefs = [("treble", "bass"), ("treble", "treble"), ("bass", "bass")][rng.integers(3)]
    else:
        names, weights = zip(*CLEF_WEIGHTS.items(), strict=True)
        size = 1 if layout_kind == "solo" else int(rng.integers(2, 4))
        clefs = tuple(str(c) for c in rng.choice(names, size=size, p=weights))
    count = int(rng.integers(*measures))
    plan = _plan(rng, count)
    score = stream.Score()
    parts = []
    for i, clef_name in enumerate(clefs):
        part = stream.PartStaff() if layout_kind == "piano" else stream.Part()
        part.id = f"P{i + 1}"
        parts.append(part)
        _fill(part, rng, clef_name, plan)
        score.insert(0, part)
    if len(parts) > 1:
        # A piano's staves are braced; an ensemble's bracketed, or braced as a keyboard's.
        braced = layout_kind == "piano" or rng.random() < 0.6
        symbol = "brace" if braced else "bracket"
        score.insert(0, layout.StaffGroup(parts, symbol=symbol, barTogether=True))
    return score


def write(seed: int, path: str) -> str:
    """`compose(seed)` written to `path` as MusicXML; returns `path`.

    One seed writes the same bytes on any day: the parts are named P1, P2, ... (music21 names
    a part without an instrument by a random hash) and no encoding date is written.
    """
    score = compose(seed)
    for i, part in enumerate(score.parts):
        named = instrument.Instrument()
        named.partId, named.instrumentId = f"P{i + 1}", f"P{i + 1}-I1"
        part.insert(0, named)
    data = GeneralObjectExporter(score).parse()
    with open(path, "wb") as f:
        f.write(re.sub(rb"\s*<encoding-date>[^<]*</encoding-date>", b"", data))
    return path


def time_signature(rng) -> str:
    """A time signature: common or alla breve time with `SYMBOL_TIME_SHARE`, otherwise a
    digit drawn with `DIGIT_WEIGHTS` and then one of
    `TIME_SIGNATURES` that holds it."""
    if rng.random() < SYMBOL_TIME_SHARE:
        return str(rng.choice(SYMBOL_TIMES))
    digits, weights = zip(*DIGIT_WEIGHTS.items(), strict=True)
    digit = str(rng.choice(digits, p=np.asarray(weights) / sum(weights)))
    return str(rng.choice([t for t in TIME_SIGNATURES if digit in t]))


def _plan(rng, count: int) -> list[tuple[str | None, int | None]]:
    """Per measure, the time signature and the key (sharps) it starts, None where they carry
    on: both in the first measure, and changes now and then; every part follows one plan."""
    time, sharps = time_signature(rng), int(rng.integers(-7, 8))
    plan = [(time, sharps)]
    for _ in range(1, count):
        new_time = time_signature(rng) if rng.random() < TIME_CHANGE else None
        new_time = None if new_time == time else new_time
        new_sharps = None
        if rng.random() < KEY_CHANGE:
            new_sharps = int(rng.choice([k for k in range(-7, 8) if k != sharps]))
        time = new_time or time
        sharps = sharps if new_sharps is None else new_sharps
        plan.append((new_time, new_sharps))
    return plan


def _fill(part, rng, clef_name: str, plan: list[tuple[str | None, int | None]]) -> None:
    clef_class, low, high = CLEFS[clef_name]
    pitch = int(rng.integers(low + 4, high - 4))
    notes = []
    count = len(plan)
    for number, (time, new_sharps) in enumerate(plan, start=1):
        measure = stream.Measure(number=number)
        if number == 1:
            measure.append(clef_class())
        elif rng.random() < CLEF_CHANGE:
            changed = [c for c in CHANGED_CLEFS if c != clef_name]
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
        filled = 0.0
        while filled < bar_length - 1e-9:
            left = bar_length - filled
            if rng.random() < TUPLET_RATE and left >= 1.0:  # A tuplet over one beat.
                group = _tuplet(rng, pitch, scale, low, high, sharps)
                measure.append(group)
                notes.extend(n for n in group if not n.isRest)
                filled += 1.0
                continue
            value = _value(rng, left)
            if rng.random() < REST_RATE:
                item = note.Rest(quarterLength=value)
            else:
                pitch = _step(rng, pitch, scale, low, high)
                item = _note(rng, pitch, value, sharps)
                notes.append(item)
                if value <= 0.25 and left >= 3 * value - 1e-9 and rng.random() < FLAGGED_RATE:
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
    _mark(part, notes, rng)


def _value(rng, left: float) -> float:
    fits = [(v, w) for v, w in zip(VALUES, WEIGHTS, strict=True) if v <= left + 1e-9]
    values, weights = zip(*fits, strict=True)
    weights = np.asarray(weights) / sum(weights)
    return float(rng.choice(values, p=weights))


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


def _note(rng, pitch: int, value: float, sharps: int):
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
    if draw < 2 * DOUBLE_ACCIDENTAL_RATE:  # Spelled with a double sharp or flat, if it has one.
        double = spelled.getLowerEnharmonic() if draw < DOUBLE_ACCIDENTAL_RATE else (
            spelled.getHigherEnharmonic())
        if double.accidental is not None and abs(double.accidental.alter) == 2:
            spelled = double
    return note.Note(spelled, quarterLength=value)


def _tuplet(rng, pitch: int, scale: set[int], low: int, high: int, sharps: int) -> list:
    """Three, five, six or seven notes in one beat, as a tuplet."""
    actual = int(rng.choice(TUPLETS))
    normal = {3: 2, 5: 4, 6: 4, 7: 4}[actual]
    base = 0.5 if normal == 2 else 0.25
    group = []
    for _ in range(actual):
        pitch = _step(rng, pitch, scale, low, high)
        n = note.Note(_spelled(pitch, sharps))
        n.duration = duration_lib.Duration(base)
        n.duration.appendTuplet(duration_lib.Tuplet(actual, normal, base))
        group.append(n)
    group[0].duration.tuplets[0].type = "start"
    group[-1].duration.tuplets[0].type = "stop"
    return group


def _mark(part, notes: list, rng) -> None:
    """Articulations, ornaments, dynamics, hairpins, slurs, ties and grace notes."""
    for i, n in enumerate(notes):
        if rng.random() < ARTICULATION_RATE:
            mark = ARTICULATIONS[int(rng.integers(len(ARTICULATIONS)))]()
            if rng.random() < BELOW_SHARE:
                mark.placement = "below"
            n.articulations.append(mark)
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
        if rng.random() < GRACE_RATE and isinstance(n, note.Note):
            measure = n.getContextByClass(stream.Measure)
            if measure is not None:
                # Most of them a chromatic neighbour, spelled with a sharp, flat or natural.
                step = int(rng.choice([-2, -1, 1, 2]))
                grace = note.Note(n.pitch.midi + step, type="eighth")
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

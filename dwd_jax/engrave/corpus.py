"""Which music21 corpus pieces are engraved, in which order, and in which split.

Splits are by *work*, not by file: music21 ships one mass as a file per section
(`palestrina/Kyrie_16.krn`, `Gloria_16_i.krn`, ...), one quartet as a file per movement, one
work in two formats (`.krn` and `.mxl`), and overlapping excerpts of one tune book. Pages of
one work in two splits would let the test split measure memory of the training pages.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Mapping

import numpy as np
from music21 import corpus

# Formats verovio imports itself (MusicXML, compressed MusicXML, Humdrum, ABC). music21's
# Roman-numeral analyses (.rntxt) are not scores.
SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn", ".abc")

# The splits of the embedded corpus, in the order their shares are cut from [0, 1).
SPLITS = ("test", "validation", "train")

# Collections whose files are excerpts of one book (overlapping tune ranges, one tune in two
# settings): the whole collection is one work.
_ONE_WORK_COLLECTIONS = ("oneills1850",)
# Works that music21 ships under two names.
_ALIASES = {"schumann_robert-dichterliebe": "schumann_robert-opus48"}
# (collection, pattern): the pattern's first group names the work within the collection.
_WORK_PATTERNS = (
    ("palestrina", re.compile(r"_(\d+)(?:_|$)")),  # Kyrie_16, Gloria_16_i: mass 16.
    ("bach", re.compile(r"(bwv\d+)")),  # bwv248.35-3c: cantata / oratorio 248.
    ("mozart", re.compile(r"(k\d+)")),  # k156-movement2: K. 156.
    ("monteverdi", re.compile(r"(madrigal\.\d+)")),  # madrigal.4.12: the fourth book.
    ("trecento", re.compile(r"(PMFC_\d+(?:_\d+)?)")),  # PMFC_12_6-Gloria-...: PMFC 12, no. 6.
    ("", re.compile(r"(?:opus|op)_?(\d+)", re.IGNORECASE)),  # opus18no1, op1n3, op_16_no_2.
)


def corpus_pieces() -> list[str]:
    """Paths of the music21 bundled corpus files verovio can engrave, sorted."""
    return sorted(str(p) for p in corpus.getPaths() if str(p).lower().endswith(SCORE_SUFFIXES))


def piece_key(path: str) -> str:
    """Stable, file-name-safe name of a piece: its corpus-relative path, '/' -> '-'.

    Files outside music21's corpus (tests, user pieces) are named by their file name. Paths are
    compared resolved, so a corpus reached through a symbolic link (a linked virtual
    environment, macOS's /tmp) is still recognised.
    """
    root = os.path.realpath(os.path.dirname(corpus.__file__))
    resolved = os.path.realpath(path)
    inside = os.path.commonpath([resolved, root]) == root
    rel = os.path.relpath(resolved, root) if inside else os.path.basename(path)
    rel = rel.removeprefix("corpus" + os.sep)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", rel.replace(os.sep, "-"))


def engraving_order(paths: list[str], seed: int) -> list[str]:
    """A seeded shuffle of `paths`: pieces are engraved (and pages taken) in this order."""
    order = np.random.default_rng(seed).permutation(len(paths))
    return [sorted(paths)[i] for i in order]


def work_of(key: str) -> str:
    """The work a piece key belongs to: every file of one work maps to the same name.

    One name for both formats of a file (`.krn`, `.mxl`), for the sections of one Palestrina
    mass, the movements and numbers of one opus (Beethoven's op. 18 no. 1 and no. 5), the
    chorales of one Bach cantata, the movements of one Köchel number, a book of Monteverdi
    madrigals, and a tune book shipped as overlapping excerpts.
    """
    name = key
    for suffix in SCORE_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    collection, _, rest = name.partition("-")
    if not rest:
        return name
    if collection in _ONE_WORK_COLLECTIONS:
        return collection
    for prefix, alias in _ALIASES.items():
        if name.startswith(prefix):
            return alias
    for owner, pattern in _WORK_PATTERNS:
        if owner not in ("", collection):
            continue
        match = pattern.search(rest)
        if match:
            label = match.group(1).lower()
            return f"{collection}-{'opus' + label if owner == '' else label}"
        if owner == "palestrina":
            return "palestrina-unnumbered"  # Agnus.krn, Credo_a.krn, ...: one mass.
    return name


def split_of(key: str, *, seed: int, fractions: Mapping[str, float]) -> str:
    """The split a piece belongs to; a pure function of (work, seed).

    Args:
      key: a `piece_key`.
      seed: the corpus seed.
      fractions: share of works in "test" and "validation"; "train" takes the rest.

    Returns:
      One of `SPLITS`.
    """
    u = zlib.crc32(f"{seed}:{work_of(key)}".encode()) / 2**32
    edge = 0.0
    for split in SPLITS[:-1]:
        edge += fractions.get(split, 0.0)
        if u < edge:
            return split
    return SPLITS[-1]

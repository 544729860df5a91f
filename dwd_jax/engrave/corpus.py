"""Which music21 corpus pieces are engraved, in which order, and in which split."""

from __future__ import annotations

import os
import re
import zlib

import numpy as np
from music21 import corpus

# Formats verovio imports itself (MusicXML, compressed MusicXML, Humdrum, ABC). music21's
# Roman-numeral analyses (.rntxt) are not scores.
SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn", ".abc")


def corpus_pieces() -> list[str]:
    """Paths of the music21 bundled corpus files verovio can engrave, sorted."""
    return sorted(str(p) for p in corpus.getPaths() if str(p).lower().endswith(SCORE_SUFFIXES))


def piece_key(path: str) -> str:
    """Stable, file-name-safe name of a piece: its corpus-relative path, '/' -> '-'.

    Files outside music21's corpus (tests, user pieces) are named by their file name.
    """
    root = os.path.dirname(corpus.__file__)
    inside = os.path.abspath(path).startswith(root)
    rel = os.path.relpath(path, root) if inside else os.path.basename(path)
    rel = rel.removeprefix("corpus" + os.sep)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", rel.replace(os.sep, "-"))


def engraving_order(paths: list[str], seed: int) -> list[str]:
    """A seeded shuffle of `paths`: pieces are engraved (and pages taken) in this order."""
    order = np.random.default_rng(seed).permutation(len(paths))
    return [sorted(paths)[i] for i in order]


def piece_identity(key: str) -> str:
    """The music a piece key names, whatever its file format.

    music21 ships some works in two formats (`beethoven/opus18no1/movement1.krn` and `.mxl`):
    both must land in the same split.
    """
    for suffix in SCORE_SUFFIXES:
        if key.lower().endswith(suffix):
            return key[: -len(suffix)]
    return key


def is_test_piece(key: str, *, seed: int, test_fraction: float) -> bool:
    """Whether a piece belongs to the test split; a pure function of (music, seed).

    Splitting by piece keeps all pages of one piece (in any of its formats) in one split.
    """
    return zlib.crc32(f"{seed}:{piece_identity(key)}".encode()) / 2**32 < test_fraction

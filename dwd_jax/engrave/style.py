"""Per-piece page style: music font, page size, staff size and spacing, drawn from a seed."""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np

from dwd_jax.engrave import glyphs

# verovio lays out with a staff space of 2 * `unit` = 18 of its page units (default unit 9).
_STAFF_SPACE_UNITS = 18.0
A4_ASPECT = 297 / 210


@dataclasses.dataclass(frozen=True)
class PageStyle:
    """How one piece is engraved and rasterised.

    Attributes:
      font: SMuFL music font (one of `glyphs.FONTS`).
      width_px, height_px: raster page size in pixels.
      staff_space_px: distance between staff lines in pixels.
      spacing_linear, spacing_non_linear: verovio horizontal spacing factors.
      spacing_staff, spacing_system: verovio minimal vertical gaps (MEI units).
    """

    font: str
    width_px: int
    height_px: int
    staff_space_px: float
    spacing_linear: float
    spacing_non_linear: float
    spacing_staff: int
    spacing_system: int

    def verovio_options(self) -> dict:
        """verovio toolkit options engraving this style (page units chosen for the staff size)."""
        page_width = round(self.width_px * _STAFF_SPACE_UNITS / self.staff_space_px)
        page_height = round(page_width * self.height_px / self.width_px)
        return {
            "font": self.font,
            "pageWidth": page_width,
            "pageHeight": page_height,
            "spacingLinear": self.spacing_linear,
            "spacingNonLinear": self.spacing_non_linear,
            "spacingStaff": self.spacing_staff,
            "spacingSystem": self.spacing_system,
            "breaks": "auto",
            # A multi-measure rest as an H-bar with its count (DeepScoresV2's restHBar and
            # restHNr), not as church rests (a longa, a class it lacks).
            "multiRestStyle": "block",
            "footer": "none",
            # Text in the music font (metronome marks) is not a DeepScoresV2 class: verovio's
            # embedded WOFF2 font would need brotli to rasterise, so it is left out.
            "smuflTextFont": "none",
        }


def sample_style(piece_key: str, *, seed: int, width_range: tuple[int, int],
                 staff_space_ratio: tuple[float, float]) -> PageStyle:
    """Draws the style of one piece, a pure function of (piece_key, seed).

    Args:
      piece_key: stable name of the piece (its corpus-relative path).
      seed: corpus seed.
      width_range: (min, max) page width in pixels; the height follows A4's aspect.
      staff_space_ratio: (min, max) staff space as a fraction of the page width. DeepScoresV2
        pages sit near 0.0087 (17 px at 1960 px wide, 23 px at 2707 px; DWD_SPEC.md section 8).

    Returns:
      the piece's `PageStyle`.
    """
    rng = np.random.default_rng([seed, zlib.crc32(piece_key.encode())])
    width = int(rng.integers(width_range[0], width_range[1] + 1))
    return PageStyle(
        font=str(rng.choice(glyphs.FONTS)),
        width_px=width,
        height_px=round(width * A4_ASPECT),
        staff_space_px=round(float(width * rng.uniform(*staff_space_ratio)), 3),
        spacing_linear=round(float(rng.uniform(0.15, 0.35)), 3),
        spacing_non_linear=round(float(rng.uniform(0.5, 0.7)), 3),
        spacing_staff=int(rng.integers(8, 17)),
        spacing_system=int(rng.integers(4, 13)),
    )

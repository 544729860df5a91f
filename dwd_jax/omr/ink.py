"""Detections re-measured on the page's own ink, after decoding, in page pixels.

Thin lines (`config.omr.line_classes`): a stem is about 2 px wide on a 2500-px page and a
ledger line 2 px high; IoU 0.5 then needs the thin side's centre within about 0.7 px, a
sixth of the finest output stride (2 at scale 0.5 = 4 page pixels), finer than the centre
offsets place a centre. The page itself holds that precision: a rasteriser's anti-aliasing
makes a pixel's darkness its ink coverage, so a line's cross-profile sums to its thickness
and its edge pixels place its edges, to a fraction of a pixel. In numpy: pages differ in
size, and a jitted version would compile once per page size.

Only the thin side moves; the long side stays as decoded (an error of a few pixels along a
long line costs it little IoU).

Solid symbols (`config.omr.solid_classes`: beams, black note heads, whole, half and
breve rests) are re-measured whole: with every stroke thinner than 0.35 staff spaces opened
away (staff and ledger lines, stems, slurs are 0.1-0.22, a beam 0.5), such a symbol is one
connected ink component, and its box that component's. A beam is long and its ends decide
its box, which the centre-marked outputs place poorly (its detections often come in two
offset fragments); the ink has the ends exactly. Of two detections of one class on the same
component the best-scoring is kept if they overlap or the component is a long stroke
(fragments); otherwise both are objects (a chord's touching note heads).

Symbols (`config.omr.symbol_classes`: clefs, accidentals, dots, ...) are re-measured the
same way on the ink without its staff lines (`staves.erase_lines`), where each is a
component of its own; on a coarse or blurred capture a symbol's thin strokes can fade above
grey 128 and leave it in dark pieces, which the paler ink between them joins again
(`pale_ink`, `_joined_pieces`). With `config.omr.staves_from_ink` the `staff` class is the staves
found on the ink (`staves.find`); with `config.omr.ledger_lines_from_heads` ledger lines
are those the detected note heads beyond a staff stand on (`ledgers.from_heads`).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import ml_collections
import numpy as np
from scipy import ndimage

from dwd_jax import boxes as boxes_lib
from dwd_jax import classes as classes_lib
from dwd_jax import image as image_lib
from dwd_jax.omr import accidentals, capture, clefs, ledgers
from dwd_jax.omr import dots as dots_lib
from dwd_jax.omr import staves as staves_lib
from dwd_jax.omr.capture import INK_BELOW

# A line pixel must be dark along at least this share of the line's decoded length to count:
# the quantile 1 - share of each cross-position's darkness is its profile value. 0.75 keeps
# a ledger line's rows (dark along all of it) and drops the rows of the note head it crosses
# (dark along about 60 %), and a stem's column but not the note head at its end.
_ALONG_SHARE = 0.75
_STRONG = 0.5  # The line's core: profile at least this dark.
_FAINT = 0.05  # The line's extent: profile above this (anti-aliased edges).
_MARGIN = 3  # Search this many pixels beyond the decoded thickness on each side.
_OPENING = 0.35  # Strokes thinner than this many staff spaces are not solid.
# A component is taken for a solid box only if their boxes overlap this much (IoU), a guard
# against a box that only grazes some solid. Low, because a decoded beam box can sit far off
# its beam's ink and still be the only detection of it.
_MIN_IOU = 0.1
# Two detections on one component are fragments of one object if their decoded boxes overlap
# this much (a beam's two offset fragments); less, and they are two objects that touch (a
# chord's note heads a second apart, decoded side by side).
_FRAGMENT_IOU = 0.1
# A component this many times longer than wide is one stroke (a beam, a slur): every further
# detection on it is a fragment, even beside the first rather than over it (a beam often
# comes as two end-to-end halves). Two touching note heads are at most about 2.5 : 1.
_STROKE_ASPECT = 3.0
# ...but only for a detection of a class drawn as one stroke, whose own box is this elongated
# along it: a whole note (about 1.6 : 1) or a clef on a staff line the erasure missed (a
# photograph's, a scan's) is not that line, nor is a G clef (2.2-3 : 1) that a blurred scan
# joins to a barline or to the clef of the staff below; the size guard below keeps its box.
_STROKE_BOX_ASPECT = 2.0
_STROKE_CLASSES = ("beam", "slur", "tie")
# A compact component this many times taller or wider than a detection's box holds more than
# its object (a chord's second touching the note head the network boxed alone): the
# detection keeps its own box rather than take both heads'.
_MAX_GROWTH = 1.3
# A component more than this many times both taller and wider than a detection's box is its
# symbol joined to a neighbour (on a bleed-through copy a breve's component took the sharp
# before it, the verso's ghost bridging them: 2.0 times its box's width, 1.8 times its
# height), however far a finite `max_growth` lets one side grow: the network's box of a
# compact symbol errs along one axis (a G clef's height), not both.
_MAX_GROWTH_BOTH = 1.5
# A symbol's component ends where, beyond its decoded box, it runs on sideways as a stroke
# thinner than _SPUR_WIDTH staff spaces for at least _SPUR_LENGTH: a piece of staff line that
# the erasure left (a verso's ghost, JPEG ringing or blur thickened the line there) joins a
# key's flat or a rest to a clef or a barline, and the symbol would take the piece. Not up
# or down: a flat's, a natural's or an eighth rest's own stem runs on that way beyond a box
# the network decoded short (cutting rows too lowered those classes on clean pages). Widths
# of 0.25-0.5 cut the same pieces on the robustness set; a length of a whole staff space
# misses most of them, and half of one a JPEG copy's G clef joined to the system's barline
# 0.44 staff spaces before it.
_SPUR_WIDTH = 0.35
_SPUR_LENGTH = 0.35
# A symbol that fell apart on a coarse or blurred capture (a tuplet 3's thin tips) leaves
# dark pieces joined by paler ink: below this grey level, within its decoded box grown by
# _PIECE_REACH staff spaces (a decoded box can stop short of a tip; twice that along its
# longer side, where an eighth rest's stem cut off by an erased staff line ran on 0.55 staff
# spaces below a box decoded short), pieces joined to its largest are one symbol with it,
# each reaching into the box's span across that side (a piece of the stem of the note beside
# a coarse capture's natural lay wholly beside it). 128 is the ink itself.
_PALE_BELOW = 192
_PIECE_REACH = 0.25
# ...if each lies at least this share inside that window (a neighbour's piece, a note head
# beside an accidental, only pokes in; 0.6 let a scanned natural take the stem of the note
# beside it) and holds at least _PIECE_LEAST square staff spaces: a blurred scan's specks of
# erased staff line beside a rest or an accidental are smaller, and joined they widened its
# box (0.06 missed a coarse capture's tuplet tips).
_PIECE_INSIDE = 0.8
_PIECE_LEAST = 0.03
# ...or, smaller, is an upright stroke: at least _PIECE_UPRIGHT times taller than wide and
# _PIECE_UPRIGHT_HEIGHT staff spaces tall. An eighth rest's or a flat's stem fades on a coarse
# capture into pieces a few pixels each, smaller than the least above; the erased staff
# lines' specks lie flat.
_PIECE_UPRIGHT = 3.0
_PIECE_UPRIGHT_HEIGHT = 0.25
# Pale horizontal runs this many staff spaces long are staff lines and their halos, found
# or not, which would join every piece along a staff.
_LINE_RUN = 2.0
# A network dot detection is of a dot found on the ink if their boxes overlap this much: the
# decoded box of a 7-px dot is a few pixels off at stride 2, so IoU 0.5 would miss some.
_SEEN_IOU = 0.3
# The score of a found dot the network did not detect, relative to what named it: below the
# seen dots of its class, so that a dot both the network and the ink see ranks first.
_UNSEEN = 0.3


# The rules of `config.omr` with their "off" values: each one off alone is an ablation;
# `config.omr.enabled = False` switches them all off (the network's boxes as decoded).
OFF = {
    "line_classes": (),
    "solid_classes": (),
    "symbol_classes": (),
    "accidentals_by_shape": False,
    "c_clefs_by_line": False,
    "dots_from_ink": False,
    "staves_from_ink": False,
    "ledger_lines_from_heads": False,
    "flatten": False,
    "pale_lines": False,
    "deskew": False,
}


def refine(
    page: np.ndarray,
    detections: tuple[np.ndarray, np.ndarray, np.ndarray],
    config: ml_collections.ConfigDict,
    *,
    staff_space: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A page's detections re-measured on its ink (nothing, if `config.enabled` is off).

    With `config.flatten`, the page is first flattened to white paper (`capture.flatten`; an
    engraved page is left as it is). With `config.deskew`, a page whose lines are turned
    (`capture.skew`) so far that they climb at least `config.min_skew_drift` staff spaces
    across its width is turned upright, with its boxes, for the rules
    (`refine_upright`), and their boxes are turned back; a detection the rules left alone keeps
    its own box.

    Args:
      page: u8[H, W] grey page, 0 = ink, at the boxes' resolution.
      detections: (boxes f32[N, 4] `[y0, x0, y1, x1]` page pixels, classes i32[N] model
        classes of the DeepScores list, scores f32[N]).
      config: the `config.omr` section.
      staff_space: the page's staff spacing in its pixels.

    Returns:
      (boxes f32[M, 4], classes i32[M], scores f32[M]), as `refine_upright`.
    """
    if not config.enabled:
        return detections
    if config.flatten:
        page = capture.flatten(page, staff_space)
    level, found = line_level(page, staff_space) if config.pale_lines else (INK_BELOW, None)
    angle = capture.skew(page < level) if config.deskew else 0.0
    drift = page.shape[1] * abs(np.tan(np.deg2rad(angle))) / staff_space
    if drift < config.min_skew_drift:
        return refine_upright(
            page, detections, config, staff_space=staff_space, line_below=level, staves=found
        )
    boxes, classes, scores = detections
    turned = boxes_lib.rotate(boxes, page.shape, -angle)
    upright = image_lib.rotate(page, -angle)
    out, out_classes, out_scores = refine_upright(
        upright, (turned, classes, scores), config, staff_space=staff_space, line_below=level
    )
    back = boxes_lib.rotate(out, page.shape, angle)
    # A box turned there and back only grows: one the rules did not touch keeps its own.
    untouched = {tuple(b): i for i, b in enumerate(turned.tolist())}
    for j, b in enumerate(out.tolist()):
        i = untouched.get(tuple(b))
        if i is not None:
            back[j] = boxes[i]
    return back, out_classes, out_scores


def line_level(page: np.ndarray, staff_space: float) -> tuple[int, staves_lib.Staves]:
    """The grey level below which the rules read a page's (u8[H, W], paper 255) staff and
    ledger lines, and its skew, with the staves found there.

    `INK_BELOW`, unless the page's staff lines are paler than it: a blurred or low-resolution
    capture spreads a 2-px line into greys above 128, and at 128 no staff is found (none on
    any of the robustness set's photographs). Then Otsu's level of the page, which splits
    paper from everything darker: it is taken where the staves found below it outnumber those
    found below `INK_BELOW`, so a page whose lines are dark keeps `INK_BELOW` exactly.
    Symbols are still read below `INK_BELOW`: their cores stay dark, and a lighter level
    would add the blur's halo to their boxes.
    """
    fixed = staves_lib.find(page < INK_BELOW, staff_space)
    otsu, _ = cv2.threshold(page, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    level = int(otsu) + 1  # OpenCV puts greys up to Otsu's level in the dark class.
    if level <= INK_BELOW:
        return INK_BELOW, fixed
    adaptive = staves_lib.find(page < level, staff_space)
    if len(adaptive.boxes) > len(fixed.boxes):
        return level, adaptive
    return INK_BELOW, fixed


def refine_upright(
    page: np.ndarray,
    detections: tuple[np.ndarray, np.ndarray, np.ndarray],
    config: ml_collections.ConfigDict,
    *,
    staff_space: float,
    line_below: int = INK_BELOW,
    staves: staves_lib.Staves | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rules on an upright page with white paper, in this order: `snap_lines` for
    `config.line_classes`, `snap_solids` for `config.solid_classes`, `snap_symbols` for
    `config.symbol_classes`; then each rule that is on: `accidentals_by_shape`
    (`name_accidentals`), `c_clefs_by_line` (`clefs.name_by_line`, then
    `clefs.drop_doubles`), `dots_from_ink`
    (`use_dots`), `staves_from_ink` (`use_staves`), and
    `ledger_lines_from_heads` (the ledger lines of `ledgers.from_heads` in place of the
    network's). Where the ink shows no staff, the network's staffs and ledger lines stand;
    where it shows no dot, the network's dots do.

    Args and returns as `refine`, and `line_below`: the grey level below which staff and
    ledger lines are ink (`line_level`; symbols are read below `INK_BELOW`), and `staves`:
    the staves found there on this page, if already found. What the ink found (dots,
    staves, ledger lines) comes last, fragments and what the ink replaces are dropped.
    """
    boxes, classes, scores = detections
    d = config
    (ledger,) = classes_lib.model_labels(("ledgerLine",))
    needs_staves = d.staves_from_ink or d.ledger_lines_from_heads or d.c_clefs_by_line
    without_lines = bool(len(d.symbol_classes)) or d.accidentals_by_shape or d.dots_from_ink
    if needs_staves or without_lines:
        ink_mask = np.asarray(page) < INK_BELOW
        line_mask = ink_mask if line_below == INK_BELOW else np.asarray(page) < line_below
        found = staves if staves is not None else staves_lib.find(line_mask, staff_space)
    # Ledger lines from the heads only on a page whose staves the ink shows.
    from_heads = d.ledger_lines_from_heads and len(found.boxes) > 0
    if from_heads:  # Replaced at the end: not worth re-measuring.
        keep = classes != ledger
        boxes, classes, scores = boxes[keep], classes[keep], scores[keep]
    if len(d.line_classes):
        boxes = snap_lines(page, boxes, classes, classes_lib.model_labels(d.line_classes))
    if len(d.solid_classes):
        boxes, keep = snap_solids(
            page, boxes, classes, scores, classes_lib.model_labels(d.solid_classes), staff_space
        )
        boxes, classes, scores = boxes[keep], classes[keep], scores[keep]
    if not (without_lines or needs_staves):
        return boxes, classes, scores
    if without_lines:
        symbols = staves_lib.erase_lines(ink_mask, found)
        # Pieces join across the staff-line ink the erasure took, too: it parts a symbol whose
        # strokes lie along a line (a C clef's halves, a breve in a space, whose top and
        # bottom strokes lie on the lines).
        pale = pale_ink(page, staff_space) | (ink_mask & ~symbols)
    if len(d.symbol_classes):
        boxes, keep = snap_symbols(
            symbols, boxes, classes, scores, classes_lib.model_labels(d.symbol_classes),
            max_changes(d, classes), d.symbol_min_share, staff_space, pale,
        )
        boxes, classes, scores = boxes[keep], classes[keep], scores[keep]
    if d.accidentals_by_shape:
        boxes, classes, scores = name_accidentals(
            symbols, boxes, classes, scores, max_changes(d, classes), d.symbol_min_share,
            staff_space, pale, d.accidentals_max_score,
        )
    if d.c_clefs_by_line:
        classes = clefs.name_by_line(found, boxes, classes, ink_mask)
        boxes, classes, scores = clefs.drop_doubles(boxes, classes, scores)
    if d.dots_from_ink:
        boxes, classes, scores = use_dots(
            symbols, ink_mask, found, boxes, classes, scores, staff_space
        )
    if d.staves_from_ink and len(found.boxes):
        boxes, classes, scores = use_staves(found, boxes, classes, scores)
    if from_heads:
        heads = np.isin(classes, classes_lib.model_labels(ledgers.HEAD_CLASSES))
        lines, line_scores = ledgers.from_heads(
            line_mask, found, boxes[heads], scores[heads], staff_space
        )
        lines = snap_lines(page, lines, np.full(len(lines), ledger), [ledger])
        boxes = np.concatenate([boxes, lines]).astype(np.float32)
        classes = np.concatenate([classes, np.full(len(lines), ledger, np.int32)])
        scores = np.concatenate([scores, line_scores]).astype(np.float32)
    return boxes, classes, scores


def use_staves(
    found: staves_lib.Staves, boxes: np.ndarray, classes: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detections with the staves found on the ink as the `staff` class.

    The network's staff detections are replaced (a staff is many crops wide, so the network
    never sees one whole in training), and a ledger line whose centre lies inside a found staff
    (strictly between its outer lines) is dropped: ledger lines extend a staff, so one inside
    it is the network reading a staff line beside a note head as one.

    Args:
      found: the page's staves (`staves.find`).
      boxes: f32[N, 4] `[y0, x0, y1, x1]`; classes: i32[N] model classes; scores: f32[N].

    Returns:
      (boxes f32[M, 4], classes i32[M], scores f32[M]), the found staves last.
    """
    staff, ledger = classes_lib.model_labels(("staff", "ledgerLine"))
    cy, cx = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    # Inner edges of the outer lines at each detection's column: [N, S].
    centres, half = staves_lib.centres_at(found, cx), staves_lib.thicknesses(found) / 2
    top, bottom = centres[:, :, 0] + half[:, 0], centres[:, :, -1] - half[:, -1]
    inside = (
        (cy[:, None] > top)
        & (cy[:, None] < bottom)
        & (cx[:, None] > found.boxes[:, 1])
        & (cx[:, None] < found.boxes[:, 3])
    ).any(axis=1)
    keep = (classes != staff) & ~((classes == ledger) & inside)
    return (
        np.concatenate([boxes[keep], found.boxes]).astype(np.float32),
        np.concatenate([classes[keep], np.full(len(found.boxes), staff, np.int32)]),
        np.concatenate([scores[keep], found.scores]).astype(np.float32),
    )


def use_dots(
    symbols_mask: np.ndarray,
    ink_mask: np.ndarray,
    found: staves_lib.Staves,
    boxes: np.ndarray,
    classes: np.ndarray,
    scores: np.ndarray,
    staff_space: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detections with the dots found on the ink (`dots.find`) as the dot classes, named by
    their place (`dots.name`).

    A found dot takes the score of the network's dot detection that overlaps it most (IoU >=
    0.3), or, unseen by the network, 0.3 times the score of what named it, ranking below the
    seen; its class is its place's, else (unnamed) the network's. Unnamed and unseen, it is
    dropped, as is every network dot detection on no found dot: such detections are mostly
    false (a dot touching its note head, the one true case, is lost). On a page where the
    ink shows no dot at all, the detections are returned as they are.

    Args:
      symbols_mask: bool[H, W] the ink with its staff lines erased (`staves.erase_lines`).
      ink_mask: bool[H, W] the page's ink.
      found: the page's staves (`staves.find`).
      boxes: f32[N, 4] `[y0, x0, y1, x1]`; classes: i32[N] model classes; scores: f32[N].
      staff_space: the page's staff spacing in its pixels.

    Returns:
      (boxes f32[M, 4], classes i32[M], scores f32[M]), the found dots last.
    """
    is_dot = np.isin(classes, classes_lib.model_labels(dots_lib.DOT_CLASSES))
    rest = ~is_dot
    found_dots = dots_lib.find(symbols_mask, staff_space)
    if not len(found_dots):  # The ink shows no dot (a noisy page): the network's stand.
        return boxes, classes, scores
    named, context = dots_lib.name(
        found_dots, ink_mask, found, boxes[rest], classes[rest], scores[rest], staff_space
    )
    overlap = boxes_lib.box_iou(found_dots, boxes[is_dot])  # [D, K]
    seen = overlap.max(axis=1, initial=0.0) >= _SEEN_IOU
    best = overlap.argmax(axis=1) if overlap.shape[1] else np.zeros(len(found_dots), int)
    dot_classes = np.where(named > 0, named, classes[is_dot][best] if seen.any() else 0)
    dot_scores = np.where(seen, scores[is_dot][best] if seen.any() else 0, _UNSEEN * context)
    keep = seen | (named > 0)
    return (
        np.concatenate([boxes[rest], found_dots[keep]]).astype(np.float32),
        np.concatenate([classes[rest], dot_classes[keep]]).astype(np.int32),
        np.concatenate([scores[rest], dot_scores[keep]]).astype(np.float32),
    )


def name_accidentals(
    symbols_mask: np.ndarray,
    boxes: np.ndarray,
    classes: np.ndarray,
    scores: np.ndarray,
    max_change: float | np.ndarray = np.inf,
    min_share: float = 0.0,
    staff_space: float = 0.0,
    pale_mask: np.ndarray | None = None,
    max_score: float = np.inf,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detections with each flat, natural and sharp (of a key signature, or beside a note)
    scoring below `max_score` named by its shape (`accidentals.shape`), where the shape
    decides; two detections of one accidental, now of one class, are one (`snap_symbols`'
    rule, which keeps the better). A confident detection keeps the network's class: blur can
    merge a natural's half-stems into a sharp's or fill a flat's bowl, and the shape then
    misreads what the network saw right.

    Args:
      symbols_mask: bool[H, W] the ink with its staff lines erased (`staves.erase_lines`).
      boxes: f32[N, 4] `[y0, x0, y1, x1]`, accidentals' already their component's
        (`snap_symbols`: read from a decoded box, a note head beside it can be the larger
        component).
      classes: i32[N] model classes; scores: f32[N].
      max_change, min_share, staff_space, pale_mask: as `snap_symbols`'; an accidental whose
        component holds less than `min_share` of its box's ink keeps the network's class
        (`accidentals.shape`).
      max_score: the score from which a detection keeps the network's class.

    Returns:
      (boxes f32[M, 4], classes i32[M], scores f32[M]).
    """
    classes = np.array(classes, copy=True)
    for family in accidentals.FAMILIES:
        family_labels = classes_lib.model_labels(family)
        chosen = np.flatnonzero(np.isin(classes, family_labels) & (scores < max_score))
        shapes = accidentals.shape(symbols_mask, boxes[chosen], min_share)
        classes[chosen] = np.where(shapes > 0, family_labels[shapes - 1], classes[chosen])
    every = classes_lib.model_labels(accidentals.CLASSES)
    boxes, keep = snap_symbols(
        symbols_mask, boxes, classes, scores, every, max_change, min_share, staff_space,
        pale_mask,
    )
    return boxes[keep], classes[keep], scores[keep]


def snap_solids(
    page: np.ndarray,
    boxes: np.ndarray,
    classes: np.ndarray,
    scores: np.ndarray,
    solid_classes: Sequence[int],
    staff_space: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes of solid classes replaced by their ink component's; duplicates marked.

    Ink (grey < 128) is opened with a square of 0.35 staff spaces, which removes thinner
    strokes, and cut into 8-connected components. A box takes the box of the component with
    the most pixels inside it, if their IoU is at least 0.1 and the component is at most 1.3
    times the box's height and width, or the detection is a beam's piece and the component
    its stroke (at least 3 times longer than wide); else it is kept. A later (lower scoring)
    detection of the same class on the same component is a fragment, and dropped, if its
    decoded box overlaps the first's (IoU >= 0.1) or it is a beam's piece on its stroke; if
    not, the two are touching objects and both keep their decoded boxes.

    Args:
      page: u8[H, W] grey page, 0 = ink.
      boxes: f32[N, 4] `[y0, x0, y1, x1]` page pixels (pixel i covers [i, i + 1)).
      classes: i32[N] model classes; scores: f32[N].
      solid_classes: model classes to re-measure.
      staff_space: the page's staff spacing in its pixels.

    Returns:
      (f32[N, 4] boxes, bool[N] keep): keep is False for a fragment.
    """
    chosen = np.flatnonzero(np.isin(classes, np.asarray(solid_classes)))
    if not len(chosen):
        return np.array(boxes, np.float32, copy=True), np.ones(len(boxes), bool)
    size = max(int(round(_OPENING * staff_space)), 2)
    solid = image_lib.open_rect(page < INK_BELOW, size, size)
    return _snap_to_components(solid, boxes, classes, scores, chosen, max_growth=_MAX_GROWTH)


def max_changes(config: ml_collections.ConfigDict, classes: np.ndarray) -> np.ndarray:
    """f32[N]: how far `snap_symbols` may change each detection's box (i32[N] model
    `classes`): `config.accidentals_max_change` for flats, naturals and sharps (blur joins an
    accidental to its neighbour into a component that is still within
    `config.symbol_max_change` of it), `config.symbol_max_change` for the rest."""
    chosen = np.isin(classes, classes_lib.model_labels(accidentals.CLASSES))
    # A model exported before the field existed keeps its one factor for all.
    own = config.get("accidentals_max_change", config.symbol_max_change)
    return np.where(chosen, own, config.symbol_max_change).astype(np.float32)


def snap_symbols(
    symbols_mask: np.ndarray,
    boxes: np.ndarray,
    classes: np.ndarray,
    scores: np.ndarray,
    symbol_classes: Sequence[int],
    max_change: float | np.ndarray = np.inf,
    min_share: float = 0.0,
    staff_space: float = 0.0,
    pale_mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes of symbol classes replaced by their ink component's once staff lines are erased.

    With the staff lines gone (`staves.erase_lines`), a clef, an accidental, a dot, a fermata
    or a whole note is one connected ink component of its own; the decoded box, read at
    stride 2 of the half-scale input, is matched to it and takes its box, with `snap_solids`'
    rule (the component with most pixels inside the box, IoU >= 0.1; lower-scoring fragments
    of one object dropped). A compact component more than `max_change` times taller or wider
    than the box, or less than 1 / `max_change`, is not the symbol's (on a blurred page a
    symbol merges with its neighbour), nor, `max_change` finite, one more than
    `_MAX_GROWTH_BOTH` times both taller and wider, nor one holding less than `min_share` of
    the ink inside the box (the symbol fell apart): the box stays as decoded. Given a
    `pale_mask`, the pieces of a symbol that fell apart on a coarse or blurred capture count
    as one component with the largest: those joined to it by pale ink near the decoded box,
    lying mostly there and larger than specks (`_joined_pieces`). Given the `staff_space`, a
    component is cut where it runs on beyond the decoded box as a thin spur (`_trim_spurs`:
    a piece of staff line the erasure left).

    Args:
      symbols_mask: bool[H, W] the page's ink with its staff lines erased
        (`staves.erase_lines`).
      boxes: f32[N, 4] `[y0, x0, y1, x1]` page pixels (pixel i covers [i, i + 1)).
      classes: i32[N] model classes; scores: f32[N].
      symbol_classes: model classes to re-measure.
      max_change: the largest factor between the component's and the box's sizes: one for
        all, or f32[N] one per detection (`max_changes`).
      min_share: the least share of the box's ink the component must hold.
      staff_space: the page's staff space in pixels; 0 = spurs are not cut.
      pale_mask: bool[H, W] the page's pale ink (`pale_ink`; `refine_upright` adds the
        staff-line ink the erasure took), or None: pieces never join.

    Returns:
      (f32[N, 4] boxes, bool[N] keep): keep is False for a fragment.
    """
    chosen = np.flatnonzero(np.isin(classes, np.asarray(symbol_classes)))
    if not len(chosen):
        return np.array(boxes, np.float32, copy=True), np.ones(len(boxes), bool)
    return _snap_to_components(
        symbols_mask, boxes, classes, scores, chosen, max_growth=max_change,
        max_shrink=max_change, min_share=min_share, staff_space=staff_space,
        pale_mask=pale_mask,
    )


def pale_ink(page: np.ndarray, staff_space: float) -> np.ndarray:
    """bool[H, W]: the pixels of u8[H, W] `page` darker than `_PALE_BELOW`, less every
    horizontal run of them `_LINE_RUN` staff spaces long (staff lines and their halos)."""
    pale = (np.asarray(page) < _PALE_BELOW).astype(np.uint8)
    run = max(int(round(_LINE_RUN * staff_space)), 3)
    lines = cv2.morphologyEx(pale, cv2.MORPH_OPEN, np.ones((1, run), np.uint8))
    return (pale > 0) & (lines == 0)


def _joined_pieces(
    components: np.ndarray,
    pale: np.ndarray,
    box: np.ndarray,
    label: int,
    sizes: np.ndarray,
    slices: list[tuple[slice, slice]],
    staff_space: float,
) -> np.ndarray:
    """i64[M] the labels of component `label` and of the pieces of its symbol around decoded
    `box` (f32[4] `[y0, x0, y1, x1]`): the components of `components` (i32[H, W], the page's
    labelled ink; `sizes` i64[K + 1] their pixels, `slices` their extents) joined to it by
    `pale` (bool[H, W], the page's pale ink) within the box grown by `_PIECE_REACH` (twice
    that along its longer side), each with at least `_PIECE_INSIDE` of its pixels inside that
    window, reaching into the box's span across its longer side, and with at least
    `_PIECE_LEAST` square staff spaces of them or upright (`_PIECE_UPRIGHT`)."""
    reach = int(round(_PIECE_REACH * staff_space))
    tall = box[2] - box[0] >= box[3] - box[1]
    rows, cols = _window(box, components.shape, (2 * reach, reach) if tall else (reach, 2 * reach))
    inside = components[rows, cols]
    linked, _ = ndimage.label(pale[rows, cols] | (inside > 0), structure=np.ones((3, 3), bool))
    own = linked[inside == label][0]
    joined, counts = np.unique(inside[(linked == own) & (inside > 0)], return_counts=True)
    spans = np.array([[(s.start, s.stop) for s in slices[j - 1]] for j in joined]).reshape(-1, 2, 2)
    extents = spans[:, :, 1] - spans[:, :, 0]
    upright = (extents[:, 0] >= _PIECE_UPRIGHT * extents[:, 1]) & (
        extents[:, 0] >= _PIECE_UPRIGHT_HEIGHT * staff_space
    )
    large = sizes[joined] >= _PIECE_LEAST * staff_space**2
    # The box's span across its longer side: a piece wholly beside it is a neighbour's.
    axis, lo, hi = (1, box[1], box[3]) if tall else (0, box[0], box[2])
    across = (spans[:, axis, 1] > lo) & (spans[:, axis, 0] < hi)
    piece = (counts >= _PIECE_INSIDE * sizes[joined]) & (large | upright) & across
    return joined[(joined == label) | piece]


def _snap_to_components(
    mask: np.ndarray,
    boxes: np.ndarray,
    classes: np.ndarray,
    scores: np.ndarray,
    chosen: np.ndarray,
    *,
    max_growth: float | np.ndarray = np.inf,
    max_shrink: float | np.ndarray = np.inf,
    min_share: float = 0.0,
    staff_space: float = 0.0,
    pale_mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`snap_solids`' matching of detections `chosen` (i64[K]) to the 8-connected components
    of `mask` (bool[H, W]) (with a `pale_mask`, a component and the pieces it joins,
    `_joined_pieces`, are one); a component more than `max_growth` times a box's height or
    width, or (a finite `max_growth`) more than `_MAX_GROWTH_BOTH` times both (unless the
    detection is a piece of a stroke, `_STROKE_CLASSES`, and the component that stroke), or
    less than 1 / `max_shrink` (unless the component is long and thin along the box), or
    holding less than `min_share` of the ink inside the box, leaves the box as it is. A
    compact component too large for one detection whose centre lies outside the box of
    another of its class holds two objects (on a blurred scan a key signature's flat touches
    the next): neither takes it. With a `staff_space`, a component a detection takes loses
    its spurs beyond the box (`_trim_spurs`; not for strokes): the trim refines a box the
    guards accepted and never lets a component they refused in. `max_growth` and `max_shrink`
    are one factor, or f32[N] one per detection. Returns (f32[N, 4] boxes, bool[N] keep)."""
    max_growth = np.broadcast_to(np.asarray(max_growth, np.float32), (len(boxes),))
    max_shrink = np.broadcast_to(np.asarray(max_shrink, np.float32), (len(boxes),))
    out = np.array(boxes, np.float32, copy=True)
    keep = np.ones(len(boxes), bool)
    is_stroke = np.isin(classes, classes_lib.model_labels(_STROKE_CLASSES))
    components, _ = ndimage.label(mask, structure=np.ones((3, 3), bool))
    slices = ndimage.find_objects(components)
    sizes = np.bincount(components.ravel()) if pale_mask is not None else None
    taken: dict[tuple[int, int], int] = {}  # (class, component) -> detection.
    # (class, component) -> detections the component was too large for.
    outgrown: dict[tuple[int, int], list[int]] = {}

    def apart(i: int, j: int) -> bool:
        """Detection i's centre lies outside detection j's decoded box: another object."""
        y0, x0, y1, x1 = boxes[j]
        y, x = (boxes[i, 0] + boxes[i, 2]) / 2, (boxes[i, 1] + boxes[i, 3]) / 2
        return not (y0 <= y <= y1 and x0 <= x <= x1)
    for i in chosen[np.argsort(-scores[chosen], kind="stable")]:
        y0, x0, y1, x1 = boxes[i]
        inside = components[_window(boxes[i], mask.shape)]
        counts = np.bincount(inside.ravel())
        if len(counts) < 2 or not counts[1:].any():
            continue
        label = int(counts[1:].argmax()) + 1
        members = np.array([label])
        if pale_mask is not None:
            members = _joined_pieces(
                components, pale_mask, boxes[i], label, sizes, slices, staff_space
            )
        held = counts[members[members < len(counts)]].sum()  # The box's ink they hold.
        if held < min_share * counts[1:].sum():
            continue  # The symbol fell apart (a blurred ring, a faded clef): kept as decoded.
        rows, cols = _union(slices, members)
        box = np.float32([rows.start, cols.start, rows.stop, cols.stop])
        comp_h, comp_w = rows.stop - rows.start, cols.stop - cols.start
        long_side, short_side = max(comp_h, comp_w), min(comp_h, comp_w)
        if boxes_lib.box_iou(box[None], boxes[i : i + 1])[0, 0] < _MIN_IOU:
            continue  # It only grazes that component: kept, and no claim on it.
        box_h, box_w = y1 - y0, x1 - x0
        along = (comp_h >= comp_w) == (box_h >= box_w)
        elongated = long_side >= _STROKE_ASPECT * short_side
        # A long thin component along a box as elongated is the symbol, however much smaller
        # than the decoded box (the network's boxes of Leland's 3 : 1 G clefs reach 2.2 times
        # their height); it may be larger only if the symbol is a stroke.
        thin = elongated and along and max(box_h, box_w) >= _STROKE_BOX_ASPECT * min(box_h, box_w)
        stroke = thin and is_stroke[i]
        key = (int(classes[i]), label)
        grown = comp_h > max_growth[i] * box_h or comp_w > max_growth[i] * box_w
        both = _MAX_GROWTH_BOTH if np.isfinite(max_growth[i]) else np.inf
        grown = grown or (comp_h > both * box_h and comp_w > both * box_w)
        shrunk = max_shrink[i] * comp_h < box_h or max_shrink[i] * comp_w < box_w
        if (grown and not stroke) or (shrunk and not thin):
            # The component holds more than this object: kept, and no claim on it. Nor, if it
            # is compact (a stroke's fragments lie beside each other), for the detection that
            # took it, if this is another object.
            if not elongated:
                outgrown.setdefault(key, []).append(i)
                if key in taken and apart(i, taken[key]):
                    out[taken[key]] = boxes[taken[key]]
            continue
        if key not in taken:
            taken[key] = i
            if not any(apart(j, i) for j in outgrown.get(key, ())):
                if staff_space > 0 and not is_stroke[i]:
                    piece = np.isin(components[rows, cols], members)
                    rows, cols = _trim_spurs(piece, rows, cols, boxes[i], staff_space)
                    box = np.float32([rows.start, cols.start, rows.stop, cols.stop])
                out[i] = box
        elif (
            stroke
            or boxes_lib.box_iou(boxes[i : i + 1], boxes[taken[key]][None])[0, 0] >= _FRAGMENT_IOU
        ):
            keep[i] = False  # A fragment of the better detection's object.
        else:  # Two objects on one component (a chord's touching note heads): as decoded.
            out[taken[key]] = boxes[taken[key]]
    return out, keep


def _window(
    box: np.ndarray, shape: tuple[int, int], grow: tuple[int, int] = (0, 0)
) -> tuple[slice, slice]:
    """The (rows, cols) of a page of `shape` under f32[4] `box` `[y0, x0, y1, x1]`, grown by
    `grow` (rows, cols) pixels each way."""
    y0, x0, y1, x1 = box
    return (
        slice(max(int(y0) - grow[0], 0), min(int(np.ceil(y1)) + grow[0], shape[0])),
        slice(max(int(x0) - grow[1], 0), min(int(np.ceil(x1)) + grow[1], shape[1])),
    )


def _union(slices: list[tuple[slice, slice]], labels: np.ndarray) -> tuple[slice, slice]:
    """The (rows, cols) slices spanning components `labels` (1-based) of `slices`."""
    spans = np.array([[s.start, s.stop] for label in labels for s in slices[label - 1]])
    rows, cols = spans[0::2], spans[1::2]
    return slice(rows[:, 0].min(), rows[:, 1].max()), slice(cols[:, 0].min(), cols[:, 1].max())


def _trim_spurs(
    piece: np.ndarray, rows: slice, cols: slice, box: np.ndarray, staff_space: float
) -> tuple[slice, slice]:
    """The rows and columns of a component (`piece`: bool[h, w] over `rows`, `cols` of the
    page) without a spur it runs on into beyond the decoded `box` (f32[4] `[y0, x0, y1,
    x1]`): outward from each side of the box, at the first run of `_SPUR_LENGTH` staff spaces
    of columns holding at most `_SPUR_WIDTH` staff spaces of its ink (a piece of staff line),
    the component is cut, with whatever lies beyond (a barline, a clef)."""
    thin = piece.sum(axis=0) <= _SPUR_WIDTH * staff_space
    length = max(int(np.ceil(_SPUR_LENGTH * staff_space)), 1)
    left = int(np.floor(box[1])) - cols.start
    right = int(np.ceil(box[3])) - cols.start
    cut_left = _run_start(thin, range(min(left, len(thin)) - 1, -1, -1), length)
    cut_right = _run_start(thin, range(max(right, 0), len(thin)), length)
    first = 0 if cut_left is None else cut_left + 1
    stop = len(thin) if cut_right is None else cut_right
    # What is left may hold fewer rows and, past a cut, empty columns.
    ys = np.flatnonzero(piece[:, first:stop].any(axis=1))
    xs = np.flatnonzero(piece[:, first:stop].any(axis=0))
    if not len(ys):
        return rows, cols
    top, left_edge = rows.start + ys[0], cols.start + first + xs[0]
    return slice(top, rows.start + ys[-1] + 1), slice(left_edge, cols.start + first + xs[-1] + 1)


def _run_start(thin: np.ndarray, steps: range, length: int) -> int | None:
    """Where along `steps` (indices into bool[n] `thin`) the first run of `length` True
    entries begins, or None."""
    run = 0
    for k in steps:
        run = run + 1 if thin[k] else 0
        if run == length:
            return k - steps.step * (length - 1)
    return None


def snap_lines(
    page: np.ndarray, boxes: np.ndarray, classes: np.ndarray, line_classes: Sequence[int]
) -> np.ndarray:
    """Boxes of thin-line classes with their thin side re-measured on the page's ink.

    A box taller than wide is a vertical line (its columns are searched), otherwise a
    horizontal one (its rows). The cross-profile is read over the decoded length: each
    cross-position's darkness quantile that needs it dark along 75 % of the line, less the
    faintest position's (paper that is not white, as on a scan), scaled to 1. The line is
    the run of profile > 0.05 around the strong (>= 0.5) position nearest the decoded centre,
    within the decoded thickness plus 3 px on each side; its thickness is the run's summed
    darkness and its centre the midpoint of its edges, each read from its edge pixel's
    darkness (exact for a box-filtered rectangle). Where the run reaches the search window's
    edge (a blurred line's halo), the line's edges are where the profile falls to half its
    peak. A box without such a run, or whose profile stays above half its peak to the
    window's edge (something wider than a line), is kept.

    Args:
      page: u8[H, W] grey page, 0 = ink, at the boxes' resolution.
      boxes: f32[N, 4] `[y0, x0, y1, x1]` page pixels (pixel i covers [i, i + 1)).
      classes: i32[N] model classes.
      line_classes: model classes to re-measure.

    Returns:
      f32[N, 4], the other boxes unchanged.
    """
    dark = (255.0 - np.asarray(page, np.float32)) / 255.0
    out = np.array(boxes, np.float32, copy=True)
    for i in np.flatnonzero(np.isin(classes, np.asarray(line_classes))):
        y0, x0, y1, x1 = (float(v) for v in boxes[i])
        if y1 - y0 >= x1 - x0:  # Vertical: along = rows, across = columns.
            span = _snap_across(dark, (y0, x0, y1, x1))
            if span is not None:
                out[i, [1, 3]] = span
        else:
            span = _snap_across(dark.T, (x0, y0, x1, y1))
            if span is not None:
                out[i, [0, 2]] = span
    return out


def _snap_across(dark: np.ndarray, box: tuple[float, float, float, float]):
    """(start, end) of a vertical line's columns in `dark` (f32[H, W], 1 = ink) near `box`
    (y0, x0, y1, x1), or None where no line is found."""
    y0, x0, y1, x1 = box
    height, width = dark.shape
    r0, r1 = max(int(np.floor(y0)), 0), min(int(np.ceil(y1)), height)
    centre = (x0 + x1) / 2
    radius = int(np.ceil(x1 - x0)) + _MARGIN
    c0, c1 = max(int(np.floor(centre)) - radius, 0), min(int(np.floor(centre)) + radius + 1, width)
    if r1 <= r0 or c1 - c0 < 3:
        return None
    profile = np.quantile(dark[r0:r1, c0:c1], 1.0 - _ALONG_SHARE, axis=0)
    # Scanned or photographed paper is not white even flattened (noise, texture): darkness is
    # read above the window's faintest position, which is 0 on an engraved page.
    base = float(profile.min())
    profile = np.clip((profile - base) / max(1.0 - base, 1e-6), 0.0, 1.0)
    position = np.arange(c0, c1) + 0.5  # Pixel centres.
    strong = np.flatnonzero(profile >= _STRONG)
    if not len(strong):
        return None
    peak = strong[np.argmin(np.abs(position[strong] - centre))]
    faint = profile <= _FAINT
    before, after = np.flatnonzero(faint[:peak]), np.flatnonzero(faint[peak + 1 :])
    if not len(before) or not len(after):
        # A blurred line's halo can reach the window's edge (a decoded box thinner than the
        # line and off its centre): its edges are where it falls to half its peak, since a
        # step blurred by any symmetric kernel is half dark at the step. Something wider than
        # a line stays dark there too: None.
        return _half_peak_span(profile, peak, c0)
    left, right = before[-1], peak + 1 + after[0]
    # An edge pixel's coverage a puts the line's edge a pixel-width inside it: the run starts
    # at (its first pixel + 1 - a) and ends at (its last pixel + a). The two edges' midpoint is
    # the centre (a coverage-weighted mean of pixel centres is biased towards the fuller edge).
    first, last = left + 1, right - 1
    start = c0 + first + 1.0 - float(profile[first])
    end = c0 + last + float(profile[last])
    thickness = float(profile[first:right].sum())
    mid = (start + end) / 2
    return mid - thickness / 2, mid + thickness / 2


def _half_peak_span(profile: np.ndarray, peak: int, offset: int) -> tuple[float, float] | None:
    """(start, end) where `profile` (f32[W], the cross-profile of a window starting at pixel
    `offset`) falls to half the top of the strong run through index `peak`, interpolated
    between pixel centres; None where it does not fall that far on both sides in the window
    (something wider than a line)."""
    strong = profile >= _STRONG
    lo, hi = peak, peak
    while lo > 0 and strong[lo - 1]:
        lo -= 1
    while hi < len(profile) - 1 and strong[hi + 1]:
        hi += 1
    half = float(profile[lo : hi + 1].max()) / 2
    below = profile < half
    before, after = np.flatnonzero(below[:lo]), np.flatnonzero(below[hi + 1 :])
    if not len(before) or not len(after):
        return None
    i, j = before[-1], hi + 1 + after[0]  # Last pixel below half on each side.
    # Pixel centres sit at +0.5; the crossing lies between a pixel below half and its neighbour.
    start = offset + i + 0.5 + (half - profile[i]) / (profile[i + 1] - profile[i])
    end = offset + j - 0.5 + (profile[j - 1] - half) / (profile[j - 1] - profile[j])
    return float(start), float(end)

"""Model outputs -> padded detections: the watershed cut, jitted and batched.

DWD_SPEC.md section 6, followed on purpose: foreground is `argmax(energy) > cutoff`, it is cut
into 8-connected components (`dwd_jax.decoding.ccl`), components under `min_size` pixels are
dropped, and each remaining one is read as one object: centre = mean pixel position, class =
majority vote of `argmax(class)`, size = maximum (or mean) of the box map.

Where we differ, deliberately (the spec's listed flaws, and what the oracle test measured):
- **A true watershed** (`config.decode.saddle_depth > 0`). The original's plain components merge
  every two objects whose energy markers touch (centres closer than about two marker radii), and
  on a real page that is most of them. Instead each foreground pixel climbs to its highest
  neighbour (steepest ascent on the expected energy level), which cuts the foreground into one
  basin per local maximum; a basin whose peak rises less than `saddle_depth` levels above its
  highest saddle towards a higher basin is merged into it (h-dynamics against its neighbours),
  so noise bumps do not split objects. `saddle_depth = 0` is the original's plain components.
- **Class splits** (`config.decode.class_split`, with `saddle_depth > 0`). A small symbol
  beside a larger one (a staccato dot above a notehead, an accidental before it) whose
  energy is weak is otherwise read as part of its neighbour. "peaks": a basin is never merged
  into a neighbouring basin whose peak pixel has another argmax class, so a weak peak of its
  own survives. "pixels": pixels whose argmax classes differ are not neighbours at all, so
  ascent and merging stay within one class, which also separates a symbol with no peak of its
  own but cuts objects whose border pixels' classes are noisy into fragments.
- **The object is read from its core**: the pixels of its region above `peak - saddle_depth`,
  which a cut towards a neighbour cannot reach. A half-moon region cut by a close neighbour
  would pull the mean centre and the box reading towards the cut; the core does not.
- **A probability foreground rule** (`config.decode.foreground_threshold > 0`):
  P(level > cutoff) > threshold instead of the argmax, which an under-trained model's spread
  of foreground mass over many levels defeats (see `foreground`); 0 keeps the argmax.
- **Energy groups** (docs/DESIGN.md): every group's maps are decoded independently and the
  detections of all groups pooled.
- **A confidence score** (the original wrote the class index as the score):
  `score = peak_energy / (L - 1) * class_confidence` where `peak_energy` is the largest
  expected energy level E[l] = sum_l p(l) l over the region (how surely it reaches an object
  centre) and `class_confidence` the probability of the voted class at that peak pixel (how
  surely the object's centre names its class). Both lie in [0, 1].
- **No page is dropped**: detections are padded to `max_detections` N and sorted by score; a
  page with more regions keeps the first N of each group in raster order, the best-scoring N
  of those, and sets `overflow` (the original dropped pages with over 800 detections). Ranking
  every region before the cut would need per-region votes over the whole map; a page that
  overflows wants a larger N instead.
- **Only foreground pixels are read** past the threshold: each page and group lists its first
  K = `config.decode.max_foreground_pixels` foreground pixels in raster order (a static budget),
  and the energy softmax, the watershed, the class logits (at the core pixels that vote, and
  at peaks) and the box map are read there only; foreground is a few percent of a page, and the
  class logits are the largest array by far. A page with more foreground decodes its first K
  pixels (the rest reads as background) and sets `overflow`.
- **Centre offsets** (`config.model.offset_head`): with an offset map, a core pixel votes for
  the centre at its own position plus its offset, and the object's centre is the mean of those
  votes, not of the pixel positions, which are quantised to the stride.
- **Line objects** (`config.targets.line_classes`): each pixel of a line object regresses its
  box cut to `line_reach` pixels either side of the pixel (`targets`), so along the object's
  long axis (the longer side of the core's mean box) its box is the union of its core pixels'
  boxes, and across it the mean as for any object.
- **Cached sizes** (`config.decode.class_box_sizes`): the DWD authors' fallback for classes
  whose box regression is poor; the table replaces the regressed size for the classes it names.
"""

from __future__ import annotations

import functools

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dwd_jax import classes as classes_lib
from dwd_jax.decoding import ccl
from dwd_jax.modeling import targets

# Foreground pixels whose class logits are read per loop step (`read_classes`): 2048 x 137
# logits (1.1 MB) stay in cache.
_CLASS_CHUNK = 2048


@flax.struct.dataclass
class Detections:
    """Padded detections of a batch (a pytree); N = `config.decode.max_detections`.

    Attributes:
      boxes: f32[B, N, 4] `[y0, x0, y1, x1]` in model-input pixels.
      classes: i32[B, N] model classes (1..136), 0 on padding.
      scores: f32[B, N] confidence in [0, 1], sorted descending; 0 on padding.
      valid: bool[B, N], False on padding.
      overflow: bool[B], True where a page had more than N regions, or a group more than
        `config.decode.max_foreground_pixels` foreground pixels (see the module docstring).
      ccl_converged: bool[B], False where connected components hit their iteration guard
        (`config.decode.ccl_max_iterations`): components may then be split.
    """

    boxes: jax.Array
    classes: jax.Array
    scores: jax.Array
    valid: jax.Array
    overflow: jax.Array
    ccl_converged: jax.Array


# `config.decode.class_split`: "none", "pixels" (pixels of different argmax classes are not
# neighbours) or "peaks" (basins of different peak classes never merge); see the docstring.
CLASS_SPLITS = ("none", "pixels", "peaks")


def class_size_table(config: ml_collections.ConfigDict) -> np.ndarray:
    """f32[C, 2]: cached (height, width) per model class from `config.decode.class_box_sizes`,
    0 for classes without one.

    Raises:
      KeyError: naming an unknown class.
      ValueError: if an entry is not (name, height, width) with positive sizes.
    """
    table = np.zeros((classes_lib.num_model_classes(config), 2), np.float32)
    for entry in config.decode.class_box_sizes:
        if len(entry) != 3 or not (float(entry[1]) > 0 and float(entry[2]) > 0):
            raise ValueError(
                f"config.decode.class_box_sizes entry {entry!r} must be (class_name, height, "
                "width) with positive sizes in model-input pixels"
            )
        table[classes_lib.model_class(config, entry[0])] = (float(entry[1]), float(entry[2]))
    return table


def decode(
    outputs: dict[str, jax.Array], *, stride: int, config: ml_collections.ConfigDict
) -> Detections:
    """Detections from the model outputs at one stride (jitted; one compile per input shape).

    Args:
      outputs: `{"energy": f32[B, h, w, G, L], "class": f32[B, h, w, G, 137],
        "box": f32[B, h, w, G, 2]}` logits (energy, class) and (height, width) in model-input
        pixels (box), at output `stride`; optionally `"offset": f32[B, h, w, G, 2]`, (dy, dx)
        to the box centre in model-input pixels.
      stride: the outputs' stride; boxes come back in model-input pixels.
      config: the run config (reads `config.decode`).

    Returns:
      Detections with N = `config.decode.max_detections`.
    """
    missing = {"energy", "class", "box"} - set(outputs)
    if missing:
        raise ValueError(
            f"decode: outputs lack {sorted(missing)}; pass the model's outputs at one stride, "
            "`outputs[stride]`, with keys energy, class and box"
        )
    lead = {k: tuple(outputs[k].shape[:4]) for k in ("energy", "class", "box")}
    offset = outputs.get("offset")
    if offset is not None and offset.shape != outputs["box"].shape:
        raise ValueError(
            f"decode: offset shape {tuple(offset.shape)} must equal the box shape "
            f"{tuple(outputs['box'].shape)}, [B, h, w, G, 2]"
        )
    if len(set(lead.values())) != 1 or outputs["box"].shape[4:] != (2,):
        raise ValueError(
            f"decode: shapes { ({k: tuple(v.shape) for k, v in outputs.items()}) } must be "
            "[B, h, w, G, L], [B, h, w, G, C] and [B, h, w, G, 2] (docs/DESIGN.md)"
        )
    d = config.decode
    if not 0.0 <= d.foreground_threshold < 1.0:
        raise ValueError(
            f"config.decode.foreground_threshold is {d.foreground_threshold!r}: use 0 for the "
            "argmax rule (the original) or a probability in (0, 1)"
        )
    if d.class_split not in CLASS_SPLITS:
        raise ValueError(
            f"config.decode.class_split is {d.class_split!r}: use one of {CLASS_SPLITS}"
        )
    if d.box_size not in ("max", "mean"):
        raise ValueError(
            f"config.decode.box_size is {d.box_size!r}: use 'max' (the original) or 'mean'"
        )
    return _decode(
        outputs["energy"],
        outputs["class"],
        outputs["box"],
        offset,
        stride=int(stride),
        cutoff=int(d.energy_cutoff),
        threshold=float(d.foreground_threshold),
        min_size=int(d.min_size),
        max_detections=int(d.max_detections),
        saddle_depth=float(d.saddle_depth),
        class_split=str(d.class_split),
        box_size=str(d.box_size),
        ccl_max_iterations=int(d.ccl_max_iterations),
        class_sizes=tuple(map(tuple, class_size_table(config).tolist())),
        line_classes=tuple(bool(x) for x in targets.line_classes(config)),
        max_foreground_pixels=int(d.max_foreground_pixels),
    )


def argmax_last(x: jax.Array) -> jax.Array:
    """`jnp.argmax(x, axis=-1)` (first index on ties), fast on CPU.

    XLA's CPU argmax is a variadic reduction, and a compare-and-select reduction does not
    vectorise either: over 137 classes on a 960x720 map both take ~20x longer than a plain
    float max. So the index rides in a float max: `(x - max) * 1e30 + (C - k)` is `C - k` at
    the maxima and far below 1 elsewhere (for any gap above ~1e-28).

    Args:
      x: f32[..., C] finite logits.

    Returns:
      i32[...].
    """
    c = x.shape[-1]
    gap = (x - jnp.max(x, axis=-1, keepdims=True)) * 1e30
    key = jnp.max(gap + (c - jnp.arange(c, dtype=x.dtype)), axis=-1)
    return (c - key).astype(jnp.int32)


def foreground(energy_logits: jax.Array, cutoff: int, threshold: float = 0.0) -> jax.Array:
    """The foreground rule: `argmax(energy_logits, -1) > cutoff` (first index on ties), or
    with `threshold > 0`, P(level > cutoff) > threshold. Fast on CPU.

    The argmax level is needed only through this threshold: a level above the cutoff wins
    exactly when the largest logit is strictly above every logit up to the cutoff: one plain
    max reduction and a few slices (a 20-wide argmax on XLA CPU is several times slower).

    Why a probability rule: an uncertain model spreads an object's mass over the 18 levels
    above the cutoff while the background's sits on one level, so the argmax says background
    on pixels that are most likely foreground (a short CPU run: P(fg) 0.3-0.6 on marker
    pixels, argmax foreground on almost none). P(level > cutoff) > t is written without the
    softmax's division: 1 - P(low) > t  <=>  sum_low e^l < (1 - t) sum_all e^l, with the
    logits shifted by their maximum.

    Args:
      energy_logits: f32[..., L].
      cutoff: levels 0..cutoff are background.
      threshold: 0 for the argmax rule (the original), else a probability in (0, 1).

    Returns:
      bool[...].
    """
    shape = energy_logits.shape[:-1]
    flat = energy_logits.reshape(-1, energy_logits.shape[-1])  # 2-D: faster on XLA CPU.
    columns = [flat[:, k] for k in range(flat.shape[-1])]
    top = jnp.max(flat, axis=-1)
    if threshold <= 0:
        low = functools.reduce(jnp.maximum, columns[: cutoff + 1])
        return (top > low).reshape(shape)
    # Level by level, as in `expected_level`: a 20-wide minor axis is slow on XLA CPU.
    weights = [jnp.exp(c - top) for c in columns]
    background = functools.reduce(jnp.add, weights[: cutoff + 1])
    total = functools.reduce(jnp.add, weights[cutoff + 1 :], background)
    return (background < (1.0 - threshold) * total).reshape(shape)


def first_pixels(mask: jax.Array, k: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The first `k` set pixels of each row of a mask in raster order: `jnp.nonzero(row,
    size=k)` in one prefix sum and one scatter (`jnp.nonzero` takes two of each).

    The prefix sum runs within tiles of 32 pixels as a product with a triangular matrix (exact:
    sums of at most 32 ones), 2x faster on XLA CPU than `jnp.cumsum`. Rows are flattened into
    one scatter, not vmapped: XLA CPU runs a batched scatter several times slower. The mask is
    read once, as the product's operand, and recovered from the product (XLA would recompute
    a mask that is an elementwise expression, as `foreground` is, inside each consumer).

    Args:
      mask: bool[R, P].
      k: the static budget.

    Returns:
      pixels: i32[R, k] increasing flat indices, P on padding; count: i32[R] set pixels
      (may exceed k); position: i32[R, P] each pixel's position in `pixels`, -1 where it is
      not there.
    """
    r, p = mask.shape
    tile = 32
    tiles = jnp.pad(mask, ((0, 0), (0, -p % tile))).reshape(-1, tile).astype(jnp.float32)
    upper = jnp.triu(jnp.ones((tile, tile), jnp.float32))
    within = jnp.dot(tiles, upper, precision=jax.lax.Precision.HIGHEST)
    is_set = (within > jnp.pad(within[:, :-1], ((0, 0), (1, 0)))).reshape(r, -1)[:, :p]
    within = within.astype(jnp.int32).reshape(r, -1, tile)
    totals = within[:, :, -1]
    before = jnp.cumsum(totals, axis=1) - totals
    rank = (within + before[:, :, None]).reshape(r, -1)[:, :p]  # Set pixels up to each one.
    position = jnp.where(is_set & (rank <= k), rank - 1, -1)
    row = jnp.arange(r, dtype=jnp.int32)[:, None]
    # Scatter flat positions (an iota, cheaper than tiling one row's) and take the row off.
    flat = (
        jnp.zeros(r * k, jnp.int32)
        .at[jnp.where(position >= 0, position + k * row, r * k)]
        .set(jnp.arange(r * p, dtype=jnp.int32).reshape(r, p), mode="drop", unique_indices=True)
    )
    count = rank[:, -1]
    pixels = jnp.where(jnp.arange(k) < count[:, None], flat.reshape(r, k) - p * row, p)
    return pixels, count, position


def expected_level(energy_logits: jax.Array) -> jax.Array:
    """The expected level E[l] = sum_l softmax(logits)_l * l.

    Written level by level: XLA on CPU handles a 20-wide minor axis with broadcasts about 10x
    slower than these elementwise passes.

    Args:
      energy_logits: f32[P, L].

    Returns:
      f32[P].
    """
    logits = [energy_logits[:, k] for k in range(energy_logits.shape[-1])]
    top = functools.reduce(jnp.maximum, logits)
    total = weighted = jnp.zeros(top.shape, jnp.float32)
    for k in reversed(range(len(logits))):
        weight = jnp.exp(logits[k] - top)
        total, weighted = total + weight, weighted + k * weight
    return weighted / total


def neighbours(pixels: jax.Array, real: jax.Array, position: jax.Array) -> list[jax.Array]:
    """The 8-neighbourhood of a list of pixels, within the list.

    Args:
      pixels: i32[K] flat indices into an [h, w] map, increasing (raster order).
      real: bool[K], False on padding entries.
      position: i32[h, w] each pixel's position in `pixels`, -1 where it is not there.

    Returns:
      8 i32[K] (in `ccl.NEIGHBOURS` order): the position in `pixels` of each pixel's neighbour,
      -1 where that neighbour is outside the map or not in the list (or the entry is padding).
    """
    h, w = position.shape
    slot = position.ravel()
    y, x = pixels // w, pixels % w
    out = []
    for dy, dx in ccl.NEIGHBOURS:
        ny, nx = y + dy, x + dx
        inside = real & (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        out.append(jnp.where(inside, slot[jnp.clip(ny * w + nx, 0, h * w - 1)], -1))
    return out


def watershed(
    energy: jax.Array,
    near: list[jax.Array],
    real: jax.Array,
    saddle_depth: float,
    pixel_class: jax.Array | None = None,
) -> jax.Array:
    """Cuts the foreground into one region per significant energy peak.

    Works on the list of foreground pixels only (raster order, so comparing list positions
    orders pixels as comparing their page indices would).

    Args:
      energy: f32[K] expected energy level of each foreground pixel (anything on padding).
      near: 8 i32[K] neighbours in the list, -1 for none (see `neighbours`).
      real: bool[K], False on padding entries.
      saddle_depth: a peak less than this above its highest saddle towards a higher
        neighbouring peak is merged into that peak.
      pixel_class: i32[K] argmax class per pixel, or None. When given, a basin is merged only
        into a neighbouring basin whose peak has the same class as its own (or where either
        peak's class is background).

    Returns:
      i32[K] root pointers: every foreground pixel holds the list position of its region's
      peak pixel; padding entries their own position.
    """
    k = energy.shape[0]
    index = jnp.arange(k, dtype=jnp.int32)
    e = jnp.where(real, energy, -jnp.inf)

    def at(values, nb, fill):
        return jnp.where(nb >= 0, values[jnp.maximum(nb, 0)], fill)

    # Steepest ascent; ties go to the smaller index, a strict order, so pointers form a forest.
    best_e, best_i = e, index
    for nb in near:
        ne, ni = at(e, nb, -jnp.inf), jnp.where(nb >= 0, nb, k)
        better = (ne > best_e) | ((ne == best_e) & (ni < best_i))
        best_e, best_i = jnp.where(better, ne, best_e), jnp.where(better, ni, best_i)
    parent = jnp.where(real, best_i, index)
    roots = ccl.find_roots(parent)
    peak = e[roots]

    # Per pixel: the highest saddle towards a neighbouring basin with a higher peak.
    saddle, target = jnp.full(k, -jnp.inf), jnp.full(k, k, jnp.int32)
    peak_class = None if pixel_class is None else pixel_class[roots]
    for nb in near:
        nr, npk, ne = at(roots, nb, k), at(peak, nb, -jnp.inf), at(e, nb, -jnp.inf)
        higher = (npk > peak) | ((npk == peak) & (nr < roots))
        if peak_class is not None:
            # Background (class 0) names no symbol: such a peak merges with either side.
            other = at(peak_class, nb, -1)
            higher &= (other == peak_class) | (other == 0) | (peak_class == 0)
        s = jnp.where(real & (nb >= 0) & (nr != roots) & higher, jnp.minimum(e, ne), -jnp.inf)
        better = (s > saddle) | ((s == saddle) & (nr < target))
        saddle, target = jnp.where(better, s, saddle), jnp.where(better, nr, target)
    # Per basin: its highest saddle, then the smallest root reached over that saddle.
    basin_saddle = jnp.full(k, -jnp.inf).at[roots].max(saddle)
    at_best = saddle == basin_saddle[roots]
    basin_target = jnp.full(k, k, jnp.int32).at[roots].min(jnp.where(at_best, target, k))
    is_root = real & (roots == index)
    shallow = is_root & (e - basin_saddle < saddle_depth) & (basin_target < k)
    # Merging a basin into one with a higher (peak, -index) keeps the pointers a forest.
    return ccl.find_roots(jnp.where(shallow, basin_target, roots))


def read_classes(class_logits: jax.Array, rows: jax.Array, count: jax.Array) -> jax.Array:
    """The argmax class at the first `count` of `rows`, read in chunks up to `count` only.

    A loop with a data-dependent trip count rather than one gather of all K rows: the padding
    of the static budget then costs nothing, and each chunk's gather and argmax run while the
    chunk is in cache (on CPU ~15x faster than gathering 64k rows of 137 logits at once).

    Args:
      class_logits: f32[P, C].
      rows: i32[K] rows of `class_logits`.
      count: i32[], how many of `rows` are real.

    Returns:
      i32[K], 0 past `count`.
    """
    k = rows.shape[0]
    chunk = min(_CLASS_CHUNK, k)
    padded = jnp.pad(rows, (0, -k % chunk))

    def read(i, out):
        at = jax.lax.dynamic_slice(padded, (i * chunk,), (chunk,))
        return jax.lax.dynamic_update_slice(out, argmax_last(class_logits[at]), (i * chunk,))

    out = jax.lax.fori_loop(0, (count + chunk - 1) // chunk, read, jnp.zeros_like(padded))
    return jnp.where(jnp.arange(k) < count, out[:k], 0)


def _decode_map(
    position,
    pixels,
    count,
    energy_logits,
    class_logits,
    box,
    offset,
    *,
    group,
    stride,
    cutoff,
    threshold,
    min_size,
    max_detections,
    saddle_depth,
    class_split,
    box_size,
    ccl_max_iterations,
    class_sizes,
    line_classes,
    max_foreground_pixels,
):
    """One page, one group -> padded detections.

    Everything past the threshold runs on the list of the group's first K foreground pixels
    (K = `max_foreground_pixels`), gathered in raster order: the class logits, the largest
    array by far, are read only there.

    Args:
      position: i32[h, w], pixels: i32[K] and count: i32[] the group's foreground as
        `first_pixels` lists it; energy_logits: f32[h * w * G, L],
        class_logits: f32[h * w * G, C] and box: f32[h * w * G, 2], the page's maps of all
        groups, flat; offset: f32[h * w * G, 2] or None.

    Returns:
      boxes, classes, scores, valid (padded to N), kept (regions found), converged, and
      whether the foreground exceeded K.
    """
    h, w = position.shape
    groups = energy_logits.shape[0] // (h * w)
    n = max_detections
    k = min(max_foreground_pixels, h * w)
    real = jnp.arange(k) < count
    rows = jnp.where(real, pixels, 0) * groups + group  # Rows of this group in the flat maps.
    e = jnp.where(real, expected_level(energy_logits[rows]), -jnp.inf)

    pixel_class = read_classes(class_logits, rows, count) if class_split != "none" else None
    if saddle_depth > 0:
        near = neighbours(pixels, real, position)
        if class_split == "pixels":
            near = [
                jnp.where(pixel_class[jnp.maximum(nb, 0)] == pixel_class, nb, -1) for nb in near
            ]
        roots = watershed(
            e, near, real, saddle_depth, pixel_class if class_split == "peaks" else None
        )
        converged = jnp.array(True)  # Pointer jumping is bounded; no guard to hit.
        # Regions numbered in raster order of their roots, as `ccl.relabel` numbers them.
        is_root = real & (roots == jnp.arange(k))
        labels = jnp.where(real, jnp.cumsum(is_root, dtype=jnp.int32)[roots], 0)
    else:
        # Only the pixels in the list: past the budget the page reads as background.
        # A scatter of the list, not `position >= 0`: XLA would recompute that comparison
        # (and what it reads) inside each of the labelling's many consumers of the mask.
        kept_fg = jnp.zeros(h * w, bool).at[pixels].set(True, mode="drop").reshape(h, w)
        full, _, converged = ccl.label_with_status(kept_fg, max_iterations=ccl_max_iterations)
        labels = jnp.where(real, full.ravel()[jnp.where(real, pixels, 0)], 0)

    # Drop small regions and number the rest 1..k; ids above N are left out (overflow).
    sizes = jnp.zeros(k + 1, jnp.int32).at[labels].add(1, mode="drop")
    keep = (sizes >= min_size).at[0].set(False)
    new_id = jnp.cumsum(keep, dtype=jnp.int32)
    kept = new_id[-1]
    ids = jnp.where(keep[labels], new_id[labels], 0)
    ids = jnp.where(ids <= n, ids, 0)

    def segment(op, values, init, where_ids):
        """Per-detection reduction over pixels: [n + 1, ...]; row 0 collects the rest."""
        out = jnp.full((n + 1,) + values.shape[1:], init, values.dtype)
        return getattr(out.at[where_ids], op)(values, mode="drop")

    peak = segment("max", e, -jnp.inf, ids)
    core = ids > 0
    if saddle_depth > 0:
        core &= e > peak[ids] - saddle_depth
    core_ids = jnp.where(core, ids, 0)

    # Coarse pixel i samples full-resolution pixel i * s + s // 2 (see targets.py).
    coords = jnp.stack([pixels // w, pixels % w], -1) * stride + stride // 2 + 0.5
    if offset is not None:
        coords = coords + offset[rows]
    box = box[rows]
    sums = segment("add", jnp.concatenate([jnp.ones((k, 1)), coords, box], -1), 0.0, core_ids)
    count_core = jnp.maximum(sums[:, 0], 1.0)
    centre = sums[:, 1:3] / count_core[:, None]
    size = (
        sums[:, 3:5] / count_core[:, None]
        if box_size == "mean"
        else segment("max", box, 0.0, core_ids)
    )

    # Votes come from core pixels only, so only they are read: listed first, in order.
    num_classes = class_logits.shape[-1]
    core_rank = jnp.cumsum(core, dtype=jnp.int32)
    at = jnp.where(core, core_rank - 1, k)
    core_rows = jnp.zeros(k, jnp.int32).at[at].set(rows, mode="drop", unique_indices=True)
    voter_ids = jnp.zeros(k, jnp.int32).at[at].set(core_ids, mode="drop", unique_indices=True)
    if pixel_class is None:
        votes_for = read_classes(class_logits, core_rows, core_rank[-1])  # 0 past the core.
    else:  # Already read at every foreground pixel: list the core's, as above.
        votes_for = (
            jnp.zeros(k, jnp.int32).at[at].set(pixel_class, mode="drop", unique_indices=True)
        )
    votes = (
        jnp.zeros((n + 1) * num_classes, jnp.int32)
        .at[voter_ids * num_classes + votes_for]
        .add(votes_for > 0, mode="drop")
        .reshape(n + 1, num_classes)
    )
    voted = jnp.argmax(votes[:, 1:], axis=-1).astype(jnp.int32) + 1  # Background never wins.
    # Class confidence at the peak pixel (the first in raster order on ties) only.
    at_peak = (ids > 0) & (e == peak[ids])
    peak_pixel = segment("min", jnp.where(at_peak, jnp.arange(k), k - 1), k - 1, ids)
    peak_logits = class_logits[rows[peak_pixel]]
    class_confidence = jax.nn.softmax(peak_logits, axis=-1)[jnp.arange(n + 1), voted]

    cached = jnp.asarray(np.array(class_sizes, np.float32))[voted]
    size = jnp.where(cached > 0, cached, size)
    lo, hi = centre - size / 2, centre + size / 2
    if any(line_classes):
        pixel_lo, pixel_hi = coords - box / 2, coords + box / 2
        union_lo = segment("min", pixel_lo, jnp.inf, core_ids)
        union_hi = segment("max", pixel_hi, -jnp.inf, core_ids)
        along = jnp.stack([size[:, 0] > size[:, 1], size[:, 1] >= size[:, 0]], -1)
        along &= jnp.asarray(np.array(line_classes))[voted][:, None]
        lo, hi = jnp.where(along, union_lo, lo), jnp.where(along, union_hi, hi)
    boxes = jnp.concatenate([lo, hi], axis=-1)[1:]
    valid = jnp.arange(1, n + 1) <= kept
    levels = energy_logits.shape[-1]
    scores = jnp.clip(peak[1:] / (levels - 1), 0.0, 1.0) * class_confidence[1:]
    return (
        jnp.where(valid[:, None], boxes, 0.0),
        jnp.where(valid, voted[1:], 0),
        jnp.where(valid, scores, 0.0),
        valid,
        kept,
        converged,
        count > k,
    )


@functools.partial(
    jax.jit,
    static_argnames=(
        "stride",
        "cutoff",
        "threshold",
        "min_size",
        "max_detections",
        "saddle_depth",
        "class_split",
        "box_size",
        "ccl_max_iterations",
        "class_sizes",
        "line_classes",
        "max_foreground_pixels",
    ),
)
def _decode(energy_logits, class_logits, box, offset, **static) -> Detections:
    b, h, w, g, _ = energy_logits.shape
    n = static["max_detections"]

    # The only full-page pass: the threshold. The rest reads the maps at foreground pixels,
    # through flat [B, h * w * G, ...] views (free; moving the group axis would copy).
    fg = foreground(energy_logits, static["cutoff"], static["threshold"])
    fg = jnp.moveaxis(fg, 3, 1)  # [B, G, h, w].
    k = min(static["max_foreground_pixels"], h * w)
    pixels, count, position = first_pixels(fg.reshape(b * g, h * w), k)
    pixels, count = pixels.reshape(b, g, k), count.reshape(b, g)
    position = position.reshape(b, g, h, w)
    flat = [x.reshape(b, h * w * g, x.shape[-1]) for x in (energy_logits, class_logits, box)]
    flat_offset = None if offset is None else offset.reshape(b, h * w * g, 2)
    per_group = [
        jax.vmap(
            functools.partial(_decode_map, group=i, **static),
            in_axes=(0, 0, 0, 0, 0, 0, None if offset is None else 0),
        )(position[:, i], pixels[:, i], count[:, i], *flat, flat_offset)
        for i in range(g)
    ]
    boxes, classes, scores, valid, kept, converged, fg_overflow = (
        jnp.stack(x, axis=1) for x in zip(*per_group, strict=True)
    )
    # Pool the groups' detections and keep the N best-scoring ones, sorted by score.
    rank_key = jnp.where(valid, scores, -1.0).reshape(b, g * n)  # valid, scores: [B, G, N].
    _, best = jax.lax.top_k(rank_key, n)

    def pick(x):
        return jnp.take_along_axis(
            x.reshape((b, g * n) + x.shape[3:]), best.reshape((b, n) + (1,) * (x.ndim - 3)), axis=1
        )

    return Detections(
        boxes=pick(boxes),
        classes=pick(classes),
        scores=pick(scores),
        valid=pick(valid),
        overflow=(kept.reshape(b, g).sum(axis=1) > n) | fg_overflow.reshape(b, g).any(axis=1),
        ccl_converged=converged.reshape(b, g).all(axis=1),
    )

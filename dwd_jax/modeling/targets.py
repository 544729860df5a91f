"""Energy, class and box target maps ("markers") from padded boxes, jittable.

DWD_SPEC.md section 3, followed on purpose: every object gets fixed-size oval markers centred on
its box centre, whatever the box's size; energy falls linearly from 19 at the centre to 0 at the
oval's border, rounded to integers; class markers carry the model class and box markers the
box's (height, width). Overlaps: energy keeps the maximum, and each class- and box-marker pixel
belongs to the nearest marker centre (ties: the later object), so where the two markers have
one size a pixel's class and box describe the same object (the spec lets the later object's
class overwrite).
Box-marker pixels also carry the (dy, dx) from their own centre to that object's box centre,
which `config.model.offset_head` regresses (our extension; unused otherwise).

Where we differ, deliberately:
- Energy groups (docs/DESIGN.md): each object is drawn only into its class's group, so objects
  that share a centre by nature (a ledger line and its notehead) do not overwrite each other.
- Line objects (`config.targets.line_classes`: beams, slurs, ties, ...) get capsule markers:
  each oval swept along the box's long axis, from `r` inside one end to `r` inside the other
  (r = the energy oval's radius, `line_marker` // 2 for these), so the energy is a ridge as
  long as the object that falls to 0 at its ends, and an object shorter than 2 r keeps an
  oval. The ridge is `line_marker` wide, narrower than the oval, so that parallel lines (the
  beams of a sixteenth) keep a saddle between them. A pixel's box target is then the object's
  box cut to `line_reach` pixels either side of the pixel along that axis (its "local box"):
  a long slur cannot be regressed from its middle, but within `line_reach` of an end the end
  is in sight, and the decoder takes the union of the local boxes over the ridge (`decode`).
  A crop keeps a line object that crosses it (`input_pipeline.crop_page`), not only one whose
  centre it holds.
- Fitted classes (`config.targets.fitted_classes`) get an energy oval cut to their box: its
  half-axes are half the box's height and width, at least `fitted_min_radius` and at most the
  oval's radius, so the energy of a thin object falls to 0 within a few pixels of it. Ledger
  lines stacked a staff space apart (about 10 px at the default scale) otherwise share one
  ridge of 17-px ovals that the network does not cut. Class and box markers keep their sizes.
- Coarse strides are not computed at full resolution and then downsampled: the maps are
  evaluated directly at the full-resolution pixel each coarse pixel samples, `(i * s + s // 2)`,
  which is exactly the nearest-neighbour downsample of the full-resolution maps (a test proves
  it) at a fraction of the cost. Sampling the middle rather than the top-left pixel keeps a
  coarse pixel's target at its own centre.

Cost: a window of (marker // stride + 1)^2 pixels per object, and of (marker // stride + 1) x
max(h, w) per line object (at most `max_line_objects` of them; any others keep ovals), and
three scatters; no per-pixel loop over objects. benchmarks/bench_targets.py measures it
against a train step.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dwd_jax import classes as classes_lib


def _cone(distance, levels: int, xp=np):
    """i32 energy levels at `distance` (in marker radii) from a marker's centre: linear from
    `levels - 1` at 0 to 0 at 1, rounded half up (the spec's 9.5 -> 10; numpy and jax round
    halves to even). `xp` is numpy or jax.numpy."""
    return xp.floor((levels - 1) * xp.clip(1 - distance, 0, None) + 0.5).astype(xp.int32)


def energy_marker(size: int, levels: int) -> np.ndarray:
    """The oval energy marker: linear from `levels - 1` at the centre to 0 at the border.

    Args:
      size: odd marker size in pixels (at least 3).
      levels: number of energy levels (20 in the original: 0..19).

    Returns:
      i32[size, size]; e.g. `energy_marker(9, 20)[4]` is `0 5 10 14 19 14 10 5 0`.

    Raises:
      ValueError: if `size` is even or below 3 (a marker needs a centre pixel).
    """
    if size < 3 or size % 2 == 0:
        raise ValueError(
            f"marker size {size} must be odd and at least 3 (it is centred on one pixel): "
            "set config.targets.*_marker to an odd number"
        )
    radius = (size - 1) / 2
    offsets = np.arange(size) - radius
    distance = np.hypot(offsets[:, None], offsets[None, :])
    return _cone(distance / radius, levels)


def num_groups(config: ml_collections.ConfigDict) -> int:
    """G, the number of energy groups: `len(config.targets.energy_groups)`, at least 1."""
    return max(1, len(config.targets.energy_groups))


def group_of_class(config: ml_collections.ConfigDict) -> np.ndarray:
    """i32[C]: the energy group of every model class (unnamed classes and background: 0), C =
    `classes.num_model_classes(config)`.

    Raises:
      KeyError: naming an unknown class in `config.targets.energy_groups`.
      ValueError: if a class is named in two groups.
    """
    table = np.zeros(classes_lib.num_model_classes(config), np.int32)
    seen: dict[int, int] = {}
    for group, names in enumerate(config.targets.energy_groups):
        for name in names:
            model_class = classes_lib.model_class(config, name)
            if model_class in seen and seen[model_class] != group:
                raise ValueError(
                    f"class {name!r} is named in energy groups {seen[model_class]} and {group} of "
                    "config.targets.energy_groups: name each class in at most one group"
                )
            seen[model_class] = group
            table[model_class] = group
    return table


def _class_table(config: ml_collections.ConfigDict, field: str) -> np.ndarray:
    """bool[C]: whether each model class is named in `config.targets.<field>` (a config written
    before the field existed names none).

    Raises:
      KeyError: naming an unknown class.
    """
    table = np.zeros(classes_lib.num_model_classes(config), bool)
    for name in config.targets.get(field, ()):
        table[classes_lib.model_class(config, name)] = True
    return table


def line_classes(config: ml_collections.ConfigDict) -> np.ndarray:
    """bool[C]: whether each model class is a line class (`config.targets.line_classes`; a
    config written before line classes existed has none).

    Raises:
      KeyError: naming an unknown class.
    """
    return _class_table(config, "line_classes")


def fitted_classes(config: ml_collections.ConfigDict) -> np.ndarray:
    """bool[C]: whether each model class's energy oval is cut to its box
    (`config.targets.fitted_classes`; none in a config written before they existed).

    Raises:
      KeyError: naming an unknown class.
    """
    return _class_table(config, "fitted_classes")


def make_targets(
    boxes: jax.Array,
    classes: jax.Array,
    valid: jax.Array,
    *,
    image_shape: tuple[int, int],
    stride: int,
    config: ml_collections.ConfigDict,
) -> dict[str, jax.Array]:
    """Target maps of a padded batch at one output stride (jittable; call inside the step).

    Args:
      boxes: f32[B, M, 4] `[y0, x0, y1, x1]` in pixels of the model input.
      classes: i32[B, M] model classes (1..136).
      valid: bool[B, M], False on padding.
      image_shape: (H, W) of the model input; maps are (H // stride, W // stride).
      stride: output stride.
      config: the run config (reads `config.targets`).

    Returns:
      `{"energy": i32[B, h, w, G], "class": i32[B, h, w, G], "box": f32[B, h, w, G, 2],
      "offset": f32[B, h, w, G, 2], "box_mask": bool[B, h, w, G]}`: energy levels, model
      class (0 outside class markers), box (height, width) in model-input pixels (a line
      object's local box, see the module docstring), the offset
      (dy, dx) from the centre of the full-resolution pixel a coarse pixel samples,
      `i * stride + stride // 2 + 0.5`, to the box centre, and where box markers lie (box
      and offset are supervised there; the class is supervised where it is not 0, on the
      class markers). Box and offset are 0 off the box markers.
    """
    if (
        boxes.ndim != 3
        or boxes.shape[-1] != 4
        or classes.shape != boxes.shape[:2]
        or valid.shape != boxes.shape[:2]
    ):
        raise ValueError(
            f"make_targets: boxes {boxes.shape}, classes {classes.shape} and valid {valid.shape} "
            "must be [B, M, 4], [B, M] and [B, M] (pad every image's objects to M = "
            "config.data.max_objects)"
        )
    t = config.targets
    lines = tuple(bool(x) for x in line_classes(config))
    line_marker = int(t.get("line_marker", t.energy_marker))
    if any(lines):
        energy_marker(line_marker, int(t.energy_levels))  # Refuses an even or tiny width.
    fitted = tuple(bool(x) for x in fitted_classes(config))
    fitted_min_radius = float(t.get("fitted_min_radius", 0.0))
    if any(fitted) and not 1.0 <= fitted_min_radius <= int(t.energy_marker) // 2:
        raise ValueError(
            f"config.targets.fitted_min_radius is {fitted_min_radius!r}: a fitted oval's least "
            f"half-axis must lie in [1, {int(t.energy_marker) // 2}] px (the energy oval's radius)"
        )
    return _make_targets(
        boxes,
        classes,
        valid,
        image_shape=tuple(int(s) for s in image_shape),
        stride=int(stride),
        levels=int(t.energy_levels),
        marker_sizes=(int(t.energy_marker), int(t.class_marker), int(t.box_marker)),
        groups=tuple(int(g) for g in group_of_class(config)),
        num_groups=num_groups(config),
        lines=lines,
        line_marker=line_marker,
        line_reach=float(t.get("line_reach", 0.0)),
        max_lines=int(t.get("max_line_objects", 0)),
        fitted=fitted,
        fitted_min_radius=fitted_min_radius,
    )


def _window(centre: jax.Array, radius: int, stride: int, size: int):
    """Coarse indices covering `centre +- radius` and their full-resolution offsets.

    Args:
      centre: i32[M] full-resolution centre pixel.

    Returns:
      index: i32[M, K] coarse indices, K = 2 * radius // stride + 1.
      offset: i32[M, K] sampled full-resolution pixel minus the centre.
      inside: bool[M, K] offset within the marker and index within [0, size).
    """
    k = 2 * radius // stride + 1
    first = -((radius + stride // 2 - centre) // stride)  # ceil((centre - radius - s//2) / s)
    index = first[:, None] + jnp.arange(k, dtype=jnp.int32)
    offset = index * stride + stride // 2 - centre[:, None]
    inside = (jnp.abs(offset) <= radius) & (index >= 0) & (index < size)
    return index, offset, inside


def _splat(cy, cx, groups, ok, marker: np.ndarray, shape, stride, axes=None):
    """Flat target indices and marker values of every object's marker window.

    Args:
      axes: optional f32[M, 2] (y, x) half-axes of each object's oval, at most the marker's
        radius, or 0 where the object takes `marker` itself: the value is then `marker`'s
        profile over the elliptic distance (fitted classes).

    Returns:
      flat: i32[M, K, K] index into the flattened [h, w, G] map; out of range (dropped by the
        scatters) where the pixel is outside the map or the marker, or the object is padding.
      value: i32[M, K, K] marker value at that pixel.
      dist2: i32[M, K, K] squared full-resolution distance to the centre.
    """
    h, w, g = shape
    radius = marker.shape[0] // 2
    iy, oy, in_y = _window(cy, radius, stride, h)
    ix, ox, in_x = _window(cx, radius, stride, w)
    table = jnp.asarray(marker)
    value = table[
        jnp.clip(oy + radius, 0, 2 * radius)[:, :, None],
        jnp.clip(ox + radius, 0, 2 * radius)[:, None, :],
    ]
    if axes is not None:
        ry, rx = (jnp.maximum(axes[:, i, None, None], 1e-6) for i in (0, 1))
        ellipse = jnp.sqrt((oy[:, :, None] / ry) ** 2 + (ox[:, None, :] / rx) ** 2)
        fitted = _cone(ellipse, int(marker.max()) + 1, jnp)
        value = jnp.where((axes[:, 0] > 0)[:, None, None], fitted, value)
    keep = in_y[:, :, None] & in_x[:, None, :] & ok[:, None, None] & (value > 0)
    flat = (iy[:, :, None] * w + ix[:, None, :]) * g + groups[:, None, None]
    flat = jnp.where(keep, flat, h * w * g)
    dist2 = oy[:, :, None] ** 2 + ox[:, None, :] ** 2
    return flat.reshape(-1), value.reshape(-1), dist2.reshape(-1)


def _capsule_values(radius: int, levels: int) -> np.ndarray:
    """i32[2 r^2 + 1]: the oval marker's value at each squared distance from its centre, so a
    capsule made of integer offsets takes exactly `energy_marker`'s values."""
    return _cone(np.sqrt(np.arange(2 * radius * radius + 1)) / radius, levels)


def _capsule_splat(cy, cx, horizontal, half, groups, ok, radius, levels, shape, stride):
    """Like `_splat` for line objects: an oval of `radius` swept `half` pixels either side of
    the centre along each object's long axis.

    Args:
      cy, cx: i32[L] full-resolution centre pixel; horizontal: bool[L] long axis is x;
      half: i32[L] the sweep (0: the plain oval); groups: i32[L]; ok: bool[L].

    Returns:
      flat, value, dist2: as `_splat`, for a window of K across x max(h, w) along, where dist2
      is the squared distance to the swept segment.
    """
    h, w, g = shape
    along_size, across_size = jnp.where(horizontal, w, h), jnp.where(horizontal, h, w)
    across_centre, along_centre = jnp.where(horizontal, cy, cx), jnp.where(horizontal, cx, cy)
    i_across, o_across, _ = _window(across_centre, radius, stride, max(h, w))  # [L, K]
    i_along = jnp.arange(max(h, w), dtype=jnp.int32)[None, :]  # [1, N]
    o_along = i_along * stride + stride // 2 - along_centre[:, None]  # [L, N]
    beyond = jnp.maximum(jnp.abs(o_along) - half[:, None], 0)
    near = (jnp.abs(o_across) <= radius)[:, :, None] & (beyond <= radius)[:, None, :]
    dist2 = jnp.where(near, o_across[:, :, None] ** 2 + beyond[:, None, :] ** 2, 0)
    table = jnp.asarray(_capsule_values(radius, levels))
    value = jnp.where(near, table[jnp.clip(dist2, 0, table.shape[0] - 1)], 0)
    keep = (
        near
        & (value > 0)
        & ok[:, None, None]
        & ((i_across >= 0) & (i_across < across_size[:, None]))[:, :, None]
        & (i_along < along_size[:, None])[:, None, :]
    )
    row = jnp.where(horizontal[:, None, None], i_across[:, :, None], i_along[:, None, :])
    col = jnp.where(horizontal[:, None, None], i_along[:, None, :], i_across[:, :, None])
    flat = (row * w + col) * g + groups[:, None, None]
    flat = jnp.where(keep, flat, h * w * g)
    return flat.reshape(-1), value.reshape(-1), dist2.reshape(-1)


@functools.partial(
    jax.jit,
    static_argnames=(
        "image_shape",
        "stride",
        "levels",
        "marker_sizes",
        "groups",
        "num_groups",
        "lines",
        "line_marker",
        "line_reach",
        "max_lines",
        "fitted",
        "fitted_min_radius",
    ),
)
def _make_targets(
    boxes,
    classes,
    valid,
    *,
    image_shape,
    stride,
    levels,
    marker_sizes,
    groups,
    num_groups,
    lines,
    line_marker,
    line_reach,
    max_lines,
    fitted,
    fitted_min_radius,
):
    num_g = num_groups
    h, w = image_shape[0] // stride, image_shape[1] // stride
    energy_m, class_m, box_m = (energy_marker(s, levels) for s in marker_sizes)
    group_table = jnp.asarray(np.array(groups, np.int32))
    line_table = jnp.asarray(np.array(lines, bool))
    fitted_table = jnp.asarray(np.array(fitted, bool))

    def one_image(boxes, classes, valid):
        m = classes.shape[0]
        cy = jnp.floor((boxes[:, 0] + boxes[:, 2]) / 2).astype(jnp.int32)
        cx = jnp.floor((boxes[:, 1] + boxes[:, 3]) / 2).astype(jnp.int32)
        group = group_table[jnp.clip(classes, 0, len(group_table) - 1)]
        size = h * w * num_g
        hw = jnp.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=-1)
        horizontal = hw[:, 1] >= hw[:, 0]
        # The first `max_lines` line objects get capsules (listed as `line_index`); the rest,
        # and every other object, ovals.
        is_line = valid & line_table[jnp.clip(classes, 0, len(line_table) - 1)]
        lines_n = min(max_lines, m) if any(lines) else 0
        line_index = jnp.argsort(~is_line, stable=True)[:lines_n]
        capsule = jnp.zeros(m, bool).at[line_index].set(is_line[line_index])
        line_radius = line_marker // 2
        along_half = jnp.where(horizontal, hw[:, 1], hw[:, 0]) / 2
        sweep = jnp.maximum(jnp.round(along_half).astype(jnp.int32) - line_radius, 0)

        axes = None
        if any(fitted):
            radius = energy_m.shape[0] // 2
            fit = fitted_table[jnp.clip(classes, 0, len(fitted_table) - 1)]
            axes = jnp.clip(hw / 2, fitted_min_radius, radius) * fit[:, None]

        def splat(marker, line_radius, axes=None):
            flat, value, dist2 = _splat(
                cy, cx, group, valid & ~capsule, marker, (h, w, num_g), stride, axes
            )
            owner = jnp.repeat(jnp.arange(m, dtype=jnp.int32), flat.size // m)
            if lines_n:
                i = line_index
                line_flat, line_value, line_dist2 = _capsule_splat(
                    cy[i], cx[i], horizontal[i], sweep[i], group[i], capsule[i],
                    line_radius, levels, (h, w, num_g), stride,
                )  # fmt: skip
                flat = jnp.concatenate([flat, line_flat])
                value = jnp.concatenate([value, line_value])
                dist2 = jnp.concatenate([dist2, line_dist2])
                owner = jnp.concatenate([owner, jnp.repeat(i, line_flat.size // lines_n)])
            return flat, value, dist2, owner

        flat, value, _, _ = splat(energy_m, line_radius, axes)
        energy = jnp.zeros(size, jnp.int32).at[flat].max(value, mode="drop")

        def nearest_owner(marker):
            """Nearest centre wins (ties: the later object): scatter-min of distance, then
            index. Returns bool[size] marker pixels and i32[size] their object (0 off them)."""
            flat, _, dist2, owner = splat(marker, marker.shape[0] // 2)
            key = dist2 * m + (m - 1 - owner)
            nearest = jnp.full(size, jnp.iinfo(jnp.int32).max).at[flat].min(key, mode="drop")
            hit = nearest < jnp.iinfo(jnp.int32).max
            return hit, jnp.where(hit, m - 1 - nearest % m, 0)

        hit, owner = nearest_owner(class_m)
        class_map = jnp.where(hit, classes[owner], 0)

        box_mask, owner = nearest_owner(box_m)
        cell = jnp.arange(size, dtype=jnp.int32) // num_g
        sampled = jnp.stack([cell // w, cell % w], -1) * stride + (stride // 2 + 0.5)
        lo, hi = boxes[owner, :2], boxes[owner, 2:]
        if lines_n:
            # A line object's box cut to `line_reach` either side of the pixel along its axis.
            along = jnp.stack([~horizontal[owner], horizontal[owner]], -1) & capsule[owner, None]
            lo = jnp.where(along, jnp.maximum(lo, sampled - line_reach), lo)
            hi = jnp.where(along, jnp.minimum(hi, sampled + line_reach), hi)
        box = jnp.where(box_mask[:, None], hi - lo, 0.0)
        offset = jnp.where(box_mask[:, None], (lo + hi) / 2 - sampled, 0.0)
        return {
            "energy": energy.reshape(h, w, num_g),
            "class": class_map.reshape(h, w, num_g),
            "box": box.reshape(h, w, num_g, 2),
            "offset": offset.reshape(h, w, num_g, 2),
            "box_mask": box_mask.reshape(h, w, num_g),
        }

    return jax.vmap(one_image)(boxes, classes.astype(jnp.int32), valid)

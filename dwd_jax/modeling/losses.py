"""Per-head losses, the normalised combined loss and the stage-wise schedule (spec section 4).

All functions are pure and jittable:
- `head_losses(outputs, targets, config)`: energy softmax cross-entropy on every pixel
  (rare classes' class-marker pixels weighted up by `config.loss.energy_class_balance`), class
  cross-entropy on class-marker pixels (where the class target is not 0; weighted likewise by
  `config.loss.class_loss_balance`) and box squared error on box-marker pixels (`box_mask`),
  each averaged over the
  strides `config.loss.<head>_strides` it is supervised at; with an offset head
  (`config.model.offset_head`) also the offsets' Huber loss on marker pixels (errors in
  pixels or in sides of the box, `config.loss.offset_units`), as a fourth
  head with its own normaliser (inside the box loss, its larger values would take the
  running-mean weight away from the sizes).
- `total_loss(losses, normaliser, step, config)`: the loss the optimiser sees at `step`. The
  schedule (`config.loss.schedule`) picks one head per stage; the "combined" stage sums
  f_i * L_i / mean(last `normaliser_window` values of L_i) with f = `combined_factors`, the
  normalisers held constant (stop_gradient). The last values live in a small ring buffer
  (`Normaliser`) passed in and out, so the step stays a pure function. The stage is looked up
  from the traced step, so a stage change never recompiles.

Masked means pool over the whole batch (sum of per-pixel losses / number of marker pixels):
a page without objects contributes nothing, and a batch without any marker pixel gives 0 (not
NaN) with zero gradient.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from dwd_jax import classes as classes_lib
from dwd_jax.modeling import heads as heads_lib

# Order of the per-head weight and normaliser arrays: every declared head. A head a config
# does not enable (the offset head without `config.model.offset_head`) has a loss of 0, which
# a combined stage never normalises by and which adds nothing.
HEADS = heads_lib.NAMES
STAGES = HEADS + ("combined",)

# `offset_loss`'s floor on a box side (input pixels) when errors are counted in sides: below a
# pixel the ink's grey levels no longer say where a line lies.
MIN_OFFSET_SIDE = 1.0

# `config.loss.offset_units`: the offset error in input "pixels" or in "box" sides.
OFFSET_UNITS = ("pixels", "box")


def energy_loss(logits: jax.Array, target: jax.Array, weight: jax.Array | None = None) -> jax.Array:
    """Softmax cross-entropy of the energy levels, averaged over every pixel and group.

    Args:
      logits: f32[B, h, w, G, L].
      target: i32[B, h, w, G], levels 0..L-1 (0 = background).
      weight: f32[B, h, w, G] per-pixel weights (`class_balance`), or None for 1 everywhere.

    Returns:
      f32[] mean (weighted) cross-entropy over all pixels.
    """
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    ce = -jnp.take_along_axis(logp, target[..., None], axis=-1)[..., 0]
    return (ce if weight is None else ce * weight).mean()


def class_balance(
    classes: jax.Array, mask: jax.Array, power: float, num_classes: int
) -> jax.Array:
    """Per-pixel weights that give a batch's rare classes more say: n_c ** -power on the
    marker pixels of class c, where n_c counts class c's marker pixels in the batch, scaled
    so that the marker pixels' mean weight is 1; 1 everywhere else.

    Markers have one size, so n_c is proportional to the number of class-c objects: with
    power 1 every class present has the same total weight, with 0 each pixel counts once (the
    original). A crop with 80 noteheads and one staccato dot weighs the dot's pixels 8x a
    notehead's at power 0.5.

    Args:
      classes: i32[B, h, w, G] target classes (`make_targets`'s "class").
      mask: bool[B, h, w, G] marker pixels (`class_mask` of the targets).
      power: the exponent, >= 0.
      num_classes: C, the model classes (`classes.num_model_classes`).

    Returns:
      f32[B, h, w, G].
    """
    counts = jnp.zeros(num_classes, jnp.float32).at[classes].add(mask.astype(jnp.float32))
    raw = jnp.where(mask, jnp.maximum(counts[classes], 1.0) ** -power, 0.0)
    mean = raw.sum() / jnp.maximum(mask.sum(), 1).astype(jnp.float32)
    return jnp.where(mask, raw / jnp.maximum(mean, 1e-12), 1.0)


def _masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of `values` where `mask`, 0 if the mask is empty. values: f32[...], mask: bool[...]."""
    count = mask.sum()
    return jnp.where(mask, values, 0.0).sum() / jnp.maximum(count, 1).astype(jnp.float32)


def class_loss(
    logits: jax.Array, target: jax.Array, mask: jax.Array, weight: jax.Array | None = None
) -> jax.Array:
    """Softmax cross-entropy of the model classes on marker pixels.

    Args:
      logits: f32[B, h, w, G, C] (C = 137).
      target: i32[B, h, w, G] model classes.
      mask: bool[B, h, w, G], the marker pixels.
      weight: f32[B, h, w, G] per-pixel weights with mean 1 over the mask (`class_balance`),
        or None for 1 everywhere.

    Returns:
      f32[] mean (weighted) cross-entropy over marker pixels (0 when there are none).
    """
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    ce = -jnp.take_along_axis(logp, target[..., None], axis=-1)[..., 0]
    return _masked_mean(ce if weight is None else ce * weight, mask)


def box_loss(
    pred: jax.Array, target: jax.Array, mask: jax.Array, *, log: bool = False
) -> jax.Array:
    """Squared error of (height, width), averaged over both and over marker pixels.

    Args:
      pred: f32[B, h, w, G, 2] predicted (height, width) in input pixels.
      target: f32[B, h, w, G, 2].
      mask: bool[B, h, w, G], the marker pixels.
      log: compare log sizes (`config.model.box_head = "log"`) instead of pixels (the
        original); sizes are floored at half a pixel first.

    Returns:
      f32[] mean squared error over marker pixels (0 when there are none).
    """
    pred = pred.astype(jnp.float32)
    if log:
        pred, target = (jnp.log(jnp.maximum(x, 0.5)) for x in (pred, target))
    se = jnp.square(pred - target).mean(axis=-1)
    return _masked_mean(se, mask)


def offset_loss(
    pred: jax.Array,
    target: jax.Array,
    mask: jax.Array,
    size: jax.Array | None = None,
    max_side: float = 0.0,
) -> jax.Array:
    """Huber loss (delta 1) of the centre offsets (dy, dx), averaged over both and over
    marker pixels: quadratic within one unit, where the precision a thin symbol's IoU needs is
    decided, and linear beyond, so a crowded marker's far-off owner does not dominate.

    Args:
      pred: f32[B, h, w, G, 2] predicted offsets in input pixels.
      target: f32[B, h, w, G, 2] (`targets.make_targets`'s "offset").
      mask: bool[B, h, w, G], the marker pixels.
      size: f32[B, h, w, G, 2] the marker's box (height, width) (`targets.make_targets`'s
        "box"), or None. With it each axis's error is counted in sides of the box on that
        axis (sides floored at `MIN_OFFSET_SIDE` pixels): a box moved by d along a side s
        keeps an IoU of about 1 - 2 d / s, so a stem's 0.3-pixel miss across its 1.3-pixel
        width then weighs as what it costs, not as a notehead's. None counts pixels.
      max_side: with `size`, sides above this many pixels count as this many (0: no cap), so
        only the axes thinner than it weigh more than in pixels: a stem's width, a ledger
        line's height, while a notehead's centre keeps its weight relative to a beam's.

    Returns:
      f32[] mean loss over marker pixels (0 when there are none).
    """
    pred = pred.astype(jnp.float32)
    if size is not None:
        side = jnp.maximum(size, MIN_OFFSET_SIDE)
        if max_side:
            side = jnp.minimum(side, max(max_side, MIN_OFFSET_SIDE))
        pred, target = pred / side, target / side
    huber = optax.losses.huber_loss(pred, target, delta=1.0)
    return _masked_mean(huber.mean(axis=-1), mask)


def _offset(o, t, config) -> jax.Array:
    units = config.loss.get("offset_units", "pixels")
    if units not in OFFSET_UNITS:
        raise ValueError(
            f"config.loss.offset_units is {units!r}: use 'pixels' (errors in input pixels) or "
            "'box' (errors in sides of the box, as IoU counts them)."
        )
    max_side = float(config.loss.get("offset_max_side", 0.0))
    if max_side and units != "box":
        raise ValueError(
            f"config.loss.offset_max_side is {max_side}, which caps box sides, but "
            f"config.loss.offset_units is {units!r}: set offset_units='box' or offset_max_side=0."
        )
    size = t["box"] if units == "box" else None
    return offset_loss(o["offset"], t["offset"], t["box_mask"], size, max_side)


def loss_strides(config: ml_collections.ConfigDict) -> dict[str, tuple[int, ...]]:
    """The strides each head is supervised at, checked against `config.model.output_strides`.

    Returns:
      {"energy": strides, "class": strides, "box": strides, "offset": strides} ("offset" only
      with `config.model.offset_head`); `targets.make_targets` is needed at the union.

    Raises:
      ValueError: naming the `config.loss` field with a stride the model does not output, or
        box strides without class supervision under `config.model.class_size_prior`.
    """
    outputs = tuple(config.model.output_strides)
    strides = {}
    for head, _ in heads_lib.active(config):
        field = f"{head}_strides"
        value = tuple(config.loss[field])
        if not value or any(s not in outputs for s in value):
            raise ValueError(
                f"config.loss.{field} = {value!r} must be a non-empty subset of "
                f"config.model.output_strides = {outputs!r}; add the stride to the model's "
                f"outputs or drop it from the loss."
            )
        strides[head] = value
    unread = set(strides["box"]) - set(strides["class"])
    if config.model.class_size_prior and unread:
        raise ValueError(
            f"config.model.class_size_prior reads the class head at every box stride, but "
            f"config.loss.class_strides = {strides['class']!r} leaves box stride(s) "
            f"{sorted(unread)} without class supervision: add them to config.loss.class_strides "
            "or drop them from config.loss.box_strides."
        )
    return strides


def class_mask(t: Mapping[str, jax.Array]) -> jax.Array:
    """bool[B, h, w, G]: the class-marker pixels of `targets.make_targets`'s maps, where the
    class target is a model class (1..136) rather than 0."""
    return t["class"] > 0


def _balance(t: Mapping[str, jax.Array], config: ml_collections.ConfigDict, field: str):
    """`class_balance` weights under `config.loss[field]`, or None where it is 0."""
    power = float(config.loss[field])
    if not power:
        return None
    return class_balance(t["class"], class_mask(t), power, classes_lib.num_model_classes(config))


# Each head's loss at one stride, by head name (`heads.NAMES`): (outputs at the stride,
# targets at the stride, config) -> f32[].
PER_STRIDE: dict[str, Callable[..., jax.Array]] = {
    "energy": lambda o, t, config: energy_loss(
        o["energy"], t["energy"], _balance(t, config, "energy_class_balance")
    ),
    "class": lambda o, t, config: class_loss(
        o["class"], t["class"], class_mask(t), _balance(t, config, "class_loss_balance")
    ),
    "box": lambda o, t, config: box_loss(
        o["box"], t["box"], t["box_mask"], log=config.model.box_head == "log"
    ),
    "offset": _offset,
}
if set(PER_STRIDE) != set(heads_lib.NAMES):
    raise ImportError(f"losses.PER_STRIDE {sorted(PER_STRIDE)} != heads.NAMES {heads_lib.NAMES}")


def head_losses(
    outputs: dict[int, dict[str, jax.Array]],
    targets: dict[int, dict[str, jax.Array]],
    config: ml_collections.ConfigDict,
) -> dict[str, jax.Array]:
    """The per-head losses, each averaged over its supervised strides (spec section 4).

    Args:
      outputs: `model.apply` output, {stride: {"energy": f32[B, h, w, G, L],
        "class": f32[B, h, w, G, C], "box": f32[B, h, w, G, 2]}}.
      targets: {stride: `targets.make_targets(...)` at that stride}, i.e. {"energy":
        i32[B, h, w, G], "class": i32[B, h, w, G], "box": f32[B, h, w, G, 2],
        "offset": f32[B, h, w, G, 2], "box_mask": bool[B, h, w, G]}, for every stride in
        `loss_strides(config)`.
      config: the experiment config (`config.loss`, `config.model`).

    Returns:
      {head: f32[]} for every name in `HEADS` (0 for a head the config does not enable).
    """
    for field in ("energy_class_balance", "class_loss_balance"):
        if float(config.loss[field]) < 0:
            raise ValueError(
                f"config.loss.{field} = {float(config.loss[field])!r} must be >= 0: 0 weighs "
                "every pixel alike (the original); larger values weigh rare classes' markers up."
            )
    losses = {head: jnp.zeros((), jnp.float32) for head in HEADS}
    for head, strides in loss_strides(config).items():
        missing = [s for s in strides if s not in targets]
        if missing:
            raise ValueError(
                f"head_losses: no targets at stride(s) {missing} for the {head} loss "
                f"(config.loss.{head}_strides); build targets at every stride of loss_strides()."
            )
        terms = [PER_STRIDE[head](outputs[s], targets[s], config) for s in strides]
        losses[head] = sum(terms) / len(terms)
    return losses


class Normaliser(NamedTuple):
    """Ring buffer of the last per-head losses for the combined loss.

    history: f32[4, window], rows in `HEADS` order; count: i32[4] values pushed so far per
    head. A loss of exactly 0 (a batch without marker pixels: a blank crop) is not pushed: it
    measures nothing, and a window holding it would shrink the divisor and blow up the next
    real batch's loss (seen as 10-100x loss spikes with batch-1 crops).
    """

    history: jax.Array
    count: jax.Array


def init_normaliser(window: int) -> Normaliser:
    """An empty normaliser holding up to `window` values per head."""
    return Normaliser(
        jnp.zeros((len(HEADS), window), jnp.float32), jnp.zeros(len(HEADS), jnp.int32)
    )


def _schedule_table(
    schedule: tuple[tuple[str, int], ...], factors: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Static per-stage tables: ends i32[S], weights f32[S, 3], normalised f32[S]."""
    ends, weights, normalised = [], [], []
    if len(factors) != len(HEADS):
        raise ValueError(
            f"config.loss.combined_factors = {tuple(factors)!r} must give one factor per head "
            f"{HEADS}, e.g. (2.0, 1.0, 1.0, 1.0)"
        )
    total = 0
    for i, (stage, steps) in enumerate(schedule):
        if stage not in STAGES or int(steps) <= 0:
            raise ValueError(
                f"config.loss.schedule[{i}] = {(stage, steps)!r}: the stage must be one of "
                f"{STAGES} with a positive number of steps."
            )
        total += int(steps)
        ends.append(total)
        if stage == "combined":
            weights.append(np.asarray(factors, np.float32))
        else:
            weights.append(np.asarray([h == stage for h in HEADS], np.float32))
        normalised.append(float(stage == "combined"))
    if not ends:
        raise ValueError("config.loss.schedule is empty; give at least one (stage, steps) pair.")
    return np.asarray(ends), np.stack(weights), np.asarray(normalised, np.float32)


def schedule_weights(
    step: jax.Array, schedule: tuple[tuple[str, int], ...], factors: tuple[float, ...]
) -> tuple[jax.Array, jax.Array]:
    """The head weights of the stage that `step` falls in (a traced lookup, no recompiles).

    Stage k covers steps [end_{k-1}, end_k); steps past the schedule stay in the last stage.

    Args:
      step: i32[] optimiser step, counted from 0.
      schedule: ((stage, steps), ...), stage in `STAGES`.
      factors: (f_energy, f_class, f_box, f_offset) of the combined stage.

    Returns:
      (weights f32[4] in `HEADS` order, normalised f32[]: 1.0 in a combined stage, else 0.0).
    """
    ends, weights, normalised = _schedule_table(tuple(schedule), tuple(factors))
    stage = jnp.minimum(jnp.searchsorted(ends, step, side="right"), len(ends) - 1)
    return jnp.asarray(weights)[stage], jnp.asarray(normalised)[stage]


def total_loss(
    losses: dict[str, jax.Array],
    normaliser: Normaliser,
    step: jax.Array,
    config: ml_collections.ConfigDict,
) -> tuple[jax.Array, Normaliser]:
    """The scheduled loss to optimise at `step`, and the normaliser with this step's losses.

    In a single-head stage this is that head's raw loss. In the combined stage it is
    sum_i f_i * L_i / n_i, with n_i the mean of L_i over the last `normaliser_window` steps
    before this one (this step's own value at the very first step), held constant (spec
    section 4). Every head's non-zero loss is pushed every step, so the window is full when a
    combined stage starts.

    Args:
      losses: {"energy": f32[], "class": f32[], "box": f32[], "offset": f32[]} from
        `head_losses`.
      normaliser: the ring buffer from the previous step (`init_normaliser` at step 0).
      step: i32[] optimiser step, counted from 0.
      config: the experiment config (`config.loss`).

    Returns:
      (loss f32[], updated normaliser).
    """
    values = jnp.stack([losses[h] for h in HEADS]).astype(jnp.float32)
    history, count = normaliser
    window = history.shape[1]
    filled = jnp.arange(window)[None, :] < count[:, None]  # [heads, window]
    past_mean = jnp.where(filled, history, 0.0).sum(axis=1) / jnp.maximum(filled.sum(axis=1), 1)
    scale = jax.lax.stop_gradient(jnp.where(count > 0, past_mean, values))
    weights, normalised = schedule_weights(step, config.loss.schedule, config.loss.combined_factors)
    # A head whose recent losses are all 0 (no marker pixels yet) is left unscaled.
    divisor = jnp.where((normalised > 0) & (scale > 0), scale, 1.0)
    loss = jnp.sum(weights * values / divisor)
    measured = values > 0
    slot = jax.nn.one_hot(count % window, window, dtype=bool) & measured[:, None]  # [heads, win]
    new = Normaliser(
        jnp.where(slot, jax.lax.stop_gradient(values)[:, None], history),
        count + measured.astype(jnp.int32),
    )
    return loss, new

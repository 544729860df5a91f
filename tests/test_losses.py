"""Losses: hand-computed values on tiny arrays, empty masks, the normaliser and the schedule."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from dwd_jax.modeling import heads, losses


def test_energy_loss_matches_hand_computed_cross_entropy():
    # Pixel 1: uniform over 4 levels -> log 4. Pixel 2: logits (0, ln 3, 0, 0), target 1 ->
    # p = 3/6 -> log 2.
    logits = jnp.array([[0.0, 0.0, 0.0, 0.0], [0.0, math.log(3.0), 0.0, 0.0]])
    logits = logits.reshape(1, 1, 2, 1, 4)
    target = jnp.array([2, 1]).reshape(1, 1, 2, 1)
    assert float(losses.energy_loss(logits, target)) == pytest.approx(
        (math.log(4.0) + math.log(2.0)) / 2, rel=1e-6
    )


def test_class_loss_counts_only_marker_pixels_over_the_batch():
    logits = jnp.zeros((2, 1, 2, 1, 137)).at[0, 0, 0, 0, 5].set(math.log(137.0))
    target = jnp.full((2, 1, 2, 1), 5)
    mask = jnp.array([[True, False], [True, False]]).reshape(2, 1, 2, 1)
    # Image 0: p(5) = 137 / (137 + 136) ; image 1: uniform -> log 137. Unmasked pixels ignored.
    expected = (-math.log(137.0 / 273.0) + math.log(137.0)) / 2
    assert float(losses.class_loss(logits, target, mask)) == pytest.approx(expected, rel=1e-6)


def test_box_loss_is_masked_mean_squared_error():
    pred = jnp.array([[10.0, 4.0], [100.0, 100.0]]).reshape(1, 1, 2, 1, 2)
    target = jnp.array([[7.0, 8.0], [0.0, 0.0]]).reshape(1, 1, 2, 1, 2)
    mask = jnp.array([True, False]).reshape(1, 1, 2, 1)
    assert float(losses.box_loss(pred, target, mask)) == (9.0 + 16.0) / 2


def test_empty_mask_gives_zero_loss_and_zero_finite_gradient():
    logits = jax.random.normal(jax.random.key(0), (1, 3, 3, 1, 137))
    box = jax.random.normal(jax.random.key(1), (1, 3, 3, 1, 2))
    target = jnp.zeros((1, 3, 3, 1), jnp.int32)
    mask = jnp.zeros((1, 3, 3, 1), bool)

    def both(logits, box):
        return losses.class_loss(logits, target, mask) + losses.box_loss(box, box + 1, mask)

    value, grads = jax.value_and_grad(both, argnums=(0, 1))(logits, box)
    assert float(value) == 0.0
    for g in grads:
        assert np.all(np.asarray(g) == 0.0)


def _config(**loss):
    c = default.get_config()
    c.model.box_head = "linear"  # Box errors below are in pixels.
    c.model.output_strides = (1, 8, 16)
    c.loss.energy_strides = (1, 8, 16)
    c.loss.class_strides = (1,)
    c.loss.box_strides = (1, 8)
    c.loss.offset_strides = (1, 8)
    c.model.offset_head = False  # Unless a test gives its outputs offsets.
    c.model.class_size_prior = False  # Box strides here lack class supervision.
    c.loss.schedule = (("energy", 3), ("class", 2), ("combined", 4))
    c.loss.update(loss)
    return c


def _outputs_and_targets(strides, energy_ce):
    """Outputs whose energy cross-entropy at stride s is energy_ce[s] (2 levels, target 0)."""
    outputs, targets = {}, {}
    for s in strides:
        # CE of target 0 with logits (0, a) is log(1 + e^a); pick a for the wanted CE.
        a = math.log(math.expm1(energy_ce[s]))
        shape = (1, 2, 2, 1)
        outputs[s] = {
            "energy": jnp.broadcast_to(jnp.array([0.0, a]), shape + (2,)),
            "class": jnp.zeros(shape + (137,)),
            "box": jnp.full(shape + (2,), float(s)),
        }
        targets[s] = {
            "energy": jnp.zeros(shape, jnp.int32),
            "class": jnp.ones(shape, jnp.int32),
            "box": jnp.zeros(shape + (2,)),
            "box_mask": jnp.ones(shape, bool),
        }
    return outputs, targets


def test_head_losses_average_over_the_supervised_strides():
    c = _config()
    outputs, targets = _outputs_and_targets((1, 8, 16), {1: 0.5, 8: 1.0, 16: 3.0})
    got = losses.head_losses(outputs, targets, c)
    assert tuple(got) == heads.NAMES  # A loss for every declared head (0 where disabled).
    assert float(got["offset"]) == 0.0
    assert float(got["energy"]) == pytest.approx((0.5 + 1.0 + 3.0) / 3, rel=1e-5)
    assert float(got["class"]) == pytest.approx(math.log(137.0), rel=1e-6)
    assert float(got["box"]) == pytest.approx((1.0**2 + 8.0**2) / 2, rel=1e-6)


def test_offset_head_has_its_own_huber_loss():
    c = _config()
    c.model.offset_head = True
    outputs, targets = _outputs_and_targets((1, 8, 16), {1: 0.5, 8: 1.0, 16: 3.0})
    for s in (1, 8):
        outputs[s]["offset"] = jnp.broadcast_to(jnp.array([0.5, -3.0]), (1, 2, 2, 1, 2))
        targets[s]["offset"] = jnp.zeros((1, 2, 2, 1, 2))
    # Mask one pixel off at stride 1: its (huge) error must not count.
    outputs[1]["offset"] = outputs[1]["offset"].at[0, 0, 0, 0].set(100.0)
    targets[1]["box_mask"] = targets[1]["box_mask"].at[0, 0, 0, 0].set(False)
    got = losses.head_losses(outputs, targets, c)
    # Huber, delta 1: 0.5 * 0.5^2 = 0.125 and 3 - 0.5 = 2.5; mean over (dy, dx): 1.3125.
    assert float(got["offset"]) == pytest.approx(1.3125, rel=1e-6)
    assert float(got["box"]) == pytest.approx((1.0**2 + 8.0**2) / 2, rel=1e-6)  # Unchanged.
    assert "offset" in losses.loss_strides(c)
    # Without the head the loss is 0 and no stride is checked for it.
    c.model.offset_head = False
    assert float(losses.head_losses(outputs, targets, c)["offset"]) == 0.0
    assert "offset" not in losses.loss_strides(c)


def test_offset_errors_in_box_sides_weigh_a_thin_box_by_its_side():
    c = _config(offset_units="box")
    c.model.offset_head = True
    outputs, targets = _outputs_and_targets((1, 8, 16), {1: 0.5, 8: 1.0, 16: 3.0})
    for s in (1, 8):
        outputs[s]["offset"] = jnp.broadcast_to(jnp.array([0.5, -3.0]), (1, 2, 2, 1, 2))
        targets[s]["offset"] = jnp.zeros((1, 2, 2, 1, 2))
        # A box 2 px tall and 0.5 px wide: its width is floored at MIN_OFFSET_SIDE (1 px).
        targets[s]["box"] = jnp.broadcast_to(jnp.array([2.0, 0.5]), (1, 2, 2, 1, 2))
    got = losses.head_losses(outputs, targets, c)
    # dy 0.5 px of a 2-px side is 0.25 sides: 0.5 * 0.25^2; dx 3 sides of 1 px: 3 - 0.5.
    assert float(got["offset"]) == pytest.approx((0.5 * 0.25**2 + 2.5) / 2, rel=1e-6)
    # Capped at 1.5 px, the 2-px side counts as 1.5: 0.5 * (0.5 / 1.5)^2; the width as before.
    c.loss.offset_max_side = 1.5
    got = losses.head_losses(outputs, targets, c)
    assert float(got["offset"]) == pytest.approx((0.5 * (0.5 / 1.5) ** 2 + 2.5) / 2, rel=1e-6)
    # In pixels a cap on box sides means nothing: refused by name.
    c.loss.offset_units = "pixels"
    with pytest.raises(ValueError, match="config.loss.offset_max_side is 1.5"):
        losses.head_losses(outputs, targets, c)
    # In pixels the same errors weigh as before: the box does not enter.
    c.loss.offset_max_side = 0.0
    assert float(losses.head_losses(outputs, targets, c)["offset"]) == pytest.approx(1.3125)
    c.loss.offset_units = "sides"
    with pytest.raises(ValueError, match="config.loss.offset_units is 'sides'"):
        losses.head_losses(outputs, targets, c)


def test_loss_strides_outside_the_model_outputs_are_rejected_by_name():
    with pytest.raises(ValueError, match="config.loss.box_strides"):
        losses.loss_strides(_config(box_strides=(1, 4)))
    c = _config()
    c.model.class_size_prior = True  # Reads class probabilities at box stride 8, unsupervised.
    with pytest.raises(ValueError, match=r"box stride\(s\) \[8\] without class supervision"):
        losses.loss_strides(c)
    c.loss.class_strides = (1, 8)
    assert losses.loss_strides(c)["class"] == (1, 8)
    outputs, targets = _outputs_and_targets((1, 8), {1: 1.0, 8: 1.0})
    with pytest.raises(ValueError, match="stride\\(s\\) \\[16\\] for the energy loss"):
        losses.head_losses(outputs, targets, _config())


@pytest.mark.parametrize(
    "step, weights, normalised",
    [
        (0, (1, 0, 0, 0), 0),
        (2, (1, 0, 0, 0), 0),
        (3, (0, 1, 0, 0), 0),
        (4, (0, 1, 0, 0), 0),
        (5, (2, 1, 1, 1), 1),
        (8, (2, 1, 1, 1), 1),
        (10_000, (2, 1, 1, 1), 1),
    ],
)
def test_schedule_weights_at_stage_boundaries(step, weights, normalised):
    c = _config()
    w, n = losses.schedule_weights(jnp.int32(step), c.loss.schedule, c.loss.combined_factors)
    np.testing.assert_array_equal(np.asarray(w), np.asarray(weights, np.float32))
    assert float(n) == normalised


def test_schedule_is_traced_once_across_stages():
    c = _config()
    traces = []

    @jax.jit
    def weights_at(step):
        traces.append(1)
        return losses.schedule_weights(step, c.loss.schedule, c.loss.combined_factors)[0]

    firsts = [tuple(np.asarray(weights_at(jnp.int32(s)))) for s in range(9)]
    assert firsts[0] == (1, 0, 0, 0) and firsts[3] == (0, 1, 0, 0)
    assert firsts[5] == (2, 1, 1, 1)
    assert len(traces) == 1


def test_bad_schedule_stage_and_factors_are_named():
    with pytest.raises(ValueError, match=r"schedule\[1\]"):
        losses.schedule_weights(jnp.int32(0), (("energy", 3), ("boxes", 2)), (2.0, 1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="combined_factors.*one factor per head"):
        losses.schedule_weights(jnp.int32(0), (("combined", 3),), (2.0, 1.0, 1.0))


def test_normaliser_ring_buffer_and_combined_loss():
    c = _config(schedule=(("combined", 100),), normaliser_window=3)
    state = losses.init_normaliser(c.loss.normaliser_window)
    seen = []
    for step in range(5):
        values = {"energy": 1.0 + step, "class": 10.0 * (step + 1), "box": 0.5, "offset": 0.0}
        values = {k: jnp.float32(v) for k, v in values.items()}
        loss, state = losses.total_loss(values, state, jnp.int32(step), c)
        if step == 0:  # No history yet: each head is divided by itself.
            assert float(loss) == pytest.approx(2 + 1 + 1)
        seen.append(values)
    # After 5 pushes into 3 slots: steps 3, 4 in slots 0, 1 and step 2 in slot 2.
    np.testing.assert_allclose(
        np.asarray(state.history), [[4, 5, 3], [40, 50, 30], [0.5, 0.5, 0.5], [0, 0, 0]]
    )
    np.testing.assert_array_equal(np.asarray(state.count), [5, 5, 5, 0])  # No offset head.
    # Step 5 divides by the mean of steps 2, 3, 4: energy 4, class 40, box 0.5.
    values = {"energy": 8.0, "class": 20.0, "box": 1.0, "offset": 0.0}
    values = {k: jnp.float32(v) for k, v in values.items()}
    loss, _ = losses.total_loss(values, state, jnp.int32(5), c)
    assert float(loss) == pytest.approx(2 * 8 / 4 + 20 / 40 + 1 / 0.5)


def test_combined_normaliser_is_constant_under_the_gradient():
    c = _config(schedule=(("combined", 100),))
    state = losses.init_normaliser(c.loss.normaliser_window)
    grad = jax.grad(
        lambda e: losses.total_loss(
            {"energy": e, "class": jnp.float32(1.0), "box": jnp.float32(1.0), "offset": 0.0},
            state,
            jnp.int32(0),
            c,
        )[0]
    )(jnp.float32(4.0))
    # At step 0 the normaliser is the value itself, 4, but held constant: d(2 e / 4)/de.
    assert float(grad) == pytest.approx(0.5)


def test_single_head_stage_uses_the_raw_loss_and_zero_normaliser_is_safe():
    c = _config()
    state = losses.init_normaliser(c.loss.normaliser_window)
    zero = {"energy": 2.0, "class": 3.0, "box": 0.0, "offset": 0.0}
    zero = {k: jnp.float32(v) for k, v in zero.items()}
    for step in range(5):  # Energy then class stages, box loss always 0 (no markers).
        loss, state = losses.total_loss(zero, state, jnp.int32(step), c)
        assert float(loss) == (2.0 if step < 3 else 3.0)
    loss, _ = losses.total_loss(zero, state, jnp.int32(5), c)  # Combined: box divides by 1.
    assert float(loss) == pytest.approx(2 * 2 / 2 + 3 / 3 + 0.0)


def test_log_box_loss_compares_log_sizes():
    pred = jnp.array([[10.0, 2.0], [0.1, 4.0]]).reshape(2, 1, 1, 1, 2)
    target = jnp.array([[20.0, 2.0], [1.0, 1.0]]).reshape(2, 1, 1, 1, 2)
    mask = jnp.ones((2, 1, 1, 1), bool)
    # Sizes are floored at half a pixel: 0.1 counts as 0.5.
    want = (np.log(2.0) ** 2 + 0.0 + np.log(2.0) ** 2 + np.log(4.0) ** 2) / 4
    np.testing.assert_allclose(
        float(losses.box_loss(pred, target, mask, log=True)), want, rtol=1e-6
    )
    # A relative error costs the same on a notehead and on a staff; in pixels it does not.
    small, big = jnp.full((1, 1, 1, 1, 2), 10.0), jnp.full((1, 1, 1, 1, 2), 1000.0)
    one = jnp.ones((1, 1, 1, 1), bool)
    np.testing.assert_allclose(
        losses.box_loss(small * 1.1, small, one, log=True),
        losses.box_loss(big * 1.1, big, one, log=True),
        rtol=1e-5,
    )


def test_blank_batches_do_not_enter_the_normaliser():
    c = _config(schedule=(("combined", 100),), normaliser_window=2)
    state = losses.init_normaliser(c.loss.normaliser_window)
    real = {"energy": 1.0, "class": 4.0, "box": 2.0, "offset": 3.0}
    blank = {"energy": 0.5, "class": 0.0, "box": 0.0, "offset": 0.0}
    real, blank = ({k: jnp.float32(v) for k, v in x.items()} for x in (real, blank))
    for step, values in enumerate([real, blank, blank]):
        _, state = losses.total_loss(values, state, jnp.int32(step), c)
    np.testing.assert_array_equal(np.asarray(state.count), [3, 1, 1, 1])
    # Class, box and offset still divide by the one real batch's 4, 2 and 3, not by means
    # with zeros.
    loss, _ = losses.total_loss(real, state, jnp.int32(3), c)
    assert float(loss) == pytest.approx(2 * 1.0 / 0.5 + 4 / 4 + 2 / 2 + 3 / 3)


def test_class_balance_weighs_a_rare_class_up_and_keeps_the_mean():
    # One image, 1x5 pixels, one group: four pixels of class 3, one of class 7, one background.
    classes = jnp.array([3, 3, 3, 3, 7, 0]).reshape(1, 1, 6, 1)
    mask = classes > 0
    w = np.asarray(losses.class_balance(classes, mask, 0.5, 137)).ravel()
    # Raw weights 4 ** -0.5 = 0.5 and 1 ** -0.5 = 1; their mean over marker pixels is 0.6.
    np.testing.assert_allclose(w, [0.5 / 0.6] * 4 + [1 / 0.6, 1.0], rtol=1e-6)
    np.testing.assert_allclose(w[:5].mean(), 1.0, rtol=1e-6)
    # Power 1: each class present has the same total weight; power 0: every pixel 1.
    w1 = np.asarray(losses.class_balance(classes, mask, 1.0, 137)).ravel()
    np.testing.assert_allclose(w1[:4].sum(), w1[4], rtol=1e-6)
    np.testing.assert_array_equal(losses.class_balance(classes, mask, 0.0, 137), 1.0)
    # No marker pixel at all: weights 1, no NaN.
    np.testing.assert_array_equal(losses.class_balance(classes, mask & False, 0.5, 137), 1.0)


def test_energy_class_balance_weights_the_energy_cross_entropy():
    outputs, targets = _outputs_and_targets((1, 8, 16), {1: 0.5, 8: 1.0, 16: 3.0})
    # Two marker pixels at stride 1, classes 3 and 7, the class-7 one wrong by a lot.
    targets[1]["class"] = jnp.array([[3, 7], [0, 0]]).reshape(1, 2, 2, 1)
    targets[1]["box_mask"] = targets[1]["class"] > 0
    outputs[1]["energy"] = outputs[1]["energy"].at[0, 0, 1, 0].set(jnp.array([0.0, 5.0]))
    plain = losses.head_losses(outputs, targets, _config())["energy"]
    balanced = losses.head_losses(outputs, targets, _config(energy_class_balance=0.5))["energy"]
    # One pixel per class: the weights are all 1, so balancing changes nothing here.
    assert float(balanced) == pytest.approx(float(plain), rel=1e-6)
    targets[1]["class"] = jnp.array([[3, 7], [3, 3]]).reshape(1, 2, 2, 1)
    targets[1]["box_mask"] = targets[1]["class"] > 0
    balanced = losses.head_losses(outputs, targets, _config(energy_class_balance=0.5))["energy"]
    # Class 3: 3 pixels, raw 3 ** -0.5; class 7: raw 1; mean raw r = (3 * 3 ** -0.5 + 1) / 4.
    r = (3 * 3**-0.5 + 1) / 4
    ce_ok, ce_bad = 0.5, math.log1p(math.exp(5.0))
    stride1 = (3 * 3**-0.5 / r * ce_ok + 1 / r * ce_bad) / 4
    assert float(balanced) == pytest.approx((stride1 + 1.0 + 3.0) / 3, rel=1e-5)
    with pytest.raises(ValueError, match="config.loss.energy_class_balance = -0.5 must be >= 0"):
        losses.head_losses(outputs, targets, _config(energy_class_balance=-0.5))


def test_class_loss_balance_weights_the_class_cross_entropy():
    outputs, targets = _outputs_and_targets((1, 8, 16), {1: 0.5, 8: 1.0, 16: 3.0})
    # Three marker pixels of class 3 (right) and one of class 7 (wrong) at stride 1.
    classes = jnp.array([[3, 7], [3, 3]]).reshape(1, 2, 2, 1)
    targets[1]["class"], targets[1]["box_mask"] = classes, classes > 0
    logits = jnp.zeros((1, 2, 2, 1, 137)).at[..., 3].set(4.0)
    outputs[1]["class"] = logits
    ce_ok = -float(jax.nn.log_softmax(logits[0, 0, 0, 0])[3])
    ce_bad = -float(jax.nn.log_softmax(logits[0, 0, 0, 0])[7])
    plain = losses.head_losses(outputs, targets, _config(class_loss_balance=0.0))["class"]
    assert float(plain) == pytest.approx((3 * ce_ok + ce_bad) / 4, rel=1e-5)
    balanced = losses.head_losses(outputs, targets, _config(class_loss_balance=1.0))["class"]
    # Power 1: class 3's three pixels together weigh as much as class 7's one.
    assert float(balanced) == pytest.approx((ce_ok + ce_bad) / 2, rel=1e-5)
    with pytest.raises(ValueError, match="config.loss.class_loss_balance = -1.0 must be >= 0"):
        losses.head_losses(outputs, targets, _config(class_loss_balance=-1.0))


def test_class_loss_reads_the_class_markers_not_the_box_markers():
    # A class marker wider than the box marker (targets.class_marker > box_marker): the class
    # is supervised wherever its target is a class, box-marker pixel or not.
    outputs, targets = _outputs_and_targets((1, 8, 16), {1: 0.5, 8: 1.0, 16: 3.0})
    targets[1]["class"] = jnp.array([[3, 7], [3, 0]]).reshape(1, 2, 2, 1)
    targets[1]["box_mask"] = jnp.array([[True, False], [False, False]]).reshape(1, 2, 2, 1)
    logits = jnp.zeros((1, 2, 2, 1, 137)).at[..., 3].set(4.0)
    outputs[1]["class"] = logits
    ce_ok = -float(jax.nn.log_softmax(logits[0, 0, 0, 0])[3])
    ce_bad = -float(jax.nn.log_softmax(logits[0, 0, 0, 0])[7])
    got = losses.head_losses(outputs, targets, _config(class_loss_balance=0.0))
    # Three class pixels (the 0 one is off every marker), one of them off the box marker.
    assert float(got["class"]) == pytest.approx((2 * ce_ok + ce_bad) / 3, rel=1e-5)
    # The box loss still reads the box marker only: one pixel at stride 1 (size 1, target 0).
    assert float(got["box"]) == pytest.approx((1.0**2 + 8.0**2) / 2, rel=1e-6)


"""dwd_jax.modeling.targets: the spec's marker, the overlap rules against a loop reference,
strides."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.default import get_config
from dwd_jax import classes as classes_lib
from dwd_jax.modeling import heads, targets

LEDGER = classes_lib.label_of("ledgerLine") + 1
NOTEHEAD = classes_lib.label_of("noteheadBlackOnLine") + 1


def config_with_groups(groups=()):
    c = get_config()
    c.targets.energy_groups = groups
    return c


def reference_targets(boxes, classes, valid, shape, config):
    """Full-resolution maps drawn object by object with Python loops, as the spec words it;
    line objects as the module docstring words it."""
    t = config.targets
    table = targets.group_of_class(config)
    is_line = targets.line_classes(config)
    is_fitted = targets.fitted_classes(config)
    g = targets.num_groups(config)
    h, w = shape
    energy = np.zeros((h, w, g), np.int32)
    klass = np.zeros((h, w, g), np.int32)
    box = np.zeros((h, w, g, 2), np.float32)
    offset = np.zeros((h, w, g, 2), np.float32)
    nearest = {"class": np.full((h, w, g), np.inf), "box": np.full((h, w, g), np.inf)}
    sizes = (t.energy_marker, t.class_marker, t.box_marker)
    lines_left = t.max_line_objects  # The first ones are drawn as lines, the rest as ovals.
    for (y0, x0, y1, x1), c, ok in zip(boxes, classes, valid, strict=True):
        if not ok:
            continue
        cy, cx, grp = int(np.floor((y0 + y1) / 2)), int(np.floor((x0 + x1) / 2)), table[c]
        horizontal = x1 - x0 >= y1 - y0
        line = is_line[c] and lines_left > 0
        lines_left -= line
        sweep = 0
        if line:
            half = (x1 - x0) / 2 if horizontal else (y1 - y0) / 2
            sweep = max(round(half) - t.line_marker // 2, 0)
        line_sizes = (t.line_marker, t.class_marker, t.box_marker)
        # A fitted class's energy oval: half-axes half the box's sides, within
        # [fitted_min_radius, the oval's radius].
        axes = None
        if is_fitted[c] and not line:
            r = t.energy_marker // 2
            axes = np.clip([(y1 - y0) / 2, (x1 - x0) / 2], t.fitted_min_radius, r)
        kinds = ("energy", "class", "box")
        for kind, size in zip(kinds, line_sizes if line else sizes, strict=True):
            r = size // 2
            for along in range(-sweep - r, sweep + r + 1):
                for across in range(-r, r + 1):
                    d2 = across**2 + max(abs(along) - sweep, 0) ** 2
                    dy, dx = (across, along) if horizontal else (along, across)
                    d = np.sqrt(d2) / r
                    if kind == "energy" and axes is not None:
                        d = np.hypot(dy / axes[0], dx / axes[1])
                    v = int(np.floor((t.energy_levels - 1) * max(1 - d, 0) + 0.5))
                    y, x = cy + dy, cx + dx
                    if v == 0 or not (0 <= y < h and 0 <= x < w):
                        continue
                    if kind == "energy":
                        energy[y, x, grp] = max(energy[y, x, grp], v)
                        continue
                    if d2 > nearest[kind][y, x, grp]:  # Nearest centre wins; ties: the later.
                        continue
                    nearest[kind][y, x, grp] = d2
                    if kind == "class":
                        klass[y, x, grp] = c
                    else:
                        lo, hi = np.array([y0, x0]), np.array([y1, x1])
                        if line:  # The box cut to line_reach around the pixel's centre.
                            axis = 1 if horizontal else 0
                            centre = (y, x)[axis] + 0.5
                            lo[axis] = max(lo[axis], centre - t.line_reach)
                            hi[axis] = min(hi[axis], centre + t.line_reach)
                        box[y, x, grp] = hi - lo
                        # From the pixel's centre (y + 0.5, x + 0.5) to the box's.
                        offset[y, x, grp] = (lo + hi) / 2 - (y + 0.5, x + 0.5)
    return {
        "energy": energy,
        "class": klass,
        "box": box,
        "offset": offset,
        "box_mask": np.isfinite(nearest["box"]),
    }


def test_nine_pixel_marker_middle_row_is_the_spec_example():
    np.testing.assert_array_equal(targets.energy_marker(9, 20)[4], [0, 5, 10, 14, 19, 14, 10, 5, 0])


def test_energy_marker_is_a_symmetric_cone():
    m = targets.energy_marker(17, 20)
    assert m[8, 8] == 19 and m.max() == 19
    np.testing.assert_array_equal(m, m.T)
    np.testing.assert_array_equal(m, m[::-1])
    assert (m[0] == 0).all() and (m[:, 0] == 0).all()
    assert m[8, 1] > 0  # An oval: the border row's middle is inside, its corners are not.


@pytest.mark.parametrize("size", [8, 1])
def test_even_or_tiny_marker_is_refused(size):
    with pytest.raises(ValueError, match="odd"):
        targets.energy_marker(size, 20)
    config = get_config()
    config.targets.line_classes, config.targets.line_marker = ("beam",), size
    one = jnp.zeros((1, 1, 4)), jnp.ones((1, 1), jnp.int32), jnp.ones((1, 1), bool)
    with pytest.raises(ValueError, match="odd"):
        targets.make_targets(*one, image_shape=(32, 32), stride=2, config=config)


def random_objects(rng, count, shape, long=False):
    h, w = shape
    centre = rng.uniform([-4, -4], [h + 4, w + 4], (count, 2))  # Some markers leave the image.
    size = rng.uniform(2, 30, (count, 2))
    if long:  # Lines longer than two line_reach and than the image, either way.
        axis = rng.integers(0, 2, count)
        size[np.arange(count), axis] = rng.uniform(2, 160, count)
    boxes = np.concatenate([centre - size / 2, centre + size / 2], -1).astype(np.float32)
    # Ledger lines and noteheads (two groups when grouped) and shared centres.
    classes = rng.choice([LEDGER, NOTEHEAD, 42], count).astype(np.int32)
    boxes[1] = boxes[0]
    valid = rng.random(count) < 0.9
    return boxes, classes, valid


@pytest.mark.parametrize(
    "groups, lines, long, max_lines, class_marker, fitted",
    [
        ((), (), False, 256, 9, ()),
        (((), ("ledgerLine",)), (), False, 256, 9, ()),
        (((), ("ledgerLine",)), ("ledgerLine",), False, 256, 9, ()),
        ((), ("ledgerLine",), True, 256, 9, ()),
        ((), ("ledgerLine",), True, 3, 9, ()),
        (((), ("ledgerLine",)), ("ledgerLine",), True, 256, 17, ()),
        (((), ("ledgerLine",)), (), False, 256, 9, ("ledgerLine", "noteheadBlackOnLine")),
        ((), ("ledgerLine",), True, 3, 9, ("ledgerLine",)),
    ],
    ids=[
        "G1",
        "G2",
        "G2-lines",
        "long-lines",
        "ovals-past-max-line-objects",
        "class-marker-17",
        "fitted",
        "fitted-lines-and-ovals",
    ],
)
def test_full_resolution_maps_equal_the_loop_reference(
    groups, lines, long, max_lines, class_marker, fitted
):
    config = config_with_groups(groups)
    config.targets.line_classes = lines
    config.targets.fitted_classes = fitted
    config.targets.max_line_objects = max_lines
    config.targets.class_marker = class_marker
    shape = (48, 56)
    rng = np.random.default_rng(0)
    boxes, classes, valid = zip(
        *[random_objects(rng, 40, shape, long) for _ in range(2)], strict=True
    )
    got = targets.make_targets(
        jnp.stack(boxes),
        jnp.stack(classes),
        jnp.stack(valid),
        image_shape=shape,
        stride=1,
        config=config,
    )
    assert set(heads.NAMES) <= set(got)  # A target map for every declared head.
    for i in range(2):
        want = reference_targets(boxes[i], classes[i], valid[i], shape, config)
        assert set(got) == set(want)
        for name in want:
            np.testing.assert_allclose(
                np.asarray(got[name][i]), want[name], rtol=0, atol=1e-5, err_msg=name
            )


@pytest.mark.parametrize("stride", [2, 8])
def test_coarse_stride_equals_nearest_downsample_of_full_resolution(stride):
    config = config_with_groups(((), ("ledgerLine",)))
    config.targets.line_classes = ("ledgerLine",)
    shape = (64, 80)
    boxes, classes, valid = random_objects(np.random.default_rng(stride), 60, shape, long=True)
    args = (jnp.asarray(boxes)[None], jnp.asarray(classes)[None], jnp.asarray(valid)[None])
    full = targets.make_targets(*args, image_shape=shape, stride=1, config=config)
    coarse = targets.make_targets(*args, image_shape=shape, stride=stride, config=config)
    for name, value in coarse.items():
        assert value.shape[1:3] == (shape[0] // stride, shape[1] // stride)
        sampled = np.asarray(full[name])[:, stride // 2 :: stride, stride // 2 :: stride]
        np.testing.assert_array_equal(np.asarray(value), sampled, err_msg=name)


def test_fitted_ledger_lines_a_staff_space_apart_keep_background_between_them():
    # Three ledger lines 2 px thick and 10 px apart (a staff space at data.scale).
    boxes = jnp.array([[[y, 20.0, y + 2.0, 44.0] for y in (20.0, 30.0, 40.0)]])
    classes, valid = jnp.full((1, 3), LEDGER), jnp.ones((1, 3), bool)
    column, row = {}, {}
    for fitted in ((), ("ledgerLine",)):
        config = config_with_groups(((), ("ledgerLine",)))
        config.targets.fitted_classes = fitted
        maps = targets.make_targets(
            boxes, classes, valid, image_shape=(64, 64), stride=1, config=config
        )
        column[fitted] = np.asarray(maps["energy"][0, :, 32, 1])
        row[fitted] = np.asarray(maps["energy"][0, 21, :, 1])
    # 17-px ovals: one ridge, never below 7 of 19 between the lines.
    assert column[()][21:42].min() >= 7
    # Fitted: half-axes (4, 8) px, so each line's energy is 0 from 4 px off its centre row.
    np.testing.assert_array_equal(column[("ledgerLine",)][17:26], [0, 5, 10, 14, 19, 14, 10, 5, 0])
    assert (column[("ledgerLine",)][[25, 26, 27, 35, 36, 37]] == 0).all()
    # Along the line the oval keeps its radius (the box is 24 px wide): as before.
    np.testing.assert_array_equal(row[("ledgerLine",)], row[()])
    assert (row[()] > 0).sum() == 15
    config.targets.fitted_min_radius = 0.5
    with pytest.raises(ValueError, match="fitted_min_radius"):
        targets.make_targets(boxes, classes, valid, image_shape=(64, 64), stride=1, config=config)


def test_ledger_line_and_notehead_on_it_live_in_separate_groups():
    boxes = jnp.array([[[20.0, 10.0, 22.0, 40.0], [17.0, 20.0, 25.0, 30.0]]])  # Same centre.
    classes = jnp.array([[LEDGER, NOTEHEAD]])
    valid = jnp.array([[True, True]])
    kw = dict(image_shape=(48, 48), stride=1)
    one = targets.make_targets(boxes, classes, valid, config=config_with_groups(), **kw)
    two = targets.make_targets(
        boxes, classes, valid, config=config_with_groups(((), ("ledgerLine",))), **kw
    )
    assert one["class"].shape[-1] == 1 and int(one["class"][0, 21, 25, 0]) == NOTEHEAD
    assert int(two["class"][0, 21, 25, 0]) == NOTEHEAD and int(two["class"][0, 21, 25, 1]) == LEDGER
    np.testing.assert_allclose(two["box"][0, 21, 25, 1], [2.0, 30.0])
    np.testing.assert_allclose(two["box"][0, 21, 25, 0], [8.0, 10.0])


def test_class_named_in_two_groups_is_refused():
    with pytest.raises(ValueError, match="ledgerLine"):
        targets.group_of_class(config_with_groups((("ledgerLine",), ("ledgerLine",))))


def test_jits_inside_a_step_and_all_padding_gives_empty_maps():
    config = config_with_groups()
    step = jax.jit(
        lambda b, c, v: targets.make_targets(b, c, v, image_shape=(32, 32), stride=2, config=config)
    )
    out = step(jnp.zeros((2, 5, 4)), jnp.zeros((2, 5), jnp.int32), jnp.zeros((2, 5), bool))
    assert out["energy"].shape == (2, 16, 16, 1) and out["box"].shape == (2, 16, 16, 1, 2)
    assert not out["box_mask"].any() and not out["energy"].any()


def test_unpadded_boxes_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="max_objects"):
        targets.make_targets(
            jnp.zeros((5, 4)),
            jnp.zeros((5,), jnp.int32),
            jnp.ones((5,), bool),
            image_shape=(32, 32),
            stride=1,
            config=config_with_groups(),
        )

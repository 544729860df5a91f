"""dwd_jax.decoding.decode: the oracle on the real DeepScoresV2 page, the original's procedure
against a scipy reference, the watershed, the score, padding and the guards."""

import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage as ndi

from configs.default import get_config
from dwd_jax import classes as classes_lib
from dwd_jax.decoding import decode
from dwd_jax.modeling import targets

NOTEHEAD = classes_lib.label_of("noteheadBlackInSpace") + 1
DOT = classes_lib.label_of("augmentationDot") + 1


def make_config(**decode_fields):
    c = get_config()
    c.targets.energy_groups = ()
    c.targets.line_classes = ()  # Every object an oval,
    c.model.offset_head = False  # and no offsets, as the original,
    c.decode.foreground_threshold = 0.0  # and its argmax rule unless a test says,
    c.decode.box_size = "max"  # and its box size.
    # Target maps name a class only on the class marker, inside the energy marker: with
    # "pixels" each object's outer ring would read as another class and fall apart.
    c.decode.class_split = "peaks"
    c.decode.update(decode_fields)
    return c


def one_hot_outputs(t, scale=20.0, offset=False):
    """Target maps as the logits of a perfect model (with an offset head if `offset`)."""
    return {
        "energy": jax.nn.one_hot(t["energy"], 20) * scale,
        "class": jax.nn.one_hot(t["class"], 137) * scale,
        "box": t["box"],
        **({"offset": t["offset"]} if offset else {}),
    }


def decode_boxes(boxes, classes, shape, stride, config):
    args = (jnp.asarray(boxes)[None], jnp.asarray(classes)[None], jnp.ones((1, len(boxes)), bool))
    t = targets.make_targets(*args, image_shape=shape, stride=stride, config=config)
    det = jax.tree.map(
        lambda x: np.asarray(x)[0],
        decode.decode(
            one_hot_outputs(t, offset=config.model.offset_head), stride=stride, config=config
        ),
    )
    return det, det.boxes[det.valid], det.classes[det.valid]


def iou(a, b):
    lo, hi = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), -1)
    area = lambda z: np.prod(z[:, 2:] - z[:, :2], -1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter)


# --- The oracle: the real sample page ------------------------------------------------------------


@pytest.fixture(scope="module")
def page(sample_json):
    """Ground truth of the real DeepScoresV2 sample page, scaled by 0.5 as in training."""
    data = json.loads(sample_json.read_text())
    image = data["images"][0]
    names = {k: v["name"] for k, v in data["categories"].items()}
    anns = list(data["annotations"].values())
    x0, y0, x1, y1 = np.array([a["a_bbox"] for a in anns], np.float32).T * 0.5
    classes = np.array([classes_lib.label_of(names[a["cat_id"][0]]) + 1 for a in anns], np.int32)
    shape = (round(image["height"] * 0.5), round(image["width"] * 0.5))
    return np.stack([y0, x0, y1, x1], -1), classes, shape


def recovered(page, config, stride=2):
    """Which ground-truth objects come back at IoU >= 0.5 with their class, and why not."""
    boxes, classes, shape = page
    det, got_boxes, got_classes = decode_boxes(boxes, classes, shape, stride, config)
    overlap = iou(boxes, got_boxes)
    hit = ((overlap >= 0.5) & (classes[:, None] == got_classes[None])).any(1)
    groups = targets.group_of_class(config)[classes]
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    causes = []
    for i in np.flatnonzero(~hit):
        same = np.flatnonzero((groups == groups[i]) & (np.arange(len(boxes)) != i))
        d = np.linalg.norm(centres[same] - centres[i], axis=1)
        j = same[np.argmin(d)]
        best = int(np.argmax(overlap[i])) if len(got_boxes) else -1
        name = lambda c: classes_lib.DEEPSCORES_CLASSES[c - 1]  # noqa: E731
        causes.append(
            f"{name(classes[i])} {boxes[i].round(1).tolist()}: nearest same-group centre "
            f"{d.min():.1f} px ({name(classes[j])}); best IoU {overlap[i, best]:.2f} as "
            f"{name(got_classes[best])}"
        )
    return hit.mean(), causes, det


def test_oracle_default_design_recovers_95_percent_of_the_real_page(page):
    fraction, causes, det = recovered(page, get_config())
    print(f"recovered {fraction:.4f}; misses:", *causes, sep="\n  ")
    assert fraction >= 0.95, "\n".join(causes)
    assert not det.overflow and det.ccl_converged


def test_oracle_faithful_single_energy_map_cannot_reach_95_percent(page):
    # The original (one group, plain components) merges objects whose markers touch.
    fraction, causes, _ = recovered(page, make_config(saddle_depth=0))
    assert 0.5 < fraction < 0.95
    assert any("nearest same-group centre" in c for c in causes)


# --- The original procedure against a scipy reference --------------------------------------------


def reference_decode(energy_logits, class_logits, box, stride, cutoff, min_size, threshold=0.0):
    """DWD_SPEC.md section 6 with scipy and Python loops over components (one page, one group);
    `threshold > 0`: foreground is P(level > cutoff) > threshold instead."""
    p = np.exp(energy_logits - energy_logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    expected = p @ np.arange(energy_logits.shape[-1])
    fg = (
        p[..., cutoff + 1 :].sum(-1) > threshold if threshold else energy_logits.argmax(-1) > cutoff
    )
    cls = class_logits.argmax(-1)
    q = np.exp(class_logits - class_logits.max(-1, keepdims=True))
    q /= q.sum(-1, keepdims=True)
    labels, n = ndi.label(fg, structure=np.ones((3, 3)))
    found = []
    for i in range(1, n + 1):
        ys, xs = np.nonzero(labels == i)
        if len(ys) < min_size:
            continue
        votes = np.bincount(cls[ys, xs], minlength=class_logits.shape[-1])[1:]
        voted = int(np.argmax(votes)) + 1
        centre = np.array([ys.mean(), xs.mean()]) * stride + stride // 2 + 0.5
        size = box[ys, xs].max(0)
        peak = np.argmax(expected[ys, xs])  # First in raster order on ties.
        score = expected[ys, xs].max() / 19 * q[ys[peak], xs[peak], voted]
        found.append((*(centre - size / 2), *(centre + size / 2), voted, score))
    return np.array(found)


@pytest.mark.parametrize("threshold", [0.0, 0.75])
def test_plain_components_equal_the_scipy_loop_reference(threshold):
    rng = np.random.default_rng(0)
    h, w, stride = 40, 48, 2
    blobs = ndi.gaussian_filter(rng.normal(size=(h, w)), 2.0)
    energy = rng.normal(size=(h, w, 20)) * 0.5
    inside = blobs > np.quantile(blobs, 0.7)  # Irregular blobs of foreground.
    energy[..., 0] += np.where(inside, 0.0, 3.0)
    energy[..., 5] += np.where(inside, 3.0, 0.0)
    klass = rng.normal(size=(h, w, 137)) * 2.0
    box = rng.uniform(1, 30, (h, w, 2))
    config = make_config(saddle_depth=0, foreground_threshold=threshold)
    outputs = {
        "energy": jnp.asarray(energy, jnp.float32)[None, :, :, None],
        "class": jnp.asarray(klass, jnp.float32)[None, :, :, None],
        "box": jnp.asarray(box, jnp.float32)[None, :, :, None],
    }
    det = decode.decode(outputs, stride=stride, config=config)
    want = reference_decode(energy, klass, box, stride, cutoff=1, min_size=4, threshold=threshold)
    want = want[np.argsort(-want[:, 5], kind="stable")]
    valid = np.asarray(det.valid[0])
    assert valid.sum() == len(want) > 3
    np.testing.assert_allclose(np.asarray(det.boxes[0])[valid], want[:, :4], rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(np.asarray(det.classes[0])[valid], want[:, 4])
    np.testing.assert_allclose(np.asarray(det.scores[0])[valid], want[:, 5], rtol=1e-4, atol=1e-6)


# --- The watershed, the score, padding and guards ------------------------------------------------


def test_watershed_splits_touching_markers_that_plain_components_merge():
    # A notehead and its augmentation dot 7 px apart: their 17 px energy markers touch.
    boxes = np.array([[20, 20, 28, 30], [22, 29, 26, 33]], np.float32)
    classes = np.array([NOTEHEAD, DOT], np.int32)
    _, merged, _ = decode_boxes(boxes, classes, (48, 64), 1, make_config(saddle_depth=0))
    _, split, split_classes = decode_boxes(boxes, classes, (48, 64), 1, make_config())
    assert len(merged) == 1
    assert sorted(split_classes.tolist()) == sorted(classes.tolist())
    split = split[np.argsort(split_classes != NOTEHEAD)]  # Notehead first, as in `boxes`.
    # Markers sit on the pixel holding the centre, so centres come back within half a pixel.
    centre = lambda b: (b[:, :2] + b[:, 2:]) / 2  # noqa: E731
    assert np.abs(centre(split) - centre(boxes)).max() <= 0.5
    np.testing.assert_allclose(split[:, 2:] - split[:, :2], boxes[:, 2:] - boxes[:, :2])


def test_pixel_class_split_keeps_a_weak_small_symbol_without_a_peak_apart():
    # What an under-trained model does to a staccato dot below a notehead: the notehead's
    # energy cone runs on through the dot, which has no peak of its own; only the class map
    # tells the dot's pixels apart.
    y, x = np.mgrid[:40, :40]
    level = np.clip(19 - 1.5 * np.hypot(y - 15, x - 20), 0, 19).round().astype(np.int32)
    dot = np.hypot(y - 23, x - 20) <= 2.5
    klass = np.where(dot, DOT, np.where(level > 1, NOTEHEAD, 0))
    outputs = {
        "energy": jax.nn.one_hot(level, 20)[None, :, :, None] * 20.0,
        "class": jax.nn.one_hot(klass, 137)[None, :, :, None] * 20.0,
        "box": jnp.full((1, 40, 40, 1, 2), 6.0),
    }

    def found(**fields):
        det = decode.decode(outputs, stride=1, config=make_config(**fields))
        keep = np.asarray(det.valid[0])
        return np.asarray(det.classes[0])[keep], np.asarray(det.boxes[0])[keep]

    plain, _ = found()
    aware, boxes = found(class_split="pixels")
    assert plain.tolist() == [NOTEHEAD]  # The dot is read as part of the notehead.
    assert found(class_split="peaks")[0].tolist() == [NOTEHEAD]  # The dot has no peak.
    assert sorted(aware.tolist()) == sorted([NOTEHEAD, DOT])
    centre = (boxes[aware == DOT, :2] + boxes[aware == DOT, 2:]) / 2
    assert abs(centre[0, 1] - 20.5) < 1e-4 and 21 <= centre[0, 0] <= 24  # Within the dot.


def test_peak_class_split_keeps_a_weak_peak_of_another_class_unmerged():
    # A dot with a weak peak of its own (5) on the flank of a notehead's cone: the saddle
    # between them (3) is shallower than saddle_depth, so the plain watershed merges the dot
    # into the notehead; with class_split="peaks" basins of different peak classes never merge.
    y, x = np.mgrid[:40, :40]
    notehead = np.clip(19 - 2 * np.hypot(y - 15, x - 20), 0, 19).round()
    dot = np.clip(5 - np.hypot(y - 25, x - 20), 0, 19).round()
    level = np.maximum(notehead, dot).astype(np.int32)
    klass = np.where(np.hypot(y - 25, x - 20) <= 2.5, DOT, np.where(level > 1, NOTEHEAD, 0))
    outputs = {
        "energy": jax.nn.one_hot(level, 20)[None, :, :, None] * 20.0,
        "class": jax.nn.one_hot(klass, 137)[None, :, :, None] * 20.0,
        "box": jnp.full((1, 40, 40, 1, 2), 6.0),
    }

    def found(split):
        det = decode.decode(outputs, stride=1, config=make_config(class_split=split))
        keep = np.asarray(det.valid[0])
        return np.asarray(det.classes[0])[keep], np.asarray(det.boxes[0])[keep]

    assert found("none")[0].tolist() == [NOTEHEAD]
    classes, boxes = found("peaks")
    assert sorted(classes.tolist()) == sorted([NOTEHEAD, DOT])
    centre = (boxes[classes == DOT, :2] + boxes[classes == DOT, 2:]) / 2
    np.testing.assert_allclose(centre[0], [25.5, 20.5], atol=0.5)


def test_score_ranks_true_detections_above_false_ones():
    rng = np.random.default_rng(1)
    # Twelve noteheads on a jittered grid, decoded from noisy, moderately confident logits.
    centres = np.stack(np.meshgrid([12, 32, 52, 72], [12, 36, 60], indexing="ij"), -1).reshape(
        -1, 2
    )
    centres = centres + rng.integers(-3, 4, centres.shape)
    boxes = np.concatenate([centres - 4, centres + 4], -1).astype(np.float32)
    t = targets.make_targets(
        jnp.asarray(boxes)[None],
        jnp.full((1, len(boxes)), NOTEHEAD),
        jnp.ones((1, len(boxes)), bool),
        image_shape=(96, 128),
        stride=1,
        config=make_config(),
    )
    out = jax.tree.map(np.array, one_hot_outputs(t, scale=4.0))
    out["energy"] += rng.normal(size=out["energy"].shape) * 0.5
    out["class"] += rng.normal(size=out["class"].shape) * 0.5
    # False blobs away from the objects: barely-foreground energy, no class preference.
    false_at = [(10, 110), (50, 118), (85, 100)]
    for y, x in false_at:
        out["energy"][0, y - 2 : y + 3, x - 2 : x + 3, 0, 2] += 5.0
    det = decode.decode(jax.tree.map(jnp.asarray, out), stride=1, config=make_config())
    valid = np.asarray(det.valid[0])
    got, scores = np.asarray(det.boxes[0])[valid], np.asarray(det.scores[0])[valid]
    is_false = (got[:, 1] + got[:, 3]) / 2 > 90
    assert is_false.sum() == len(false_at) and (~is_false).sum() == len(boxes)
    assert ((scores >= 0) & (scores <= 1)).all()
    assert scores[~is_false].min() > scores[is_false].max()


def test_overflow_is_reported_and_detections_stay_sorted():
    boxes = np.array([[10, 10 + 20 * i, 16, 16 + 20 * i] for i in range(6)], np.float32)
    t = targets.make_targets(
        jnp.asarray(boxes)[None],
        jnp.full((1, 6), NOTEHEAD),
        jnp.ones((1, 6), bool),
        image_shape=(32, 128),
        stride=1,
        config=make_config(),
    )
    out = one_hot_outputs(t)
    out["class"] = out["class"] * jnp.linspace(0.1, 1.0, 128)[None, None, :, None, None]
    det = decode.decode(out, stride=1, config=make_config(max_detections=4))
    assert bool(det.overflow[0]) and int(det.valid[0].sum()) == 4
    scores = np.asarray(det.scores[0])
    assert (np.diff(scores) <= 0).all()
    kept_x = np.sort((np.asarray(det.boxes[0])[:, 1] + np.asarray(det.boxes[0])[:, 3]) / 2)
    np.testing.assert_allclose(kept_x, [13.5, 33.5, 53.5, 73.5])  # The first four in raster order.


@pytest.mark.parametrize("saddle_depth", [3.0, 0.0])
def test_foreground_budget_overflow_is_reported_and_the_rest_still_decodes(saddle_depth):
    # Two noteheads, one above the other; the budget covers the upper one's foreground only.
    boxes = np.array([[10, 10, 16, 20], [60, 10, 66, 20]], np.float32)
    config = make_config(saddle_depth=saddle_depth)
    t = targets.make_targets(
        jnp.asarray(boxes)[None],
        jnp.full((1, 2), NOTEHEAD),
        jnp.ones((1, 2), bool),
        image_shape=(80, 32),
        stride=1,
        config=config,
    )
    upper = int((np.asarray(t["energy"])[0, :40] > config.decode.energy_cutoff).sum())
    out = one_hot_outputs(t)
    both = decode.decode(out, stride=1, config=config)
    assert not bool(both.overflow[0]) and int(both.valid[0].sum()) == 2
    config.decode.max_foreground_pixels = upper
    cut = decode.decode(out, stride=1, config=config)
    assert bool(cut.overflow[0]) and int(cut.valid[0].sum()) == 1
    # Pixels are read in raster order, so the upper notehead comes back as with no budget.
    found = np.asarray(both.boxes[0])[:2]
    upper_box = found[found[:, 0].argmin()]
    assert np.asarray(cut.boxes[0, 0, 0]) < 40
    np.testing.assert_allclose(np.asarray(cut.boxes[0, 0]), upper_box)


def test_ccl_guard_hit_is_reported():
    energy = np.zeros((1, 32, 32, 1, 20), np.float32)
    energy[..., 0] = 1.0
    serpentine = np.zeros((32, 32), bool)
    serpentine[:, ::2] = True
    for k, x in enumerate(range(1, 32, 2)):  # Columns joined alternately at top and bottom.
        serpentine[0 if k % 2 == 0 else 31, x] = True
    energy[0, serpentine, 0, 5] = 9.0
    out = {
        "energy": jnp.asarray(energy),
        "class": jnp.zeros((1, 32, 32, 1, 137)),
        "box": jnp.zeros((1, 32, 32, 1, 2)),
    }
    tight = decode.decode(out, stride=1, config=make_config(saddle_depth=0, ccl_max_iterations=1))
    loose = decode.decode(out, stride=1, config=make_config(saddle_depth=0))
    assert not bool(tight.ccl_converged[0]) and bool(loose.ccl_converged[0])
    assert int(loose.valid[0].sum()) == 1


def test_cached_class_sizes_and_mean_box_size():
    boxes = np.array([[10, 10, 18, 30], [30, 40, 34, 44]], np.float32)
    classes = np.array([NOTEHEAD, DOT], np.int32)
    config = make_config(box_size="mean", class_box_sizes=(("augmentationDot", 3.0, 5.0),))
    _, got, got_classes = decode_boxes(boxes, classes, (48, 64), 1, config)
    sizes = {int(c): tuple((b[2:] - b[:2]).round(3)) for b, c in zip(got, got_classes, strict=True)}
    assert sizes == {NOTEHEAD: (8.0, 20.0), DOT: (3.0, 5.0)}


@pytest.mark.parametrize("stride", [2, 4])
def test_offsets_put_centres_between_the_strides_pixels(stride):
    # Centres at fractions of a pixel; a 3 px wide stem at stride 4 is a single column.
    boxes = np.array([[10.3, 11.1, 19.3, 30.2], [30.0, 40.7, 50.0, 43.7]], np.float32)
    classes = np.array([NOTEHEAD, NOTEHEAD], np.int32)
    config = make_config(box_size="mean")
    t = targets.make_targets(
        jnp.asarray(boxes)[None],
        jnp.asarray(classes)[None],
        jnp.ones((1, 2), bool),
        image_shape=(64, 64),
        stride=stride,
        config=config,
    )
    perfect = one_hot_outputs(t)
    with_offsets = decode.decode({**perfect, "offset": t["offset"]}, stride=stride, config=config)
    without = decode.decode(perfect, stride=stride, config=config)

    def top_to_bottom(det):
        found = np.asarray(det.boxes[0])[np.asarray(det.valid[0])]
        return found[np.argsort(found[:, 0])]

    np.testing.assert_allclose(top_to_bottom(with_offsets), boxes, atol=1e-4)
    assert np.abs(top_to_bottom(without) - boxes).max() > 0.3  # Quantised to the stride.
    with pytest.raises(ValueError, match="offset shape"):
        decode.decode({**perfect, "offset": t["offset"][..., :1]}, stride=stride, config=config)


def test_line_objects_longer_than_their_reach_decode_whole_from_local_boxes():
    # A staff six reaches long, a beam, a stem crossing the staff, a short ledger line.
    names = ("staff", "beam", "stem", "ledgerLine")
    boxes = np.array(
        [[20.2, 10.6, 60.4, 390.3], [80.0, 30.0, 86.5, 120.7], [6.0, 200.3, 76.0, 202.1],
         [90.0, 250.2, 91.5, 271.0]],
        np.float32,
    )  # fmt: skip
    classes = classes_lib.model_labels(names)
    config = get_config()
    # Every one a line object; the stem in its own group, since it crosses the staff.
    config.targets.line_classes = names
    config.targets.energy_groups = ((), ("staff", "beam", "ledgerLine"), ("stem",))
    reach = config.targets.line_reach
    t = targets.make_targets(
        jnp.asarray(boxes)[None],
        jnp.asarray(classes)[None],
        jnp.ones((1, len(boxes)), bool),
        image_shape=(96, 400),
        stride=2,
        config=config,
    )
    # No pixel's box target reaches further than line_reach from the pixel along its axis.
    mask = np.asarray(t["box_mask"][0])
    lengths = np.asarray(t["box"][0])[mask]
    assert lengths.max() <= 2 * reach + 1e-4 and lengths[:, 1].max() > reach
    det = decode.decode(one_hot_outputs(t, offset=True), stride=2, config=config)
    got = np.asarray(det.boxes[0])[np.asarray(det.valid[0])]
    got_classes = np.asarray(det.classes[0])[np.asarray(det.valid[0])]
    order = [int(np.flatnonzero(got_classes == c)[0]) for c in classes]
    assert len(got) == len(boxes)
    np.testing.assert_allclose(got[order], boxes, atol=1e-3)


def test_bad_box_size_names_the_field():
    outputs = {"energy": jnp.zeros((1, 4, 4, 1, 20)), "class": jnp.zeros((1, 4, 4, 1, 137))}
    outputs["box"] = jnp.zeros((1, 4, 4, 1, 2))
    with pytest.raises(ValueError, match="config.decode.box_size"):
        decode.decode(outputs, stride=1, config=make_config(box_size="median"))


def test_bad_outputs_say_what_is_expected():
    with pytest.raises(ValueError, match="lack \\['box'\\]"):
        decode.decode({"energy": 0, "class": 0}, stride=1, config=make_config())
    outputs = {"energy": jnp.zeros((1, 4, 4, 1, 20)), "class": jnp.zeros((1, 4, 4, 2, 137))}
    outputs["box"] = jnp.zeros((1, 4, 4, 1, 2))
    with pytest.raises(ValueError, match="DESIGN.md"):
        decode.decode(outputs, stride=1, config=make_config())


def test_compiles_once_per_input_shape():
    config = make_config()

    @jax.jit
    @chex.assert_max_traces(n=1)  # A second trace (a recompile) raises.
    def counted(outputs):
        return decode.decode(outputs, stride=2, config=config)

    rng = np.random.default_rng(0)
    for _ in range(3):
        counted(
            {
                "energy": jnp.asarray(rng.normal(size=(2, 16, 24, 1, 20)), jnp.float32),
                "class": jnp.asarray(rng.normal(size=(2, 16, 24, 1, 137)), jnp.float32),
                "box": jnp.asarray(rng.normal(size=(2, 16, 24, 1, 2)), jnp.float32),
            }
        )


@pytest.mark.parametrize("cutoff", [0, 1, 3])
def test_foreground_rules_match_numpy(cutoff):
    rng = np.random.default_rng(cutoff)
    logits = rng.normal(0.0, 3.0, (4, 33, 20)).astype(np.float32)
    logits[0, 0, :] = 1.0  # A full tie: argmax takes level 0, so background.
    argmax_rule = np.asarray(decode.foreground(jnp.asarray(logits), cutoff))
    np.testing.assert_array_equal(argmax_rule, logits.argmax(-1) > cutoff)
    e = np.exp(logits.astype(np.float64) - logits.max(-1, keepdims=True))
    p_fg = e[..., cutoff + 1 :].sum(-1) / e.sum(-1)
    for threshold in (0.1, 0.3, 0.5, 0.9):
        rule = np.asarray(decode.foreground(jnp.asarray(logits), cutoff, threshold))
        near = np.abs(p_fg - threshold) < 1e-5  # f32 rounding may go either way there.
        np.testing.assert_array_equal(rule[~near], (p_fg > threshold)[~near])
    # The probability rule finds foreground the argmax misses: mass spread over many levels.
    spread = np.zeros((1, 20), np.float32)
    spread[0, 0] = np.log(9.0)  # P(level 0) = 9 / 28, the rest 1 / 28 each.
    assert not bool(decode.foreground(jnp.asarray(spread), cutoff)[0])
    assert bool(decode.foreground(jnp.asarray(spread), cutoff, 0.5)[0])


def test_bad_foreground_threshold_names_the_field():
    args = (
        jnp.asarray([[[10.0, 10.0, 20.0, 20.0]]]),
        jnp.asarray([[NOTEHEAD]]),
        jnp.ones((1, 1), bool),
    )
    t = targets.make_targets(*args, image_shape=(32, 32), stride=1, config=make_config())
    with pytest.raises(ValueError, match="config.decode.foreground_threshold"):
        decode.decode(one_hot_outputs(t), stride=1, config=make_config(foreground_threshold=1.0))

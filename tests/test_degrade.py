"""Scan and photograph degradations: what each family does, boxes on their ink, seeds."""

import numpy as np
import pytest

from configs import default, tiny
from dwd_jax.data import degrade, input_pipeline
from tests.test_input_pipeline import synthetic_records


def _page():
    """u8[120, 160] white page with two black boxes, and their f32[2, 4] boxes."""
    page = np.full((120, 160), 255, np.uint8)
    boxes = np.float32([[20, 30, 50, 90], [70, 100, 100, 130]])
    for y0, x0, y1, x1 in boxes.astype(int):
        page[y0:y1, x0:x1] = 0
    return page, boxes


def _run(name, seed=0, **params):
    page, boxes = _page()
    return degrade.FAMILIES[name](page, boxes, np.random.default_rng(seed), **params)


def _defaults(name):
    params = default.get_config().data.degrade[name].to_dict()
    params.pop("prob")
    return params


def test_every_family_has_a_config_section_and_keeps_shape_dtype_and_seed():
    config = default.get_config().data.degrade
    assert set(config) == {"rate", *degrade.FAMILIES}
    assert 0.0 < config.rate <= 1.0  # The default model trains on degraded pages too.
    page, boxes = _page()
    for name in degrade.FAMILIES:
        out, out_boxes = _run(name, **_defaults(name))
        assert out.shape == page.shape and out.dtype == np.uint8, name
        assert out_boxes.shape == boxes.shape and out_boxes.dtype == np.float32, name
        if name != "threshold":  # A bilevel page stays as it is.
            assert not np.array_equal(out, page), name
        again, again_boxes = _run(name, **_defaults(name))
        np.testing.assert_array_equal(out, again)
        np.testing.assert_array_equal(out_boxes, again_boxes)
        if name not in ("rotation", "perspective", "warp"):
            np.testing.assert_array_equal(out_boxes, boxes)


def test_photometric_families_change_the_page_as_expected():
    page, _ = _page()
    ink, paper = page == 0, page == 255
    grey, _ = _run("grey_paper", paper=(220, 220), ink=(40, 40))
    assert np.all(grey[ink] == 40) and np.all(grey[paper] == 220)
    blurred, _ = _run("blur", sigma=(2.0, 2.0))
    assert 0 < blurred[35, 30] < 255  # The box's edge is smeared...
    assert blurred[35, 60] == 0 and blurred[5, 5] == 255  # ...its inside and margin are not.
    for otsu in (0.0, 1.0):
        thresholded, _ = degrade.threshold(blurred, None, np.random.default_rng(0), otsu_prob=otsu)
        assert set(np.unique(thresholded)) == {0, 255}
    mid = np.full((100, 100), 128, np.uint8)  # Mid-grey: no clipping at 0 or 255.
    noisy, _ = degrade.noise(mid, None, np.random.default_rng(0), sigma=(10.0, 10.0))
    assert np.std(noisy.astype(float)) == pytest.approx(10, abs=0.5)
    lit, _ = _run("uneven_light", darkest=(0.5, 0.5))
    assert lit[paper].min() == pytest.approx(128, abs=2) and lit[paper].max() >= 254
    assert np.all(lit[ink] == 0)
    textured, _ = _run("paper_texture", strength=(10.0, 10.0), cell=(16, 16))
    rows = textured[:, 140:].astype(float).mean(1)  # A smooth field: neighbours alike.
    assert np.abs(np.diff(rows)).mean() < 3 and textured[paper].std() > 2
    verso, _ = _run("bleed_through", alpha=(0.2, 0.2), sigma=(1.0, 1.0))
    # The first box mirrored left-right lies at x 70..130: paper there darkens by ~20 %.
    assert verso[35, 120] == pytest.approx(204, abs=3) and verso[35, 5] == 255
    assert np.all(verso[ink] == 0)
    lower, _ = _run("resolution", factor=(0.3, 0.3))
    assert ((lower > 0) & (lower < 255)).sum() > 100  # Box edges go soft.
    compressed, _ = _run("jpeg", quality=(10, 10))
    assert np.abs(compressed.astype(int) - page).max() > 10


@pytest.mark.parametrize(
    "name, params, slack",
    [
        ("rotation", {"degrees": (-15.0, 15.0)}, 0.0),
        ("perspective", {"shift": (0.06, 0.06)}, 0.0),
        # The warp's boxes follow points along their edges: within half a pixel of the ink.
        ("warp", {"amplitude": (4.0, 4.0)}, 0.5),
    ],
)
def test_geometric_families_keep_each_box_around_its_ink(name, params, slack):
    page, boxes = _page()
    family = degrade.FAMILIES[name]
    for seed in range(4):
        moved_page, moved = family(page, boxes, np.random.default_rng(seed), **params)
        assert moved_page[0, 0] == 255 or name == "warp"  # White where the page turned away.
        for original, box in zip(boxes, moved, strict=True):
            # Ink of this box alone: move a page holding only it with the same draws.
            alone = np.full_like(page, 255)
            y0, x0, y1, x1 = original.astype(int)
            alone[y0:y1, x0:x1] = 0
            turned, _ = family(alone, boxes, np.random.default_rng(seed), **params)
            ys, xs = np.nonzero(turned < 128)
            # Pixel (i, j) covers [i, i + 1): its centre lies inside the box.
            assert ys.min() + 0.5 >= box[0] - slack and ys.max() + 0.5 <= box[2] + slack
            assert xs.min() + 0.5 >= box[1] - slack and xs.max() + 0.5 <= box[3] + slack
            # And tightly: the box is no more than a pixel beyond the ink.
            assert box[0] > ys.min() - 1 - slack and box[2] < ys.max() + 2 + slack
            assert box[1] > xs.min() - 1 - slack and box[3] < xs.max() + 2 + slack
        assert not np.allclose(moved, boxes)


def test_degrade_applies_families_by_probability_and_seed():
    config = default.get_config().data.degrade
    page, boxes = _page()
    for name in degrade.FAMILIES:
        config[name].prob = 0.0
    same, same_boxes = degrade.degrade(page, boxes, np.random.default_rng(0), config)
    np.testing.assert_array_equal(same, page)
    np.testing.assert_array_equal(same_boxes, boxes)
    for name in degrade.FAMILIES:
        config[name].prob = 1.0
    a = degrade.degrade(page, boxes, np.random.default_rng(5), config)
    b = degrade.degrade(page, boxes, np.random.default_rng(5), config)
    c = degrade.degrade(page, boxes, np.random.default_rng(6), config)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    config.threshold.prob = 0.0  # Otherwise the page ends bilevel.
    page_out, _ = degrade.degrade(page, boxes, np.random.default_rng(5), config)
    assert len(np.unique(page_out)) > 2


def _batches(config, count=2, seed=3):
    iterator = iter(input_pipeline.make_train_loader(synthetic_records(5), config.data, seed=seed))
    return [next(iterator) for _ in range(count)]


def test_rate_zero_leaves_pipeline_pages_unchanged_and_degrading_is_seeded():
    config = tiny.get_config()
    plain = _batches(config)
    for name in degrade.FAMILIES:  # Even with every family on, rate 0 changes nothing.
        config.data.degrade[name].prob = 1.0
    for a, b in zip(plain, _batches(config), strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])

    config.data.degrade.rate = 1.0
    config.data.degrade.threshold.prob = 0.0
    degraded = _batches(config)
    again = _batches(config)
    for a, b in zip(degraded, again, strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    for a, b in zip(plain, degraded, strict=True):
        assert not np.array_equal(a["image"], b["image"])
    other = _batches(config, seed=4)
    assert not np.array_equal(other[0]["image"], degraded[0]["image"])


def test_degrade_probabilities_are_validated():
    config = tiny.get_config()
    config.data.degrade.blur.prob = 1.5
    with pytest.raises(ValueError, match="data.degrade.blur.prob=1.5"):
        input_pipeline.validate_data_config(config.data)


def test_degraded_pages_are_the_same_for_any_worker_count_and_after_a_resume():
    config = tiny.get_config()
    config.data.degrade.rate = 1.0
    source = synthetic_records(5)
    first = iter(input_pipeline.make_train_loader(source, config.data, seed=3))
    next(first)
    state = first.get_state()
    after = next(first)
    resumed = iter(input_pipeline.make_train_loader(source, config.data, seed=3))
    resumed.set_state(state)
    for key, value in next(resumed).items():
        np.testing.assert_array_equal(after[key], value)

    def pages(batches):
        return sorted(
            batch["image"][i].tobytes() + batch["boxes"][i].tobytes()
            for batch in batches
            for i in range(len(batch["image"]))
        )

    in_process = _batches(config)
    config.data.worker_count = 2
    assert pages(_batches(config)) == pages(in_process)

"""Margin augmentation: the symbol bank, the strip, uniform classes, the loader with it on."""

import ml_collections
import numpy as np
import pytest
from test_input_pipeline import synthetic_records

from configs import tiny
from dwd_jax.data import input_pipeline, margin

MARGIN = ml_collections.ConfigDict({"prob": 1.0, "height": 20, "cell_width": 16, "per_class": 2})


def _page(seed: int = 0) -> dict:
    """A 120x96 page: black rectangles of classes 1-3, small ones and one too big for a cell."""
    rng = np.random.default_rng(seed)
    image = np.full((120, 96), 255, np.uint8)
    boxes, classes = [], []
    for i in range(12):
        h, w = (int(v) for v in rng.integers(3, 9, 2))
        y, x = 10 * i, int(rng.integers(2, 76 - w))  # Clear of the tall symbol at 80.
        image[y + 1 : y + 1 + h, x : x + w] = rng.integers(0, 100)
        boxes.append([y + 1, x, y + 1 + h, x + w])
        classes.append(1 + i % 3)
    image[2:40, 80:84] = 0  # A tall symbol of class 4 that does not fit a 20-row strip.
    boxes.append([2, 80, 40, 84])
    classes.append(4)
    return {"image": image, "boxes": np.float32(boxes), "classes": np.int32(classes)}


def test_bank_keeps_per_class_symbols_that_fit_with_the_page_around_them():
    page = _page()
    bank = margin.build_bank([page, _page(1)], MARGIN, seed=0)
    assert sorted(bank) == [1, 2, 3]  # Class 4 never fits a cell.
    for patches in bank.values():
        assert len(patches) == MARGIN.per_class
        for patch, box in patches:
            assert patch.shape[0] <= MARGIN.height and patch.shape[1] <= MARGIN.cell_width
            # One pixel of white around the rectangle, its ink inside the box.
            y0, x0, y1, x1 = (int(v) for v in box)
            assert (y0, x0) == (1, 1) and patch.shape == (y1 + 1, x1 + 1)
            assert (patch[y0:y1, x0:x1] < 255).all()
            inside = np.zeros(patch.shape, bool)
            inside[y0:y1, x0:x1] = True
            assert (patch[~inside] == 255).all()
    # Seeded: the same bank again; another seed may keep other symbols.
    again = margin.build_bank([page, _page(1)], MARGIN, seed=0)
    assert all(
        np.array_equal(a[0], b[0]) for c in bank for a, b in zip(bank[c], again[c], strict=True)
    )


def test_strip_moves_the_crop_down_and_boxes_the_symbols_it_adds():
    bank = margin.build_bank([_page()], MARGIN, seed=0)
    crop = input_pipeline.crop_page(
        _page(2), np.random.default_rng(0), crop_size=64, top_left_prob=1.0, max_objects=32
    )
    out = margin.add_margin(crop, np.random.default_rng(3), bank, MARGIN)
    strip = MARGIN.height
    np.testing.assert_array_equal(out["image"][strip:], crop["image"][:-strip])
    # The page's boxes moved down; a box whose centre left the crop is gone.
    moved = crop["boxes"][crop["valid"]] + np.float32([strip, 0, strip, 0])
    stays = (moved[:, 0] + moved[:, 2]) / 2 < 64
    assert not stays.all()  # The page has objects near the crop's bottom.
    count = int(stays.sum())
    np.testing.assert_array_equal(out["boxes"][:count], moved[stays])
    # One symbol per 16 columns, inside the strip, with ink in its box and white around.
    added = out["boxes"][count : out["valid"].sum()]
    assert len(added) == 64 // MARGIN.cell_width
    assert set(out["classes"][count : len(added) + count]) <= set(bank)
    covered = np.zeros((strip, 64), bool)
    for i, (y0, x0, y1, x1) in enumerate(added.astype(int)):
        assert 0 <= y0 and y1 <= strip and x1 - 1 < (i + 1) * MARGIN.cell_width
        assert (out["image"][y0:y1, x0:x1, 0] < 255).all()
        covered[y0 - 1 : y1 + 1, x0 - 1 : x1 + 1] = True
    assert (out["image"][:strip, :, 0][~covered] == 255).all()


def test_classes_are_drawn_uniformly_not_by_abundance():
    # Class 1 is four times as common on the pages as classes 2 and 3.
    pages = [_page(s) for s in range(3)]
    for page in pages:
        page["classes"][:12] = [2, 1, 1, 3, 1, 1, 2, 1, 1, 3, 1, 1]
    bank = margin.build_bank(pages, MARGIN, seed=0)
    empty = {
        "image": np.full((64, 64, 1), 255, np.uint8), "boxes": np.zeros((8, 4), np.float32),
        "classes": np.zeros(8, np.int32), "valid": np.zeros(8, bool),
    }
    rng = np.random.default_rng(0)
    drawn = np.concatenate([
        margin.add_margin(empty, rng, bank, MARGIN)["classes"][:4] for _ in range(300)
    ])
    counts = np.bincount(drawn, minlength=5)[1:4]
    assert counts.sum() == 1200 and counts.min() > 0.8 * 400 and counts.max() < 1.2 * 400


def test_bad_margin_config_names_the_field():
    c = tiny.get_config()
    c.data.margin.prob = 1.0
    c.data.margin.height = c.data.crop_size
    with pytest.raises(ValueError, match="data.margin.height"):
        input_pipeline.validate_data_config(c.data)


def test_loader_with_margin_on_yields_strips_and_off_keeps_the_crops():
    c = tiny.get_config()
    c.data.worker_count = 0
    c.data.max_objects = 32
    records = synthetic_records(4, seed=3)
    off = next(iter(input_pipeline.make_train_loader(records, c.data, seed=1)))
    with c.unlocked():
        del c.data["margin"]  # A config written before margins: the same crops.
    old = next(iter(input_pipeline.make_train_loader(records, c.data, seed=1)))
    for key in off:
        np.testing.assert_array_equal(off[key], old[key])
    c = tiny.get_config()
    c.data.worker_count = 0
    c.data.max_objects = 32
    c.data.margin.update({"prob": 1.0, "height": 16, "cell_width": 16})
    on = next(iter(input_pipeline.make_train_loader(records, c.data, seed=1)))
    assert on["image"].shape == off["image"].shape
    strip_boxes = on["boxes"][on["valid"]]
    assert ((strip_boxes[:, 2] <= 16).sum()) >= c.data.crop_size // 16 * c.data.batch_size

"""Input pipeline: page formats, crop/box rules, determinism and resume position."""

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from configs import tiny
from dwd_jax import image as image_lib
from dwd_jax.data import input_pipeline


def synthetic_records(num_pages: int, *, height: int = 200, width: int = 150, seed: int = 0):
    """Records in the `deep_scores` TFDS format: grey u8 pages with black boxes drawn in."""
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(num_pages):
        image = np.full((height, width, 1), 255, np.uint8)
        count = int(rng.integers(3, 8))
        y0 = rng.integers(0, height - 12, count)
        x0 = rng.integers(0, width - 12, count)
        size = rng.integers(4, 12, (count, 2))
        for y, x, (h, w) in zip(y0, x0, size, strict=False):
            image[y : y + h, x : x + w] = 0
        corners = np.stack([y0, x0, y0 + size[:, 0], x0 + size[:, 1]], 1)
        boxes = corners / [height, width, height, width]
        records.append(
            {
                "image": image,
                "objects": {
                    "bbox": boxes.astype(np.float32),
                    "label": rng.integers(0, 136, count).astype(np.int64),
                },
            }
        )
    return records


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_grey_rgba_16bit_and_png_bytes_agree():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    # PIL's own RGB -> L conversion is the reference (integer ITU-R 601 luma).
    reference = np.asarray(Image.fromarray(rgb).convert("L")).astype(int)
    opaque = np.concatenate([rgb, np.full((5, 7, 1), 255, np.uint8)], -1)
    for image in (rgb, opaque, _png(opaque), rgb.astype(np.uint16) * 257):
        assert np.abs(image_lib.to_grey(image).astype(int) - reference).max() <= 1
    grey = rgb[..., 0]
    np.testing.assert_array_equal(image_lib.to_grey(grey[..., None]), grey)
    np.testing.assert_array_equal(image_lib.to_grey(_png(grey)), grey)
    # Transparent ink composites onto white paper; half-transparent black reads mid-grey.
    transparent = np.zeros((2, 2, 4), np.uint8)
    transparent[1, 1, 3] = 128
    np.testing.assert_array_equal(image_lib.to_grey(transparent), [[255, 255], [255, 127]])


def test_bad_image_names_the_record():
    with pytest.raises(ValueError, match="record 7.*float64"):
        image_lib.to_grey(np.zeros((4, 4)), name="record 7")


def test_scale_page_scales_image_and_boxes():
    page = {
        "image": np.full((100, 60), 255, np.uint8),
        "boxes": np.float32([[10, 20, 30, 40]]),
        "classes": np.int32([5]),
    }
    scaled = input_pipeline.scale_page(page, 0.5)
    assert scaled["image"].shape == (50, 30)
    np.testing.assert_allclose(scaled["boxes"], [[5, 10, 15, 20]])


def test_small_page_is_padded_white_and_boxes_follow_the_centre_rule():
    page = {
        "image": np.zeros((50, 60), np.uint8),
        "boxes": np.float32(
            [
                [10, 10, 20, 20],  # inside: kept
                [5, 50, 15, 80],  # centre x 65 is outside the 64-px crop: dropped
                [30, 40, 40, 86],  # centre x 63 inside: kept whole (x1 = 86, not clipped)
                [25, 0, 25, 30],  # zero height, inside: kept
            ]
        ),
        "classes": np.int32([1, 2, 3, 4]),
    }
    out = input_pipeline.crop_page(
        page, np.random.default_rng(0), crop_size=64, top_left_prob=0.0, max_objects=5
    )
    # The page is smaller than the crop on both sides: no offset, white below and right.
    assert out["image"].shape == (64, 64, 1)
    assert (out["image"][:50, :60] == 0).all()
    assert (out["image"][50:] == 255).all() and (out["image"][:, 60:] == 255).all()
    np.testing.assert_array_equal(out["valid"], [True, True, True, False, False])
    np.testing.assert_array_equal(out["classes"], [1, 3, 4, 0, 0])
    np.testing.assert_array_equal(
        out["boxes"], [[10, 10, 20, 20], [30, 40, 40, 86], [25, 0, 25, 30], [0] * 4, [0] * 4]
    )


def test_top_left_crop_keeps_whole_boxes_whose_centre_is_inside():
    page = {
        "image": (np.arange(100 * 100).reshape(100, 100) % 251).astype(np.uint8),
        "boxes": np.float32(
            [
                [30, 30, 50, 50],  # centre (40, 40): on the crop's far edge, outside
                [35, 0, 44, 10],  # centre (39.5, 5): kept
                [20, 10, 70, 30],  # centre (45, 20): outside
                [0, 20, 60, 24],  # centre (30, 22): kept whole though it leaves the crop
            ]
        ),
        "classes": np.int32([9, 8, 7, 6]),
    }
    out = input_pipeline.crop_page(
        page, np.random.default_rng(0), crop_size=40, top_left_prob=1.0, max_objects=3
    )
    np.testing.assert_array_equal(out["image"][..., 0], page["image"][:40, :40])
    np.testing.assert_array_equal(out["valid"], [True, True, False])
    np.testing.assert_array_equal(out["classes"], [8, 6, 0])
    np.testing.assert_array_equal(out["boxes"][:2], [[35, 0, 44, 10], [0, 20, 60, 24]])


def test_line_objects_crossing_the_crop_are_kept_whole():
    page = {
        "image": np.full((100, 300), 255, np.uint8),
        "boxes": np.float32(
            [
                [10, 20, 30, 290],  # A staff: centre (20, 155) outside, crossing the crop.
                [10, 60, 14, 80],  # Another line class beside the crop: not crossing it.
                [10, 30, 30, 50],  # A symbol whose centre is outside: dropped as before.
                [20, 5, 38, 7],  # A stem inside.
            ]
        ),
        "classes": np.int32([5, 5, 9, 6]),
    }
    crop = dict(crop_size=40, top_left_prob=1.0, max_objects=4)
    out = input_pipeline.crop_page(
        page, np.random.default_rng(0), crossing_classes=(5, 6), **crop
    )
    np.testing.assert_array_equal(out["classes"], [5, 6, 0, 0])
    np.testing.assert_array_equal(out["boxes"][:2], [[10, 20, 30, 290], [20, 5, 38, 7]])
    plain = input_pipeline.crop_page(page, np.random.default_rng(0), **crop)
    np.testing.assert_array_equal(plain["classes"], [6, 0, 0, 0])


def test_random_crops_stay_inside_the_page():
    rows = np.repeat(np.arange(250, dtype=np.uint8)[:, None], 200, axis=1)  # pixel = its row
    page = {"image": rows, "boxes": np.zeros((0, 4), np.float32), "classes": np.zeros(0, np.int32)}
    rng = np.random.default_rng(0)
    tops = []
    for _ in range(5):
        crop = input_pipeline.crop_page(page, rng, crop_size=64, top_left_prob=0.0, max_objects=1)
        top = int(crop["image"][0, 0, 0])
        # A crop that left the page would show white (255) padding rows.
        np.testing.assert_array_equal(crop["image"][:, 0, 0], np.arange(top, top + 64))
        tops.append(top)
    assert len(set(tops)) > 1 and max(tops) <= 250 - 64


def test_page_without_objects():
    record = {
        "image": np.full((30, 30, 1), 255, np.uint8),
        "objects": {"bbox": np.zeros((0, 4), np.float32), "label": np.zeros((0,), np.int64)},
    }
    page = input_pipeline.parse_page(record)
    out = input_pipeline.crop_page(
        page, np.random.default_rng(0), crop_size=32, top_left_prob=0.3, max_objects=4
    )
    assert not out["valid"].any() and out["image"].shape == (32, 32, 1)


def test_labels_become_model_classes_and_boxes_pixels():
    record = synthetic_records(1, height=200, width=100)[0]
    page = input_pipeline.parse_page(record)
    np.testing.assert_array_equal(page["classes"], record["objects"]["label"] + 1)
    np.testing.assert_allclose(page["boxes"], record["objects"]["bbox"] * [200, 100, 200, 100])


def _take(iterator, count):
    return [next(iterator) for _ in range(count)]


def test_loader_is_deterministic_and_resumes_at_its_position():
    config = tiny.get_config()
    source = synthetic_records(5)
    first = iter(input_pipeline.make_train_loader(source, config.data, seed=3))
    batches = _take(first, 2)
    assert batches[0]["image"].shape == (config.data.batch_size, 64, 64, 1)
    assert batches[0]["boxes"].shape == (config.data.batch_size, config.data.max_objects, 4)
    state = first.get_state()
    after = _take(first, 2)

    again = iter(input_pipeline.make_train_loader(source, config.data, seed=3))
    for a, b in zip(batches, _take(again, 2), strict=False):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    resumed = iter(input_pipeline.make_train_loader(source, config.data, seed=3))
    resumed.set_state(state)
    for a, b in zip(after, _take(resumed, 2), strict=False):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    other = next(iter(input_pipeline.make_train_loader(source, config.data, seed=4)))
    assert not all(np.array_equal(other[k], batches[0][k]) for k in other)


def test_background_workers_give_the_same_pages():
    config = tiny.get_config()
    source = synthetic_records(5)
    in_process = _take(iter(input_pipeline.make_train_loader(source, config.data, seed=3)), 2)
    config.data.worker_count = 2
    workers = _take(iter(input_pipeline.make_train_loader(source, config.data, seed=3)), 2)

    def pages(batches):
        return sorted(
            batch["image"][i].tobytes() + batch["boxes"][i].tobytes()
            for batch in batches
            for i in range(len(batch["image"]))
        )

    # Each grain worker builds whole batches from every worker_count-th record, so the same
    # crops arrive grouped differently: compare the pages, not the batches.
    assert pages(in_process) == pages(workers)


def test_crop_size_must_be_a_multiple_of_the_padding():
    config = tiny.get_config()
    config.data.crop_size = 70
    with pytest.raises(ValueError, match="data.crop_size=70"):
        input_pipeline.make_train_loader(synthetic_records(1), config.data, seed=0)


def test_object_centred_crops_hold_an_object_and_balance_classes():
    # A 1000x1000 page: one rare object (class 7) and 50 common ones (class 3) in a far corner.
    rng = np.random.default_rng(0)
    common = np.stack([rng.uniform(900, 980, 50), rng.uniform(900, 980, 50)], 1)
    boxes = np.float32([[500, 100, 510, 110]] + [[y, x, y + 8, x + 8] for y, x in common.tolist()])
    page = {
        "image": np.full((1000, 1000), 255, np.uint8),
        "boxes": boxes,
        "classes": np.int32([7] + [3] * 50),
    }
    draws = [
        input_pipeline.crop_page(
            page, rng, crop_size=64, top_left_prob=0.0, max_objects=64, object_prob=1.0
        )
        for _ in range(200)
    ]
    assert all(d["valid"].any() for d in draws)  # Never a crop of bare margin.
    rare = np.mean([7 in d["classes"][d["valid"]] for d in draws])
    assert 0.35 < rare < 0.65  # Half the crops, though it is 1 object in 51.


class _CountingSource(list):
    """Records that count how many times they were read."""

    reads = 0

    def __getitem__(self, index):
        type(self).reads += 1
        return super().__getitem__(index)


def test_loader_reads_only_a_few_pages_ahead():
    # Decoded pages are 5-10 MB: grain's default read-ahead (500 records) held gigabytes.
    config = tiny.get_config()
    config.data.worker_count = 0
    source = _CountingSource(synthetic_records(3))
    loader = iter(input_pipeline.make_train_loader(source, config.data, seed=0))
    taken = 5
    _take(loader, taken)
    time.sleep(0.5)  # Give the reading threads time to run ahead as far as they may.
    pages = taken * config.data.batch_size
    slack = input_pipeline.READ_AHEAD_PAGES + input_pipeline.READ_THREADS + 1
    assert pages <= _CountingSource.reads <= pages + slack


_CTRL_C_SCRIPT = """
import multiprocessing, os, signal
from dwd_jax.data import input_pipeline

def worker(queue):
    input_pipeline._leave_ctrl_c_to_the_trainer()
    os.kill(os.getpid(), signal.SIGINT)  # A KeyboardInterrupt here would end the worker.
    queue.put("worker survived Ctrl-C")

if __name__ == "__main__":
    before = signal.getsignal(signal.SIGINT)
    input_pipeline._leave_ctrl_c_to_the_trainer()  # The trainer's own process: no change.
    assert signal.getsignal(signal.SIGINT) is before
    ctx = multiprocessing.get_context("spawn")  # As grain starts its workers.
    queue = ctx.Queue()
    process = ctx.Process(target=worker, args=(queue,))
    process.start()
    print(queue.get(timeout=60))
    process.join()
"""


def test_loader_workers_leave_ctrl_c_to_the_trainer(tmp_path):
    # A terminal's Ctrl-C reaches the workers too; they must ignore it so the trainer can
    # finish its step and save (checked by hand: exit 130, no worker traceback).
    script = tmp_path / "ctrl_c.py"
    script.write_text(_CTRL_C_SCRIPT)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "worker survived Ctrl-C" in out.stdout


def test_open_source_says_how_to_prepare_or_which_splits_exist(tmp_path):
    import ml_collections
    import tensorflow_datasets as tfds

    data = ml_collections.ConfigDict({"name": "deep_scores/dense", "data_dir": str(tmp_path)})
    with pytest.raises(FileNotFoundError) as e:
        input_pipeline.open_source(data, "train")
    # Both ways to prepare it: the engraved corpus and the DeepScoresV2 download.
    assert "`python run.py generate`" in str(e.value)
    assert "config.data.manual_dir" in str(e.value)
    assert "`python run.py generate --config=configs/deepscores_v2.py`" in str(e.value)

    dummy = Path(__file__).resolve().parents[1] / "tfds_builders/deep_scores/dummy_data"
    tfds.builder(data.name, data_dir=data.data_dir).download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=dummy)
    )
    with pytest.raises(
        FileNotFoundError, match="has no split 'val'; its splits are test, train, validation"
    ):
        input_pipeline.open_source(data, "val")

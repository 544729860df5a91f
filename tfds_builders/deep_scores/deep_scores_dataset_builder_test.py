"""The `tfds new`-style builder test: build every config from `dummy_data/` and read it back.

`tfds.testing.DatasetBuilderTestCase` needs TensorFlow (it checks `tf.data` specs), which this
project never installs, so this is the same test in pytest: build from the dummy data as the
manual dir, check the split sizes, then check the decoded values against the dummy JSON.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

import dwd_jax  # noqa: F401  (registers deep_scores)
from dwd_jax.classes import DEEPSCORES_CLASSES

DUMMY_DATA = Path(__file__).parent / "dummy_data"
SPLITS = {"train": 3, "test": 1}


@pytest.fixture(scope="module", params=["dense", "complete", "synthetic"])
def sources(request, tmp_path_factory):
    """`{split: data source}` of one config, built from the dummy data."""
    return tfds.data_source(
        f"deep_scores/{request.param}",
        data_dir=tmp_path_factory.mktemp("tfds"),
        download_and_prepare_kwargs={
            "download_config": tfds.download.DownloadConfig(manual_dir=DUMMY_DATA)
        },
    )


def test_splits(sources):
    assert {split: len(source) for split, source in sources.items()} == SPLITS


def test_pages_match_dummy_json(sources):
    for split in SPLITS:
        annotations = json.loads((DUMMY_DATA / f"deepscores_{split}.json").read_text())
        names = {k: c["name"] for k, c in annotations["categories"].items()}
        pages = {int(ex["id"]): ex for ex in sources[split]}
        for image in annotations["images"]:
            page = pages[image["id"]]
            h, w = image["height"], image["width"]
            assert (page["width"], page["height"]) == (w, h)
            assert page["filename"].decode() == image["filename"]
            assert page["image"].shape == (h, w, 1) and page["image"].dtype == np.uint8
            # Annotations of the deepscores set only, in file order; boxes clipped to the page.
            anns = [
                annotations["annotations"][a]
                for a in image["ann_ids"]
                if annotations["annotations"][a]["cat_id"][0] is not None
            ]
            objects = {k: np.asarray(v) for k, v in page["objects"].items()}
            assert len(objects["label"]) == len(anns)
            for i, ann in enumerate(anns):
                x0, y0, x1, y1 = ann["a_bbox"]
                want = [max(y0, 0), max(x0, 0), min(y1, h), min(x1, w)]
                np.testing.assert_allclose(objects["bbox"][i] * [h, w, h, w], want, atol=1e-3)
                name = DEEPSCORES_CLASSES[objects["label"][i]].lower()
                assert name == names[ann["cat_id"][0]].lower().replace("leger", "ledger")
                np.testing.assert_allclose(objects["obbox"][i], ann["o_bbox"], atol=1e-4)
                assert objects["area"][i] == ann["area"]


def test_image_is_grey_ink_on_white(sources):
    # page-1 is RGBA with transparent paper over black RGB: only compositing on white gives
    # white paper. Its staff box outline is drawn in ink.
    page = next(ex for ex in sources["train"] if ex["id"] == 1)
    image = page["image"][..., 0]
    assert image[0, 0] == 255 and image[20, 8] == 0


def test_comment_extras(sources):
    page = next(ex for ex in sources["train"] if ex["id"] == 1)
    objects = {k: np.asarray(v) for k, v in page["objects"].items()}
    np.testing.assert_array_equal(objects["onset"], [np.nan, np.nan, 1.5, np.nan, np.nan])
    np.testing.assert_array_equal(objects["staff_position"], [np.nan, np.nan, -3, np.nan, np.nan])
    np.testing.assert_array_equal(objects["duration"], [np.nan, np.nan, 8, 8, np.nan])


def test_page_without_objects(sources):
    page = next(ex for ex in sources["train"] if ex["id"] == 3)
    assert all(len(v) == 0 for v in page["objects"].values())

"""The `tfds new`-style builder test: build every config from `dummy_data/` and read it back.

`tfds.testing.DatasetBuilderTestCase` needs TensorFlow (it checks `tf.data` specs), which this
project never installs, so this is the same test in pytest: build from the dummy data as the
manual dir, check the split sizes, then check the decoded values against the dummy JSON.
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

import dwd_jax  # noqa: F401  (registers deep_scores)
from dwd_jax.classes import DEEPSCORES_CLASSES

DUMMY_DATA = Path(__file__).parent / "dummy_data"
# The dummy train file holds page-1..3, work lg-87444682 in two styles (its CRC-32 puts it in
# the validation split the DeepScoresV2 configs carve from train) and work lg-5230237 (train).
SPLITS = {
    "dense": {"train": 4, "validation": 2, "test": 1},
    "complete": {"train": 4, "validation": 2, "test": 1},
    "synthetic": {"train": 6, "test": 1},  # Its splits are its annotation files, as they are.
}


@pytest.fixture(scope="module", params=list(SPLITS))
def config(request):
    return request.param


@pytest.fixture(scope="module")
def sources(config, tmp_path_factory):
    """`{split: data source}` of one config, built from the dummy data."""
    return tfds.data_source(
        f"deep_scores/{config}",
        data_dir=tmp_path_factory.mktemp("tfds"),
        download_and_prepare_kwargs={
            "download_config": tfds.download.DownloadConfig(manual_dir=DUMMY_DATA)
        },
    )


def test_splits(config, sources):
    assert {split: len(source) for split, source in sources.items()} == SPLITS[config]


def _page_names(split):
    """The page file names of a dummy annotation file."""
    data = json.loads((DUMMY_DATA / f"deepscores_{split}.json").read_text())
    return {image["filename"] for image in data["images"]}


def test_validation_holds_whole_works_of_the_official_train(config, sources):
    names = {split: {ex["filename"].decode() for ex in source} for split, source in sources.items()}
    assert names["test"] == _page_names("test")  # The official test, untouched.
    if config == "synthetic":
        assert names["train"] == _page_names("train")
        return
    # Train and validation partition the official train pages...
    assert names["train"] | names["validation"] == _page_names("train")
    assert not names["train"] & names["validation"]

    # ... by work: `lg-<id>` of `lg-<id>-aug-<style>--page-<n>.png`, the same score engraved
    # in several styles and pages (other names are works of their own).
    def works(split):
        return {re.match(r"lg-\d+|.*", name)[0] for name in names[split]}

    assert not works("train") & works("validation")
    assert works("validation") == {"lg-87444682"}
    assert len(names["validation"]) == 2  # Both styles of it.


def test_pages_match_dummy_json(sources):
    # Pages by id over all splits: the DeepScoresV2 configs spread the train file over two.
    pages = {int(ex["id"]): ex for source in sources.values() for ex in source}
    for split in ("train", "test"):
        annotations = json.loads((DUMMY_DATA / f"deepscores_{split}.json").read_text())
        names = {k: c["name"] for k, c in annotations["categories"].items()}
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

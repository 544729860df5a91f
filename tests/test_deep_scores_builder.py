"""The DeepScoresV2 reader: the real sample page through the builder, and every bad input.

References are independent of the reader: the sample's JSON read with `json` directly, the
grey page computed with OpenCV.
"""

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow_datasets as tfds

import dwd_jax  # noqa: F401  (registers deep_scores)
from dwd_jax.classes import DEEPSCORES_CLASSES, canonical
from dwd_jax.data import deepscores_json
from tfds_builders.deep_scores import deep_scores_dataset_builder as builder_lib

DUMMY_DATA = Path(builder_lib.__file__).parent / "dummy_data"


def _build(config, manual_dir, data_dir):
    return tfds.data_source(
        f"deep_scores/{config}",
        data_dir=data_dir,
        download_and_prepare_kwargs={
            "download_config": tfds.download.DownloadConfig(manual_dir=manual_dir)
        },
    )


@pytest.fixture
def dummy(tmp_path):
    """A writable copy of the dummy DSv2 folder."""
    return Path(shutil.copytree(DUMMY_DATA, tmp_path / "manual"))


def test_importing_dwd_jax_registers_the_builder_without_jax():
    code = (
        "import sys, dwd_jax, tensorflow_datasets as tfds;"
        "assert 'jax' not in sys.modules, 'dwd_jax imported jax';"
        "print(tfds.builder_cls('deep_scores').name)"
    )
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["deep_scores"]


# --- The real sample page -----------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_page(sample_dir, tmp_path_factory):
    sources = _build("dense", sample_dir, tmp_path_factory.mktemp("tfds"))
    assert list(sources) == ["v2_sample"]
    assert len(sources["v2_sample"]) == 1
    return sources["v2_sample"][0]


def test_sample_page_size_objects_and_classes(sample_page):
    assert (sample_page["width"], sample_page["height"]) == (2707, 3828)
    assert sample_page["image"].shape == (3828, 2707, 1)
    assert sample_page["filename"].decode() == "lg-5230237-aug-emmentaler--page-2.png"
    assert sample_page["id"] == 410
    labels = np.asarray(sample_page["objects"]["label"])
    assert len(labels) == 547
    assert len(set(labels.tolist())) == 35


def test_sample_boxes_labels_and_extras_equal_the_json(sample_page, sample_json):
    data = json.loads(sample_json.read_text())
    anns = list(data["annotations"].values())
    boxes = np.asarray(sample_page["objects"]["bbox"], np.float64) * [3828, 2707, 3828, 2707]
    a_bbox = np.array([a["a_bbox"] for a in anns])
    np.testing.assert_allclose(boxes, a_bbox[:, [1, 0, 3, 2]], rtol=0, atol=0.01)
    np.testing.assert_allclose(
        sample_page["objects"]["obbox"], [a["o_bbox"] for a in anns], rtol=0, atol=1e-3
    )
    np.testing.assert_array_equal(sample_page["objects"]["area"], [a["area"] for a in anns])
    names = [canonical(data["categories"][a["cat_id"][0]]["name"]) for a in anns]
    got = [canonical(DEEPSCORES_CLASSES[i]) for i in sample_page["objects"]["label"]]
    assert got == names
    assert np.isnan(sample_page["objects"]["onset"]).all()  # The sample's comments are "".


def test_sample_image_is_the_page_in_grey(sample_page, sample_page_path):
    rgba = cv2.imread(str(sample_page_path), -1)
    assert (rgba[..., 3] == 255).all()  # Opaque, so grey is the plain luma of the colours.
    want = cv2.cvtColor(rgba, cv2.COLOR_BGRA2GRAY).astype(int)
    assert np.abs(sample_page["image"][..., 0].astype(int) - want).max() <= 1


# --- Where the pages come from ------------------------------------------------------------


def test_release_archive_is_extracted(tmp_path):
    # The releases unpack to a `ds2_dense/` folder; the archive itself is what users download.
    with tarfile.open(tmp_path / "ds2_dense.tar.gz", "w:gz") as tar:
        tar.add(DUMMY_DATA, arcname="ds2_dense")
    sources = _build("dense", tmp_path, tmp_path / "tfds")
    assert {k: len(v) for k, v in sources.items()} == {"train": 4, "validation": 2, "test": 1}


def test_split_without_pages_is_left_out(dummy, tmp_path, caplog):
    _edit(dummy / "deepscores_test.json", lambda d: d.update(images=[], annotations={}))
    sources = _build("synthetic", dummy, tmp_path / "tfds")
    assert {k: len(v) for k, v in sources.items()} == {"train": 6}
    assert "split 'test' is left out" in caplog.text


# --- The validation split of the releases ---------------------------------------------------


def test_validation_pages_are_whole_works_in_the_stated_share():
    works = [f"lg-{i}" for i in range(100_000, 104_000)]
    styles = ("beethoven", "gutenberg1939")
    names = [f"{w}-aug-{style}--page-{n}.png" for w in works for style in styles for n in (1, 2)]
    held_out = builder_lib.validation_pages(names, 0.05)
    held_works = {name.partition("-aug-")[0] for name in held_out}
    assert len(held_out) == 4 * len(held_works)  # Every page of a held-out work.
    assert len(held_works) / len(works) == pytest.approx(0.05, abs=0.01)
    assert builder_lib.validation_pages(names, 0.0) == set()
    assert builder_lib.validation_pages(names, 1.0) == set(names)


def test_validation_works_are_fixed_across_processes():
    # CRC-32, not Python's per-process salted hash: a rebuild holds out the same works.
    names = ["lg-87444682-aug-emmentaler--page-1.png", "lg-5230237-aug-emmentaler--page-2.png"]
    assert builder_lib.validation_pages(names, 0.05) == {names[0]}
    assert builder_lib.work_of(names[1]) == "lg-5230237"
    assert builder_lib.work_of("page-1.png") == "page-1"


def test_folder_with_its_own_validation_file_is_read_as_it_is(dummy, tmp_path):
    (dummy / "deepscores_test.json").rename(dummy / "deepscores_validation.json")
    sources = _build("dense", dummy, tmp_path / "tfds")
    assert {k: len(v) for k, v in sources.items()} == {"train": 6, "validation": 1}


def test_empty_carved_validation_is_left_out(dummy, tmp_path, caplog):
    def keep_train_works(d):
        d["images"] = [im for im in d["images"] if not im["filename"].startswith("lg-87444682")]
        kept = {str(im["id"]) for im in d["images"]}
        d["annotations"] = {k: a for k, a in d["annotations"].items() if a["img_id"] in kept}

    _edit(dummy / "deepscores_train.json", keep_train_works)
    sources = _build("dense", dummy, tmp_path / "tfds")
    assert {k: len(v) for k, v in sources.items()} == {"train": 4, "test": 1}
    assert "split 'validation' is left out" in caplog.text


def test_missing_download_names_files_url_and_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("not the release")
    with pytest.raises(FileNotFoundError) as e:
        _build("dense", tmp_path, tmp_path / "tfds")
    message = str(e.value)
    assert "ds2_dense.tar.gz" in message
    assert "https://zenodo.org/records/4012193" in message
    assert str(tmp_path) in message


def test_empty_manual_dir_names_files_url_and_folder(tmp_path):
    # TFDS checks for an empty manual dir itself and shows our instructions.
    (tmp_path / "manual").mkdir()
    with pytest.raises(AssertionError) as e:
        _build("complete", tmp_path / "manual", tmp_path / "tfds")
    message = str(e.value)
    assert "ds2_complete.tar.gz" in message and "4012193" in message
    assert str(tmp_path / "manual") in message


# --- Bad annotation files -------------------------------------------------------------------


def test_truncated_json_names_file_and_position(dummy):
    path = dummy / "deepscores_train.json"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(deepscores_json.AnnotationError, match="not valid JSON") as e:
        deepscores_json.load_pages(path)
    assert str(path) in str(e.value) and "line " in str(e.value) and "of 1000)" in str(e.value)


def test_truncated_json_fails_the_build_with_the_same_message(dummy, tmp_path):
    path = dummy / "deepscores_test.json"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(deepscores_json.AnnotationError, match="deepscores_test.json: not valid"):
        _build("synthetic", dummy, tmp_path / "tfds")


def _edit(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


def test_missing_key_names_key_and_annotation(dummy):
    path = _edit(dummy / "deepscores_train.json", lambda d: d["annotations"]["102"].pop("a_bbox"))
    with pytest.raises(
        deepscores_json.AnnotationError, match="annotation 102: missing key 'a_bbox'"
    ):
        deepscores_json.load_pages(path)


def test_missing_top_level_key(dummy):
    path = _edit(dummy / "deepscores_test.json", lambda d: d.pop("categories"))
    with pytest.raises(deepscores_json.AnnotationError, match="missing top-level key 'categories'"):
        deepscores_json.load_pages(path)


def test_annotation_of_a_missing_page_names_it(dummy):
    def drop_page_2(d):
        d["images"] = [im for im in d["images"] if im["id"] != 2]

    path = _edit(dummy / "deepscores_train.json", drop_page_2)
    with pytest.raises(deepscores_json.AnnotationError, match="annotation 200: img_id 2 is not"):
        deepscores_json.load_pages(path)


def test_repeated_page_id(dummy):
    path = _edit(dummy / "deepscores_train.json", lambda d: d["images"][1].update(id=1))
    with pytest.raises(deepscores_json.AnnotationError, match="repeats a page id"):
        deepscores_json.load_pages(path)


def test_repeated_page_name_in_one_file_names_page_and_file(dummy, tmp_path):
    # TFDS would fail on the repeated key only when writing the split, and misleadingly.
    train = _edit(
        dummy / "deepscores_train.json",
        lambda d: d["images"].append({**d["images"][0], "id": 99, "ann_ids": []}),
    )
    with pytest.raises(ValueError, match="two pages are named 'page-1.png'") as e:
        _build("synthetic", dummy, tmp_path / "tfds")
    assert f"twice in {train};" in str(e.value)
    assert "must be unique" in str(e.value) and "regenerate" in str(e.value)


def test_repeated_page_name_across_splits_names_both_files(dummy, tmp_path):
    test = _edit(
        dummy / "deepscores_test.json", lambda d: d["images"][0].update(filename="page-2.png")
    )
    with pytest.raises(ValueError, match="two pages are named 'page-2.png'") as e:
        _build("synthetic", dummy, tmp_path / "tfds")
    assert f"in {test} and {dummy / 'deepscores_train.json'};" in str(e.value)


def test_unknown_class_name_names_category_and_class(dummy):
    def rename(d):
        d["categories"]["42"]["name"] = "stemm"

    path = _edit(dummy / "deepscores_train.json", rename)
    with pytest.raises(deepscores_json.AnnotationError, match="category 42: unknown .* 'stemm'"):
        deepscores_json.load_pages(path)


def test_unknown_category_id_names_annotation(dummy):
    path = _edit(
        dummy / "deepscores_test.json", lambda d: d["annotations"]["700"].update(cat_id=["999"])
    )
    with pytest.raises(deepscores_json.AnnotationError, match=r"annotation 700: cat_id \['999'\]"):
        deepscores_json.load_pages(path)


@pytest.mark.parametrize(
    "a_bbox",
    [[5.0, 10.0, 4.0, 40.0], [100.0, 10.0, 110.0, 20.0], [1.0, 2.0, 3.0], [1.0, "x", 3.0, 4.0]],
)
def test_bad_box_names_annotation(dummy, a_bbox):
    path = _edit(
        dummy / "deepscores_test.json", lambda d: d["annotations"]["700"].update(a_bbox=a_bbox)
    )
    with pytest.raises(deepscores_json.AnnotationError, match="annotation 700: a_bbox"):
        deepscores_json.load_pages(path)


def test_box_past_the_border_is_clipped():
    pages = deepscores_json.load_pages(DUMMY_DATA / "deepscores_train.json")
    page_2 = next(p for p in pages if p.id == 2)  # a_bbox [70, 100, 81.5, 108] on 80x112.
    np.testing.assert_array_equal(page_2.boxes, [[100, 70, 108, 80]])


# --- Comments (DeepScores-extended extras) --------------------------------------------------


def test_comments_in_any_order_and_unknown_keys_ignored():
    got = deepscores_json.parse_comments("duration:4;instance:#00ff3d;onset:1.5;rel_position:-2;")
    assert got == {"onset": 1.5, "rel_position": -2.0, "duration": 4.0}
    assert deepscores_json.parse_comments("") == {}


@pytest.mark.parametrize("comments", ["onset:soon;", "onset 1.5;"])
def test_malformed_comment_names_annotation(comments):
    with pytest.raises(deepscores_json.AnnotationError, match="annotation 7"):
        deepscores_json.parse_comments(comments, where="annotation 7")


# --- Bad images ---------------------------------------------------------------------------


def _page_1(folder):
    pages = deepscores_json.load_pages(folder / "deepscores_train.json")
    return next(p for p in pages if p.id == 1)


def test_missing_image_names_page_and_file(dummy):
    (dummy / "images/page-1.png").unlink()
    with pytest.raises(FileNotFoundError, match="page 1: image .*page-1.png is missing"):
        builder_lib.page_example(_page_1(dummy), dummy / "images/page-1.png")


def test_corrupt_png_names_page_and_file(dummy, tmp_path):
    image = dummy / "images/page-1.png"
    image.write_bytes(image.read_bytes()[:60])
    with pytest.raises(ValueError, match="page 1: image .*page-1.png cannot be decoded"):
        builder_lib.page_example(_page_1(dummy), image)
    with pytest.raises(ValueError, match="page-1.png cannot be decoded"):
        _build("synthetic", dummy, tmp_path / "tfds")


def test_image_of_the_wrong_size_names_both_sizes(dummy):
    image = dummy / "images/page-1.png"
    image.write_bytes((dummy / "images/page-7.png").read_bytes())
    with pytest.raises(ValueError, match="is 72x100 but its annotations say 96x136"):
        builder_lib.page_example(_page_1(dummy), image)


def test_grey_png_composites_alpha_on_white(tmp_path):
    # Half-transparent red over nothing: composited on white it is (255, 128, 128) -> luma.
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 127
    path = tmp_path / "page.png"
    cv2.imwrite(str(path), rgba[..., [2, 1, 0, 3]])
    grey = cv2.imdecode(np.frombuffer(builder_lib.grey_png(path, (6, 4), page_id=0), np.uint8), -1)
    composite = 255 * (1 - 127 / 255) + np.array([255, 0, 0]) * 127 / 255
    want = composite @ [0.299, 0.587, 0.114]
    assert grey.shape == (4, 6) and np.abs(grey.astype(float) - want).max() <= 1.5


def test_grey_png_scales_16_bit_pages(tmp_path):
    path = tmp_path / "page.png"
    cv2.imwrite(str(path), np.array([[0, 1000, 30000, 65535]], np.uint16))
    grey = cv2.imdecode(np.frombuffer(builder_lib.grey_png(path, (4, 1), page_id=0), np.uint8), -1)
    np.testing.assert_array_equal(grey, [[0, 4, 117, 255]])


def test_config_folder_in_manual_dir(tmp_path):
    # `run.py generate` writes `synthetic/`; the releases extract to `ds2_dense/`, `ds2_complete/`.
    shutil.copytree(DUMMY_DATA, tmp_path / "manual/synthetic")
    sources = _build("synthetic", tmp_path / "manual", tmp_path / "tfds")
    assert {k: len(v) for k, v in sources.items()} == {"train": 6, "test": 1}


def test_stored_page_is_the_page_inference_reads(sample_dir, sample_page_path):
    # One grey conversion (dwd_jax.image): a page evaluated from TFDS and the same page read
    # as a user's file are the same pixels.
    from dwd_jax.detection import detect

    page = deepscores_json.load_pages(sample_dir / "deepscores_v2_sample.json")[0]
    png = builder_lib.grey_png(sample_page_path, (page.width, page.height), page_id=page.id)
    stored = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(stored, detect.load_page(sample_page_path))

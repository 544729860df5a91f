"""Tests for dwd_jax.detection.detect: page loading, staff-space estimation, bands, files out.

The model is replaced by a fake predict_fn that reads ink blobs with scipy, so the geometry
(scaling, bands, mapping back to page pixels) is checked exactly without a network.
"""

import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from configs import default
from dwd_jax import classes as classes_lib
from dwd_jax import image
from dwd_jax.data import degrade
from dwd_jax.detection import detect
from dwd_jax.omr import capture


def staff_page(space=14.0, thickness=2, height=400, width=300, staves=3):
    """White page with `staves` five-line staves (line tops at round(k * space))."""
    page = np.full((height, width), 255, np.uint8)
    for s in range(staves):
        top = 40 + s * 120
        for k in range(5):
            y = top + round(k * space)
            page[y : y + thickness, 10:-10] = 0
    return page


def blobs(page):
    """Fake predict_fn: every ink component is an object of model class 42, score 0.9."""
    labels, _ = ndimage.label(np.asarray(page) < 128)
    slices = ndimage.find_objects(labels)
    boxes = np.array([[s[0].start, s[1].start, s[0].stop, s[1].stop] for s in slices], np.float32)
    n = len(slices)
    return {"boxes": boxes.reshape(n, 4), "classes": np.full(n, 42), "scores": np.full(n, 0.9)}


def config(**detect_fields):
    c = default.get_config()
    c.detect.update(detect_fields)
    return c


# --- load_page ----------------------------------------------------------------------------------


def test_load_page_reads_every_mode_as_grey_on_white(tmp_path):
    grey = np.array([[0, 128, 255]], np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    Image.fromarray(np.stack([grey] * 3, -1)).save(tmp_path / "rgb.tif")
    Image.fromarray(np.stack([grey] * 3, -1)).save(tmp_path / "rgb.jpg", quality=100)
    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[..., 3] = [255, 0, 128]  # Opaque black, transparent, half-transparent black.
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    Image.fromarray(np.array([[0, 257 * 128, 65535]], np.uint16)).save(tmp_path / "deep.png")
    for name in ("grey.png", "rgb.tif", "deep.png"):
        np.testing.assert_array_equal(detect.load_page(tmp_path / name), grey, err_msg=name)
    np.testing.assert_allclose(detect.load_page(tmp_path / "rgb.jpg"), grey, atol=2)
    np.testing.assert_allclose(detect.load_page(tmp_path / "rgba.png"), [[0, 255, 127]], atol=1)
    assert detect.load_page(tmp_path / "grey.png").dtype == np.uint8


def zero_width_png(path):
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    ihdr = struct.pack(">IIBBBBB", 0, 5, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def test_load_page_errors_name_the_file_and_the_problem(tmp_path):
    (tmp_path / "notes.png").write_text("this is not a picture")
    (tmp_path / "empty.png").write_bytes(b"")
    zero_width_png(tmp_path / "zero.png")
    noise = np.random.default_rng(0).integers(0, 256, (40, 40), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "cut.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "cut.png").read_bytes()[:800])  # Truncated.
    cases = {
        "missing.png": "no such file",
        "notes.png": "not an image",
        "empty.png": "empty",
        "zero.png": "zero width or height",
        "cut.png": "unreadable image",
    }
    for name, problem in cases.items():
        with pytest.raises(detect.PageError, match=rf"{name}.*{problem}"):
            detect.load_page(tmp_path / name)


# --- staff space --------------------------------------------------------------------------------


@pytest.mark.parametrize("space", [14.0, 12.5, 21.0])
def test_staff_space_of_synthetic_staves(space):
    page = staff_page(space)
    # Noteheads and a stem must not fool the estimate.
    page[100:112, 50:64] = 0
    page[60:150, 63:65] = 0
    assert detect.estimate_staff_space(page) == pytest.approx(space, abs=0.1)


def test_staff_space_of_the_real_sample_page(sample_json, sample_page_path):
    page = detect.load_page(sample_page_path)
    space = detect.estimate_staff_space(page)
    # The staff boxes span four spacings plus one line thickness (about 2.3 px).
    anns = json.loads(sample_json.read_text())["annotations"]
    heights = [a["a_bbox"][3] - a["a_bbox"][1] for a in anns.values() if a["cat_id"][0] == "135"]
    assert len(heights) == 12
    assert space == pytest.approx((np.median(heights) - 2.3) / 4, abs=0.3)
    assert 22.5 < space < 23.2


@pytest.mark.parametrize("space", [14.0, 21.0])
def test_staff_space_of_faint_grey_staves_on_grey_paper(space):
    # Lines lighter than the fixed ink level (a blurred, low-resolution capture) on grey
    # paper: the flattened page's Otsu level finds them.
    page = np.where(staff_page(space) < 128, 170, 230).astype(np.uint8)
    assert (page >= 128).all()
    assert detect.estimate_staff_space(page) == pytest.approx(space, abs=0.1)


def beamed_page(space, thickness=2, staves=4, width=900):
    """Staves of beamed sixteenth notes: more ink in heads and beams than in the lines."""
    page = np.full((60 + staves * 10 * round(space), width), 255, np.uint8)
    for s in range(staves):
        top = 40 + s * 10 * round(space)
        for k in range(5):
            y = top + round(k * space)
            page[y : y + thickness, 20:-20] = 0
        stem_top = top - round(2.5 * space)
        for i, x in enumerate(range(60, width - 60, round(2.2 * space))):
            cy = top + round((i % 5 + 2) * space / 2)
            axes = (round(0.65 * space), round(0.5 * space))
            cv2.ellipse(page, (x, cy), axes, -20, 0, 360, 0, -1)
            page[stem_top:cy, x + axes[0] - 2 : x + axes[0]] = 0
        for b in range(2):
            y = stem_top + b * round(0.75 * space)
            page[y : y + round(0.5 * space), 60 : width - 60] = 0
    return page


@pytest.mark.parametrize("space", [14.0, 16.0])
def test_staff_space_of_a_low_resolution_capture_of_beamed_notes(space):
    # Shrunk to 0.35 and enlarged back, the lines are pale: the runs alone sum to about twice
    # the spacing (beams and heads repeat at it), and the horizontal strokes' correlation
    # picks the half. Such a capture loses the exact line thickness, hence the tolerance.
    page, _ = degrade.resolution(
        beamed_page(space), np.zeros((0, 4)), np.random.default_rng(0), factor=(0.35, 0.35)
    )
    assert detect.estimate_staff_space(page) == pytest.approx(space, rel=0.12)
    # The clean page is exact.
    assert detect.estimate_staff_space(beamed_page(space)) == pytest.approx(space, abs=0.1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_staff_space_of_a_photographed_page_whose_runs_measure_noise(seed):
    from dwd_jax.eval import robustness

    clean = detect.load_page(Path(__file__).parent / "data" / "pages" / "generated_leland.png")
    space = detect.estimate_staff_space(clean)
    assert space == pytest.approx(18.7, abs=0.1)
    condition = default.get_config().robustness.conditions.photo.to_dict()  # A phone's.
    photo, _ = robustness.apply(
        clean, np.zeros((0, 4), np.float32), condition, np.random.default_rng(seed)
    )
    # The runs measure blur and noise, a quarter of the spacing or less: taken for it, they
    # would show the model a page four or more times too large.
    runs = detect._run_spacings(capture.flatten(photo))
    assert runs and max(runs) < 0.3 * space
    # The horizontal strokes still repeat at the staff's period.
    assert detect.estimate_staff_space(photo) == pytest.approx(space, rel=0.04)


def test_evaluation_scores_a_page_without_staves_as_all_missed():
    from dwd_jax.eval import evaluation

    good = staff_page(14.0)
    truth = np.float32([[40, 10, 42, 290]])
    pages = [
        lambda: evaluation.GroundTruth("staves", good, truth, np.int32([42])),
        lambda: evaluation.GroundTruth(
            "blank", np.full((400, 300), 255, np.uint8), truth, np.int32([42])
        ),
    ]
    c = config()
    c.omr.enabled = False
    r = evaluation.evaluate_pages(pages, blobs, config=c)
    assert r["failed_pages"] == ["blank"] and r["num_pages"] == 2
    (line,) = [x for x in r["per_class"] if x["n_gt"]]
    assert line["n_gt"] == 2  # The blank page's object counts, missed.
    assert evaluation.headline(r)["failed_pages"] == 1


def test_blank_page_asks_for_a_fixed_scale():
    with pytest.raises(detect.PageError, match="config.detect.scale"):
        detect.estimate_staff_space(np.full((50, 50), 255, np.uint8))


def test_a_page_without_horizontal_strokes_asks_for_a_fixed_scale():
    page = np.full((300, 300), 255, np.uint8)
    page[20:280, ::25] = 0  # Vertical bars only: nothing repeats down the page.
    with pytest.raises(detect.PageError, match="no staff-line pattern.*config.detect.scale"):
        detect.estimate_staff_space(page)


def test_rescale_and_page_scale():
    page = staff_page(17.0, thickness=4)  # Lines stay solid ink at half size.
    scale, space = detect.page_scale(page, config(staff_space=8.5))
    assert space == pytest.approx(17.0, abs=0.1) and scale == pytest.approx(0.5, abs=0.01)
    assert detect.page_scale(page, config(scale=0.25)) == (0.25, None)
    small = image.resize(page, 0.5)
    assert small.shape == (200, 150) and small.dtype == np.uint8
    assert detect.estimate_staff_space(small) == pytest.approx(8.5, abs=0.3)


def test_the_network_reads_a_shadowed_page_lit_evenly():
    page = staff_page(17.0, thickness=4)
    shadowed = degrade.uneven_light(
        page, np.zeros((0, 4), np.float32), np.random.default_rng(0), darkest=(0.5, 0.5)
    )[0]
    bands, layout = detect.prepare_page(shadowed, config=config())
    space = layout.staff_space
    want = image.resize(capture.even_light(shadowed, space), layout.scale)
    np.testing.assert_array_equal(bands[0, : want.shape[0], : want.shape[1]], want)
    assert not np.array_equal(capture.even_light(shadowed, space), shadowed)
    # An even page reaches the network as it is.
    bands, layout = detect.prepare_page(page, config=config())
    want = image.resize(page, layout.scale)
    np.testing.assert_array_equal(bands[0, : want.shape[0], : want.shape[1]], want)
    bands, layout = detect.prepare_page(shadowed, config=config(even_light=False))
    want = image.resize(shadowed, layout.scale)
    np.testing.assert_array_equal(bands[0, : want.shape[0], : want.shape[1]], want)


# --- bands --------------------------------------------------------------------------------------


@pytest.mark.parametrize("height", [1000, 1041, 3333])
def test_band_layout_partitions_the_page(height):
    band, bands = detect.band_layout(height, 640, max_pixels=640 * 480, overlap=100, multiple=80)
    assert band == 480 and len(bands) > 1
    starts, keep_from, keep_to = (np.array(x) for x in zip(*bands, strict=True))
    assert starts[0] == 0 and starts[-1] + band == height  # Every band lies inside the page.
    assert keep_from[0] == 0 and keep_to[-1] == height
    np.testing.assert_array_equal(keep_from[1:], keep_to[:-1])  # Keep ranges tile the rows.
    assert (np.diff(starts) <= band - 100).all()  # Neighbours share at least `overlap` rows.
    # A centre in a band's keep range is at least overlap / 2 from that band's cut edges.
    assert (keep_from[1:] - starts[1:] >= 50).all()
    assert (starts[:-1] + band - keep_to[:-1] >= 50).all()


def test_band_layout_single_band_and_too_wide():
    assert detect.band_layout(300, 200, max_pixels=10**6, overlap=100, multiple=80) == (
        300,
        [(0, 0, 300)],
    )
    with pytest.raises(ValueError, match="scale the page down to at most"):
        detect.band_layout(3000, 5000, max_pixels=10**6, overlap=100, multiple=80)


# --- detect_page / detect_pages -----------------------------------------------------------------


def scattered_page():
    """A 600x200 staff-free page of 14 squares of 12 px, some sitting on future band edges."""
    page = np.full((600, 200), 255, np.uint8)
    tops = [5, 60, 150, 155, 230, 300, 310, 390, 400, 470, 520, 560, 575, 100]
    lefts = [5, 30, 60, 90, 120, 150, 10, 40, 70, 100, 130, 160, 20, 180]
    for t, x in zip(tops, lefts, strict=True):
        page[t : t + 12, x : x + 12] = 0
    expected = np.array([[t, x, t + 12, x + 12] for t, x in zip(tops, lefts, strict=True)])
    return page, expected


def sort_boxes(b):
    return b[np.lexsort(b.T[::-1])]


def test_detect_page_bands_report_each_object_once_in_page_pixels():
    page, expected = scattered_page()
    whole = config(scale=1.0, max_pixels=10**6, overlap=40)
    banded = config(scale=1.0, max_pixels=200 * 160, overlap=40)
    for c in (whole, banded):
        c.data.pad_multiple = 40
    boxes, classes, scores, info = detect.detect_page(page, blobs, config=whole)
    assert info["bands"] == 1
    np.testing.assert_array_equal(sort_boxes(boxes), sort_boxes(expected))
    boxes, classes, scores, info = detect.detect_page(page, blobs, config=banded)
    assert info["bands"] > 3 and "bands" in info["notes"][0]
    np.testing.assert_array_equal(sort_boxes(boxes), sort_boxes(expected))
    assert (classes == 42).all() and (scores == np.float32(0.9)).all()


def test_detect_page_maps_boxes_back_from_model_scale():
    page, expected = scattered_page()
    seen = []

    def predict(model_page):
        seen.append(model_page.shape)
        return blobs(model_page)

    c = config(scale=0.5)
    boxes, _, _, info = detect.detect_page(page, predict, config=c)
    assert seen == [(320, 160)]  # 300x100 at model scale, padded white to multiples of 160.
    assert info["scale"] == 0.5 and info["staff_space"] is None
    np.testing.assert_allclose(sort_boxes(boxes), sort_boxes(expected), atol=2)


def test_detect_page_scales_down_pages_too_wide_for_bands():
    page, _ = scattered_page()
    c = config(scale=1.0, max_pixels=160 * 80, overlap=40)
    c.data.pad_multiple = 40
    boxes, _, _, info = detect.detect_page(page, blobs, config=c)
    assert info["scale"] < 1.0 and "scaled by a further" in info["notes"][0]
    assert len(boxes) == 14 and boxes.max() <= 600


def test_detect_pages_survives_bad_pages_and_writes_every_file(tmp_path):
    page, expected = scattered_page()
    Image.fromarray(page).save(tmp_path / "good.png")
    Image.fromarray(staff_page(17.0)).convert("RGBA").save(tmp_path / "staves.png")
    (tmp_path / "readme.txt").write_text("not a page")
    paths = [tmp_path / "good.png", tmp_path / "missing.tif", tmp_path / "readme.txt"]
    paths.append(tmp_path / "staves.png")
    c = config(scale=1.0)  # Fixed: good.png has no staff lines to measure.
    out = tmp_path / "out"
    summary = detect.detect_pages(paths, blobs, config=c, out_dir=out, image_ids=[7, 8, 9, 10])
    ok = [p["ok"] for p in summary["pages"]]
    assert ok == [True, False, False, True] and summary["num_failed"] == 2
    assert "missing.tif" in summary["pages"][1]["error"]
    assert "readme.txt" in summary["pages"][2]["error"]
    proposals = json.loads((out / "proposals.json").read_text())
    assert proposals["annotation_set"] == "deepscores"
    mine = [p for p in proposals["proposals"] if p["img_id"] == 7]
    assert len(mine) == 14 and {p["cat_id"] for p in mine} == {42}
    got = sort_boxes(np.array([[b[1], b[0], b[3], b[2]] for b in (p["bbox"] for p in mine)]))
    np.testing.assert_array_equal(got, sort_boxes(expected))  # bbox is [x0, y0, x1, y1].
    coco = json.loads((out / "coco_results.json").read_text())
    assert len(coco) == len(proposals["proposals"])
    assert coco[0]["bbox"][2:] == [12.0, 12.0]  # [x, y, w, h].
    for p in summary["pages"]:
        if p["ok"]:
            assert Image.open(p["overlay"]).size[1] == Image.open(p["path"]).size[1]
    assert json.loads((out / "detect_summary.json").read_text())["num_failed"] == 2


def test_min_score_table_takes_each_class_its_own_score_else_the_shared_one():
    c = config(min_score=0.3, class_min_scores=(("stem", 0.5), ("beam", 0.1)))
    table = detect.min_score_table(c)
    assert table.shape == (137,) and table[42] == np.float32(0.5)  # stem is model class 42.
    assert table[classes_lib.model_class(c, "beam")] == np.float32(0.1)
    assert (np.delete(table, [42, classes_lib.model_class(c, "beam")]) == np.float32(0.3)).all()
    with pytest.raises(KeyError, match="stemm"):
        detect.min_score_table(config(class_min_scores=(("stemm", 0.5),)))
    with pytest.raises(ValueError, match="class_min_scores entry"):
        detect.min_score_table(config(class_min_scores=(("stem", 1.5),)))


@pytest.mark.parametrize(
    "fields, written",
    [({"min_score": 0.9, "class_min_scores": ()}, 14),
     ({"min_score": 0.91, "class_min_scores": ()}, 0),
     ({"min_score": 0.0, "class_min_scores": (("stem", 0.95),)}, 0)],
)
def test_detect_pages_leaves_detections_below_min_score_out_of_every_file(
    tmp_path, fields, written
):
    page, _ = scattered_page()
    Image.fromarray(page).save(tmp_path / "good.png")
    c = config(scale=1.0, **fields)  # blobs scores every object 0.9, as a stem.
    summary = detect.detect_pages([tmp_path / "good.png"], blobs, config=c, out_dir=tmp_path)
    assert summary["pages"][0]["num_detections"] == written
    assert sum(summary["symbols_per_class"].values()) == written
    proposals = json.loads((tmp_path / "proposals.json").read_text())["proposals"]
    assert len(proposals) == len(json.loads((tmp_path / "coco_results.json").read_text()))
    assert len(proposals) == written and summary["min_score"] == fields["min_score"]


def test_detect_pages_reports_a_page_whose_prediction_fails(tmp_path):
    Image.fromarray(staff_page()).save(tmp_path / "a.png")
    Image.fromarray(staff_page()).save(tmp_path / "b.png")
    calls = []

    def flaky(page):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return blobs(page)

    summary = detect.detect_pages(
        [tmp_path / "a.png", tmp_path / "b.png"], flaky, config=config(), out_dir=tmp_path / "o"
    )
    assert summary["pages"][0]["error"] == "RuntimeError: out of memory"
    assert summary["pages"][1]["ok"] and summary["pages"][1]["staff_space"] == pytest.approx(
        14, abs=0.1
    )


def test_real_sample_page_round_trip_with_an_oracle_predict_fn(sample_json, sample_page_path):
    """The whole page path on the real page: a predict_fn that returns the ground truth at
    model scale must give it back in page pixels, and evaluate must score it 1.0."""
    from dwd_jax.eval import evaluate

    anns = json.loads(sample_json.read_text())["annotations"]
    gt = np.array([[a["a_bbox"][i] for i in (1, 0, 3, 2)] for a in anns.values()], np.float32)
    classes = np.array([int(a["cat_id"][0]) for a in anns.values()])
    page = detect.load_page(sample_page_path)
    scale, _ = detect.page_scale(page, config(staff_space=8.5))
    h, w = image.scaled_shape(page.shape, scale)
    shapes = []

    def oracle(model_page):
        shapes.append(model_page.shape)
        factor = np.float32([h / page.shape[0], w / page.shape[1]] * 2)
        return {"boxes": gt * factor, "classes": classes, "scores": np.ones(len(gt))}

    no_snap = config(staff_space=8.5)  # The paper config's spacing: one band.
    # Exact boxes back: no re-measuring on the ink (tests/test_ink.py, tests/test_staves.py and
    # tests/test_dots.py read ink).
    no_snap.omr.enabled = False
    boxes, got_classes, _, info = detect.detect_page(page, oracle, config=no_snap)
    # Staff space 22.8 px -> 8.5 px: scale 0.373, one pass over the page padded to 160s.
    assert info["scale"] == pytest.approx(0.373, abs=0.002) and (h, w) == (1427, 1009)
    assert shapes == [(1440, 1120)]
    np.testing.assert_allclose(boxes, np.minimum(gt, [3828, 2707] * 2), atol=1e-2)
    r = evaluate.evaluate([evaluate.Page(gt, classes, boxes, got_classes, np.ones(len(gt)))])
    assert r["map"] == pytest.approx(1.0) and r["voc_map50"] == pytest.approx(1.0)


def test_detect_pages_reads_folders_pdfs_and_multi_page_tiffs(tmp_path):
    import pypdfium2

    page = Image.fromarray(staff_page(17.0))
    scans = tmp_path / "in" / "scans"
    scans.mkdir(parents=True)
    page.save(scans / "two.tif", save_all=True, append_images=[page])
    page.save(tmp_path / "in" / "score.pdf", resolution=150.0)
    (tmp_path / "in" / "notes.txt").write_text("not searched: not a page suffix")
    (tmp_path / "in" / "broken.pdf").write_bytes(b"%PDF-1.4 truncated")
    empty = pypdfium2.PdfDocument.new()
    empty.save(str(tmp_path / "in" / "empty.pdf"))
    refs = detect.page_refs([tmp_path / "in"])
    assert [r.name for r in refs] == [  # In path order: scans/ sorts before score.pdf.
        "broken.pdf", "empty.pdf", "two.tif#1", "two.tif#2", "score.pdf"
    ]
    c = config()
    c.detect.pdf_dpi = 150.0  # The PDF's own resolution: its page comes back pixel for pixel.
    np.testing.assert_array_equal(
        detect.load_page(tmp_path / "in" / "score.pdf", dpi=150.0).shape, page.size[::-1]
    )
    summary = detect.detect_pages([tmp_path / "in"], blobs, config=c, out_dir=tmp_path / "o")
    assert summary["num_pages"] == 3 and summary["num_failed"] == 2
    # A truncated PDF and one without pages are named and skipped; the rest are read.
    assert all("not a readable PDF, or one with no pages" in s for s in summary["skipped"])
    assert [s.split(":")[0] for s in summary["skipped"]] == ["broken.pdf", "empty.pdf"]
    done = {p["name"] for p in summary["pages"] if p["ok"]}
    assert done == {"score.pdf", "two.tif#1", "two.tif#2"}
    assert (tmp_path / "o" / "two_p2_overlay.png").exists()
    assert summary["seconds_per_page"] > 0 and isinstance(summary["symbols_per_class"], dict)


# --- detect_stream: batches -----------------------------------------------------------------


class BatchedBlobs:
    """A fake `detect.Predictor` of batch size 3 that records each batch's band shapes and
    whether its last bands are white padding; `fail_on` makes that call raise."""

    batch_size = 3

    def __init__(self, fail_on=None):
        self.calls, self.fail_on = [], fail_on

    def submit(self, bands):
        self.calls.append((bands.shape, [bool((b == 255).all()) for b in bands]))
        if len(self.calls) == self.fail_on:
            raise RuntimeError("device lost")
        results = [blobs(b) for b in bands]
        return lambda: results


def test_detect_stream_batches_bands_of_one_shape_and_keeps_the_input_order():
    c = config(scale=1.0)
    c.data.pad_multiple = 40
    small, _ = scattered_page()
    large = np.full((700, 260), 255, np.uint8)
    large[:600, :200] = small
    pages = [small, large, small, small, large]  # Shapes 600x200 -> 600x200, 700x260 -> 720x280.
    loaders = [lambda p=p, i=i: (p, i) for i, p in enumerate(pages)]
    model = BatchedBlobs()
    done = list(detect.detect_stream(loaders, model, config=c))
    assert [d.index for d in done] == [d.payload for d in done] == [0, 1, 2, 3, 4]
    # The three small pages fill one batch; the two large ones go in a batch padded with white.
    shapes = sorted((shape, blank) for shape, blank in model.calls)
    assert shapes == [((3, 600, 200), [False] * 3), ((3, 720, 280), [False, False, True])]
    for d, page in zip(done, pages, strict=True):
        alone = detect.network_detections(page, blobs, config=c)
        np.testing.assert_array_equal(sort_boxes(d.detections[0]), sort_boxes(alone[0]))


def test_detect_stream_fails_only_the_pages_of_a_failed_batch():
    c = config(scale=1.0)
    c.data.pad_multiple = 40
    small, _ = scattered_page()
    pages = [small] * 4 + [np.zeros((0, 0), np.uint8)]  # The last cannot be prepared.
    loaders = [lambda p=p: (p, None) for p in pages]
    done = list(detect.detect_stream(loaders, BatchedBlobs(fail_on=1), config=c))
    assert [type(d.error).__name__ for d in done[:3]] == ["RuntimeError"] * 3
    assert done[3].error is None and len(done[3].detections[0]) == 14
    assert done[4].error is not None and done[4].detections is None

"""Tests for dwd_jax.visualize: pixels land where the boxes are, maps and panels have the
documented layout, and plots are written as readable PNGs."""

import json

import numpy as np
import pytest
from PIL import Image

from dwd_jax import visualize


def test_palette_is_stable_distinct_and_readable_on_white():
    palette = visualize.class_palette()
    assert palette.shape == (137, 3) and palette.dtype == np.uint8
    np.testing.assert_array_equal(palette, visualize.class_palette())
    assert tuple(palette[0]) == (255, 255, 255)
    assert len({tuple(c) for c in palette[1:]}) == 136
    luminance = palette[1:].astype(float) @ np.array([0.299, 0.587, 0.114])
    assert luminance.max() < 200  # Every class colour shows on white paper.


def test_draw_boxes_outlines_each_box_in_its_class_colour():
    image = np.full((50, 60), 255, np.uint8)
    boxes = np.array([[10, 5, 20, 25], [30, 30, 45, 55]], np.float32)  # [y0, x0, y1, x1]
    classes = np.array([42, 7])
    out = np.asarray(visualize.draw_boxes(image, boxes, classes, legend=False))
    palette = visualize.class_palette()
    assert out.shape == (50, 60, 3)
    np.testing.assert_array_equal(out[10, 15], palette[42])  # Top edge, x between x0 and x1.
    np.testing.assert_array_equal(out[15, 5], palette[42])  # Left edge.
    np.testing.assert_array_equal(out[45, 40], palette[7])  # Bottom edge of the second box.
    np.testing.assert_array_equal(out[15, 15], [255, 255, 255])  # Inside stays paper.
    np.testing.assert_array_equal(out[5, 50], [255, 255, 255])  # Away from all boxes.


def test_draw_boxes_fades_low_scores_and_appends_a_legend():
    image = np.zeros((40, 40), np.uint8)
    boxes = np.array([[2, 2, 10, 10], [20, 20, 30, 30]], np.float32)
    out = visualize.draw_boxes(image, boxes, np.array([3, 3]), np.array([1.0, 0.0]))
    pixels = np.asarray(out).astype(int)
    assert out.height == 40 and out.width > 40  # Legend column on the right.
    assert pixels[2, 5].sum() < pixels[20, 25].sum()  # The score-0 box is paler.


def test_draw_boxes_rejects_mismatched_inputs_and_labels_passed_as_classes():
    image = np.zeros((10, 10), np.uint8)
    with pytest.raises(ValueError, match="2 boxes, 1 classes"):
        visualize.draw_boxes(image, np.zeros((2, 4)), np.array([1]))
    with pytest.raises(ValueError, match="add 1 to DeepScores labels"):
        visualize.draw_boxes(image, np.zeros((1, 4)), np.array([-1]))


def test_energy_and_class_maps_colour_each_value_consistently():
    energy = np.array([[0, 19], [19, 0]])
    rgb = np.asarray(visualize.energy_map_image(energy))
    np.testing.assert_array_equal(rgb[0, 0], rgb[1, 1])
    assert rgb[0, 1].sum() > rgb[0, 0].sum()  # Centres are brighter than background.
    classes = np.array([[0, 5]])
    np.testing.assert_array_equal(
        np.asarray(visualize.class_map_image(classes)), visualize.class_palette()[[[0, 5]]]
    )


def test_training_panel_has_one_row_per_group_and_five_tiles():
    rng = np.random.default_rng(0)
    maps = [rng.integers(0, 20, (16, 24, 2)) for _ in range(4)]
    panel = visualize.training_panel(np.full((32, 48), 200.0), *maps)
    title = panel.height - 2 * 16
    assert panel.width == 5 * 24 and title > 0
    tile = np.asarray(panel)[title + 16 :, 24:48]  # Group 1 energy target (argument 3).
    np.testing.assert_array_equal(tile, np.asarray(visualize.energy_map_image(maps[1][..., 1])))
    with pytest.raises(ValueError, match="share one shape"):
        visualize.training_panel(np.zeros((8, 8)), maps[0], maps[1], maps[2], maps[3][:8])


def test_learning_curves_reads_jsonl_and_reports_bad_lines(tmp_path):
    log = tmp_path / "metrics.jsonl"
    records = [{"step": s, "loss": 1.0 / s, "energy_loss": 2.0 / s} for s in range(1, 20)]
    log.write_text("\n".join(json.dumps(r) for r in records) + '\n{"step": 20, "map": 0.5}\n')
    png = visualize.learning_curves(log, tmp_path / "curves.png")
    assert Image.open(png).size[0] > 0
    log.write_text('{"step": 1, "loss": 1.0}\nnot json\n')
    with pytest.raises(ValueError, match="metrics.jsonl:2"):
        visualize.learning_curves(log, tmp_path / "bad.png")


def test_precision_recall_plot_writes_png(tmp_path):
    recall = np.linspace(0, 1, 11)
    png = visualize.precision_recall_plot({"stem": (recall, 1 - recall)}, tmp_path / "pr.png")
    assert Image.open(png).format == "PNG"


def test_missed_ground_truth_is_drawn_red_and_listed():
    image = np.full((40, 40), 255, np.uint8)
    out = visualize.draw_boxes(
        image, np.zeros((0, 4)), np.zeros(0, int), missed=np.array([[5, 5, 20, 30]])
    )
    np.testing.assert_array_equal(np.asarray(out)[5, 15], [255, 0, 0])
    assert out.width > 40  # The legend lists the misses.
    assert not (visualize.class_palette() == [255, 0, 0]).all(1).any()  # Red is no class.


def test_running_median_follows_the_trend_through_spikes():
    values = np.full(40, 2.0)
    values[::7] = 500.0  # One crop in seven is a spike.
    np.testing.assert_array_equal(visualize.running_median(values, 5)[4:], 2.0)
    x = np.random.default_rng(0).normal(size=30)
    want = [np.median(x[max(0, i - 3) : i + 1]) for i in range(30)]
    np.testing.assert_allclose(visualize.running_median(x, 4), want)

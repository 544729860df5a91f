"""The default model shipped with the package: it loads, and it reads the real page."""

import numpy as np
import pytest

from dwd_jax import boxes as boxes_lib
from dwd_jax import classes as classes_lib
from dwd_jax import pretrained
from dwd_jax.data import deepscores_json
from dwd_jax.detection import detect, inference

HEADS = ("noteheadBlackOnLine", "noteheadBlackInSpace", "noteheadHalfOnLine",
         "noteheadHalfInSpace", "noteheadWholeOnLine", "noteheadWholeInSpace")


@pytest.mark.slow
def test_shipped_model_finds_the_note_heads_of_the_real_sample_page(
    sample_json, sample_page_path, tmp_path
):
    config = pretrained.get_config()
    card = pretrained.model_card()
    assert card["figures"]["validation"]["map50"] > 0  # Its figures travel with it.
    # An empty workdir falls back to the shipped model.
    detector = inference.Detector.from_workdir(config, tmp_path / "no_checkpoint")
    assert detector.source == "shipped default model"
    boxes, classes, _, info = detector(detect.load_page(sample_page_path))
    assert not info["overflow"] and info["ccl_converged"]
    (gt,) = deepscores_json.load_pages(sample_json)
    heads = classes_lib.model_labels(HEADS)
    gt_heads = gt.boxes[np.isin(gt.labels + 1, heads)]
    found = boxes[np.isin(classes, heads)]
    iou = boxes_lib.box_iou(gt_heads, found)
    recall = (iou.max(axis=1) >= 0.5).mean() if len(found) else 0.0
    assert len(gt_heads) > 100 and recall >= 0.9, recall


def test_the_shipped_config_is_the_default_config():
    """Outside a clone `dwd-jax` reads the shipped config.json: a setting changed in
    configs/default.py (a decoder budget, a post-processing rule) must travel with it
    (re-export the model, or edit config.json where only inference settings changed)."""
    from configs import default

    assert pretrained.get_config().to_dict() == default.get_config().to_dict()


def test_the_default_config_builds_the_shipped_network_and_line_or_fitted_targets_do_not():
    from configs import default, line_targets

    assert pretrained.is_compatible(default.get_config())
    # Off, the line settings change nothing; on, the targets (and the decoding) differ.
    config = default.get_config()
    config.targets.line_reach = 8.0
    config.targets.fitted_min_radius = 3.0
    assert pretrained.is_compatible(config)
    assert not pretrained.is_compatible(line_targets.get_config())
    config.targets.fitted_classes = ("ledgerLine",)
    assert not pretrained.is_compatible(config)


def test_the_stem_group_variant_gives_stems_a_third_group_and_keeps_the_line_classes():
    from configs import line_targets
    from dwd_jax.modeling import targets

    lines, stem_group = line_targets.get_config(), line_targets.get_config("stem_group")
    assert tuple(stem_group.targets.line_classes) == tuple(lines.targets.line_classes)
    groups = targets.group_of_class(stem_group)
    stem, beam, staff = (
        classes_lib.model_class(stem_group, name) for name in ("stem", "beam", "staff")
    )
    assert targets.num_groups(stem_group) == 3
    assert (groups[stem], groups[beam], groups[staff]) == (2, 1, 1)
    assert (groups == 2).sum() == 1
    assert not pretrained.is_compatible(stem_group)
    with pytest.raises(ValueError, match="stem_group"):
        line_targets.get_config("stems")


def test_the_curves_variant_leaves_beams_and_ledger_lines_ovals():
    from configs import default, line_targets

    curves = line_targets.get_config("curves")
    assert set(curves.targets.line_classes) == {
        "slur", "tie", "dynamicCrescendoHairpin", "dynamicDiminuendoHairpin", "tupletBracket",
        "ottavaBracket",
    }
    assert set(line_targets.get_config().targets.line_classes) - set(
        curves.targets.line_classes
    ) == {"beam", "ledgerLine"}
    assert curves.targets.energy_groups == default.get_config().targets.energy_groups
    assert not pretrained.is_compatible(curves)

"""configs/deepscores_v2.py: the real DeepScoresV2 page fits its decoder's static budget."""

import jax
import numpy as np

from configs import deepscores_v2
from dwd_jax.data import deepscores_json
from dwd_jax.decoding import decode
from dwd_jax.modeling import targets
from dwd_jax.visualize import MODEL_CLASS_NAMES


def test_real_page_at_the_paper_resolution_is_decoded_without_truncation(sample_json):
    config = deepscores_v2.get_config()
    # Target maps name a class only on the class marker, inside the energy marker: with
    # "pixels" each object's outer ring would read as another class and fall apart.
    config.decode.class_split = "peaks"
    (page,) = deepscores_json.load_pages(sample_json)
    scale = config.data.scale
    shape = (round(page.height * scale), round(page.width * scale))
    boxes, classes = page.boxes * scale, page.labels + 1
    stride = min(config.model.output_strides)
    t = targets.make_targets(
        boxes[None], classes[None], np.ones((1, len(boxes)), bool),
        image_shape=shape, stride=stride, config=config,
    )
    foreground = int((np.asarray(t["energy"]) > config.decode.energy_cutoff).sum())
    # A trained network's foreground is wider than its targets': the budget keeps a margin.
    assert 2 * foreground <= config.decode.max_foreground_pixels
    perfect = {  # The targets as the logits of a perfect model.
        "energy": jax.nn.one_hot(t["energy"], config.targets.energy_levels) * 20.0,
        "class": jax.nn.one_hot(t["class"], len(MODEL_CLASS_NAMES)) * 20.0,
        "box": t["box"],
    }
    det = decode.decode(perfect, stride=stride, config=config)
    assert not bool(det.overflow[0]) and bool(det.ccl_converged[0])
    assert int(det.valid.sum()) >= 0.9 * len(boxes)


"""A trained detector: restore its parameters, and turn grey pages into detections.

`Predictor` runs the model and the watershed decoding as one jitted function, so a batch goes
from pixels to padded detections on the device with one host transfer at the end. Pages are
padded white to a multiple of `config.data.pad_multiple` (spec section 2); each padded size
compiles once (pages of a dataset come in a handful of sizes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dwd_jax import checkpoint, decode, detect, model, train


def restore_params(config: ml_collections.ConfigDict, workdir: str | Path) -> tuple[Any, int]:
    """The model parameters of the newest checkpoint in `workdir` (the optimiser state is
    not read).

    Returns:
      (params, step).

    Raises:
      FileNotFoundError: `workdir` holds no checkpoint, with the command that makes one.
    """
    net = model.build_model(config)
    optimizer = train.make_optimizer(config.train)
    abstract = train.abstract_state(config, net, optimizer, train.make_mesh())
    restored = checkpoint.restore_params(workdir, abstract.params)
    if restored is None:
        raise FileNotFoundError(
            f"No checkpoint in {Path(workdir).absolute() / 'checkpoints'}: train first with "
            f"`python run.py train --workdir={workdir}` (same --config)."
        )
    return restored


class Predictor:
    """Pages in, detections out, with a trained model.

    Attributes:
      config: the experiment config the model was trained with.
      params: the model's parameters.
    """

    def __init__(self, config: ml_collections.ConfigDict, params: Any):
        self.config = config
        self.params = params
        net = model.build_model(config)
        stride = min(config.model.output_strides)

        @jax.jit
        def predict(params, images: jax.Array) -> decode.Detections:
            outputs = net.apply({"params": params}, images.astype(jnp.float32)[..., None])
            return decode.decode(outputs[stride], stride=stride, config=config)

        self._predict = predict

    def batch(self, images: np.ndarray) -> decode.Detections:
        """Detections of a batch of equally sized pages already at model scale.

        Args:
          images: u8[B, H, W] grey pages (0 = ink), any H, W (padded here).

        Returns:
          Detections (numpy) with boxes in the pages' pixels.
        """
        padded = detect.pad_white(np.asarray(images, np.uint8), self.config.data.pad_multiple)
        return jax.device_get(self._predict(self.params, padded))

    def __call__(self, page: np.ndarray) -> dict[str, np.ndarray]:
        """The valid detections of one page at model scale (`detect.detect_pages`' predict_fn).

        Args:
          page: f32[H, W] or u8[H, W] grey page.

        Returns:
          {"boxes": f32[n, 4] [y0, x0, y1, x1] page pixels, "classes": i32[n] model classes,
           "scores": f32[n]}.
        """
        image = np.clip(np.asarray(page), 0, 255).astype(np.uint8)[None]
        dets = self.batch(image)
        keep = dets.valid[0]
        return {
            "boxes": dets.boxes[0][keep],
            "classes": dets.classes[0][keep],
            "scores": dets.scores[0][keep],
        }

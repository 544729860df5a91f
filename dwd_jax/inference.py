"""The one inference entry: `Detector`, from weights to the final detections of any page.

`Detector(config, params)(page)` rescales the page to the model's staff spacing with the
training resampler, cuts it into bands if it is large, runs the model and the watershed
decoding as one jitted function per band (one host transfer at the end), maps the boxes back
to the page, and re-measures them on the page's ink (`detect.refine`) unless that is switched
off. Bands are padded white to a multiple of `config.data.pad_multiple` (spec section 2);
each padded size compiles once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dwd_jax import checkpoint, decode, detect, model, pretrained


def restore_params(config: ml_collections.ConfigDict, workdir: str | Path) -> tuple[Any, int]:
    """The model parameters of the newest checkpoint in `workdir` (the optimiser state is
    not read).

    Returns:
      (params, step).

    Raises:
      FileNotFoundError: `workdir` holds no checkpoint, with the command that makes one.
    """
    sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    restored = checkpoint.restore_params(workdir, model.abstract_params(config, sharding))
    if restored is None:
        raise FileNotFoundError(
            f"No checkpoint in {Path(workdir).absolute() / 'checkpoints'}: train first with "
            f"`python run.py train --workdir={workdir}` (same --config)."
        )
    return restored


class Detector:
    """A trained detector: pages in, detections out.

    Attributes:
      config: the experiment config the model was trained with.
      params: the model's parameters (replaceable between calls: nothing recompiles).
      source: where the parameters came from, for reports.
    """

    def __init__(self, config: ml_collections.ConfigDict, params: Any):
        self.config = config
        self.params = params
        self.source = "parameters given"
        net = model.build_model(config)
        stride = min(config.model.output_strides)

        @jax.jit
        def predict(params, images: jax.Array) -> decode.Detections:
            outputs = net.apply({"params": params}, images.astype(jnp.float32)[..., None])
            return decode.decode(outputs[stride], stride=stride, config=config)

        self._predict = predict

    @classmethod
    def from_workdir(cls, config: ml_collections.ConfigDict, workdir: str | Path) -> Detector:
        """The detector of the newest checkpoint in `workdir`; without one, the model shipped
        with the package (`dwd_jax.pretrained`) when `config` builds its network, with a
        warning. `source` says which: "<workdir> step <n>" or "shipped default model".

        Raises:
          FileNotFoundError: no checkpoint, and no shipped model for this config.
        """
        try:
            params, step = restore_params(config, workdir)
            source = f"{workdir} step {step}"
        except FileNotFoundError:
            if not pretrained.is_compatible(config):
                raise
            logging.warning(
                "%s holds no checkpoint: using the default model shipped with dwd-jax "
                "(trained by `python run.py`; see dwd_jax/pretrained/default/model.json)",
                Path(workdir),
            )
            params, source = pretrained.load_params(), "shipped default model"
        detector = cls(config, params)
        detector.source = source
        return detector

    def __call__(
        self, page: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        """The final detections of one page, at any size and resolution (`detect.detect_page`).

        Args:
          page: u8[H, W] grey page, 0 = ink (e.g. from `detect.load_page`).

        Returns:
          (boxes f32[N, 4] [y0, x0, y1, x1] page pixels, classes i32[N] model classes,
          scores f32[N], info): info holds the scale, bands and the page's status
          ("overflow", "ccl_converged"); see `detect.network_detections`.
        """
        return detect.detect_page(page, self.predict, config=self.config)

    def batch(self, images: np.ndarray) -> decode.Detections:
        """Padded detections of a batch of equally sized pages already at model scale.

        Args:
          images: u8[B, H, W] grey pages (0 = ink), any H, W (padded here).

        Returns:
          Detections (numpy) with boxes in the pages' pixels.
        """
        padded = detect.pad_white(np.asarray(images, np.uint8), self.config.data.pad_multiple)
        return jax.device_get(self._predict(self.params, padded))

    def predict(self, page: np.ndarray) -> dict[str, Any]:
        """The network's valid detections of one page at model scale (`detect`'s predict_fn).

        Args:
          page: u8[H, W] grey page at model scale.

        Returns:
          {"boxes": f32[n, 4] [y0, x0, y1, x1] page pixels, "classes": i32[n] model classes,
           "scores": f32[n], "overflow": bool, "ccl_converged": bool}.
        """
        image = np.clip(np.asarray(page), 0, 255).astype(np.uint8)[None]
        dets = self.batch(image)
        keep = dets.valid[0]
        return {
            "boxes": dets.boxes[0][keep],
            "classes": dets.classes[0][keep],
            "scores": dets.scores[0][keep],
            "overflow": bool(dets.overflow[0]),
            "ccl_converged": bool(dets.ccl_converged[0]),
        }

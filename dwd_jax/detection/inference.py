"""The one inference entry: `Detector`, from weights to the final detections of any page.

`Detector(config, params)(page)` rescales the page to the model's staff spacing with the
training resampler, cuts it into bands if it is large, runs the model and the watershed
decoding as one jitted function over a batch of bands (one host transfer per batch), maps the
boxes back to the page, and re-measures them on the page's ink (`detect.refine`) unless that
is switched off. Bands are padded white to a multiple of `config.data.pad_multiple` (spec
section 2), which doubles as the bucket: each padded size compiles once. Many pages go
through `detect.detect_stream` with the detector as its predictor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from etils import epath
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from dwd_jax import checkpoint, paths, pretrained
from dwd_jax.decoding import decode
from dwd_jax.detection import detect
from dwd_jax.modeling import model


def restore_params(config: ml_collections.ConfigDict, workdir: epath.PathLike) -> tuple[Any, int]:
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
            f"No checkpoint in {paths.resolve(workdir) / 'checkpoints'}: train first with "
            f"`python run.py train --workdir={workdir}` (same --config)."
        )
    return restored


def _local(x: Any) -> Any:
    """A replicated array of a multi-process mesh as this process's copy (others pass)."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return x.addressable_data(0)
    return x


class Detector:
    """A trained detector: pages in, detections out; a `detect.Predictor`.

    The model and decoder run as one jitted function over a 1-D `'data'` mesh of this
    process's devices: parameters replicated, bands split along the batch, so each device
    computes different pages. A batch is `config.detect.batch_per_device` bands per device.

    Attributes:
      config: the experiment config the model was trained with.
      params: the model's parameters (replaceable between calls: nothing recompiles).
      source: where the parameters came from, for reports.
      mesh: the devices pages are spread over.
      batch_size: bands per call (`submit`).
    """

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        params: Any,
        *,
        devices: Sequence[jax.Device] | None = None,
    ):
        self.config = config
        self.source = "parameters given"
        devices = list(devices) if devices is not None else jax.local_devices()
        self.mesh = jax.make_mesh(
            (len(devices),), ("data",), axis_types=(jax.sharding.AxisType.Auto,), devices=devices
        )
        self.batch_size = config.detect.batch_per_device * len(devices)
        self._replicated = NamedSharding(self.mesh, P())
        self._batched = NamedSharding(self.mesh, P("data"))
        net = model.build_model(config)
        stride = min(config.model.output_strides)

        def predict(params, images: jax.Array) -> decode.Detections:
            outputs = net.apply({"params": params}, images.astype(jnp.float32)[..., None])
            return decode.decode(outputs[stride], stride=stride, config=config)

        self._predict = jax.jit(
            predict,
            in_shardings=(self._replicated, self._batched),
            out_shardings=self._batched,
        )
        self.params = params

    @property
    def params(self) -> Any:
        return self._params

    @params.setter
    def params(self, params: Any) -> None:
        # Placed once per parameter set, not once per call; a training state replicated over
        # several processes' devices becomes this process's copy.
        self._params = None if params is None else jax.device_put(
            jax.tree.map(_local, params), self._replicated
        )

    @classmethod
    def from_workdir(cls, config: ml_collections.ConfigDict, workdir: epath.PathLike) -> Detector:
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
                workdir,
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
        return detect.detect_page(page, self, config=self.config)

    def forward(self, bands: np.ndarray) -> decode.Detections:
        """The padded detections of a batch of bands, on the devices (not waited for).

        Args:
          bands: u8[B, h, w] as `submit`'s.

        Returns:
          Detections with leading axis B, sharded over the mesh's `'data'` axis.
        """
        bands = np.asarray(bands, np.uint8)
        devices = self.mesh.devices.size
        if bands.ndim != 3 or len(bands) % devices:
            raise ValueError(
                f"bands of shape {bands.shape}: expected [B, h, w] with B a multiple of the "
                f"{devices} devices (Detector.batch_size = {self.batch_size})"
            )
        return self._predict(self._params, jax.device_put(bands, self._batched))

    def submit(self, bands: np.ndarray) -> Callable[[], list[dict[str, Any]]]:
        """Starts the model on a batch of bands; returns a function that waits for the
        results (`detect.Predictor`).

        Args:
          bands: u8[B, h, w] grey bands at model scale (0 = ink), h and w multiples of
            `config.data.pad_multiple`, B a multiple of the device count (`batch_size`
            compiles once per band shape).

        Returns:
          `result()` -> per band {"boxes": f32[n, 4] [y0, x0, y1, x1] band pixels,
          "classes": i32[n] model classes, "scores": f32[n], "overflow": bool,
          "ccl_converged": bool}.
        """
        dets = self.forward(bands)

        def result() -> list[dict[str, Any]]:
            d = jax.device_get(dets)
            return [
                {
                    "boxes": d.boxes[i][d.valid[i]],
                    "classes": d.classes[i][d.valid[i]],
                    "scores": d.scores[i][d.valid[i]],
                    "overflow": bool(d.overflow[i]),
                    "ccl_converged": bool(d.ccl_converged[i]),
                }
                for i in range(len(d.valid))
            ]

        return result

    def predict(self, page: np.ndarray) -> dict[str, Any]:
        """The network's valid detections of one page already at model scale (a one-band
        `detect.PredictFn`; padded white here).

        Args:
          page: u8[H, W] grey page at model scale.

        Returns:
          One band's prediction, as `submit`'s.
        """
        image = detect.pad_white(np.clip(np.asarray(page), 0, 255).astype(np.uint8),
                                 self.config.data.pad_multiple)
        bands = np.full((self.batch_size, *image.shape), 255, np.uint8)
        bands[0] = image
        return self.submit(bands)()[0]

"""Target maps cost against a train step's forward and backward pass, one run.

A batch of 2 crops of 960x960 (1024 padded boxes of which 600 real, of random classes, so about
one in seventeen is a line object with configs/line_targets.py) gets its targets at every
supervised stride (2, 8, 16), jitted; the reference in the same run is the forward + backward
pass of a small 4-layer conv net (16 channels, 3x3) on the same images, a small fraction of the
real model's step (`bench_model.py` times that). The default config and configs/line_targets.py.
Prints a Markdown table.

Run: `python benchmarks/bench_targets.py` (about a minute).
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # Runnable as a script.

from timing import median_jax

from configs import line_targets
from configs.default import get_config
from dwd_jax import classes as classes_lib
from dwd_jax.modeling import targets

BATCH, SIZE, MAX_OBJECTS, OBJECTS = 2, 960, 1024, 600


def batch(rng):
    centre = rng.uniform(0, SIZE, (BATCH, MAX_OBJECTS, 2))
    size = rng.uniform(3, 40, (BATCH, MAX_OBJECTS, 2))
    boxes = np.concatenate([centre - size / 2, centre + size / 2], -1).astype(np.float32)
    num_classes = classes_lib.num_model_classes(get_config())
    classes = rng.integers(1, num_classes, (BATCH, MAX_OBJECTS)).astype(np.int32)
    valid = np.arange(MAX_OBJECTS)[None].repeat(BATCH, 0) < OBJECTS
    return jnp.asarray(boxes), jnp.asarray(classes), jnp.asarray(valid)


def small_conv_net_step(params, images):
    """Forward + backward of 4 conv layers (3x3, 16 channels) at full resolution."""

    def loss(params):
        x = images
        for w in params:
            x = jax.nn.relu(
                jax.lax.conv_general_dilated(
                    x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
                )
            )
        return jnp.mean(x**2)

    return jax.grad(loss)(params)


def main():
    configs = {"default": get_config(), "configs/line_targets.py": line_targets.get_config()}
    rng = np.random.default_rng(0)
    boxes, classes, valid = batch(rng)
    rows = {}
    for name, config in configs.items():

        @jax.jit
        def all_targets(boxes, classes, valid, config=config):
            return [
                targets.make_targets(
                    boxes, classes, valid, image_shape=(SIZE, SIZE), stride=s, config=config
                )
                for s in config.model.output_strides
            ]

        strides = tuple(config.model.output_strides)
        label = f"targets at strides {strides}, {OBJECTS} of {MAX_OBJECTS} boxes, {name}"
        rows[label] = median_jax(all_targets, boxes, classes, valid)

    keys = jax.random.split(jax.random.key(0), 4)
    shapes = [(3, 3, 1, 16), (3, 3, 16, 16), (3, 3, 16, 16), (3, 3, 16, 16)]
    params = [jax.random.normal(k, s) * 0.1 for k, s in zip(keys, shapes, strict=True)]
    images = jnp.asarray(rng.uniform(0, 255, (BATCH, SIZE, SIZE, 1)), jnp.float32)
    t_net = median_jax(jax.jit(small_conv_net_step), params, images)
    rows["small conv net forward + backward (reference)"] = t_net
    platform, groups = jax.devices()[0].platform, targets.num_groups(configs["default"])
    print(f"jax {jax.__version__} on {platform}; batch {BATCH}x{SIZE}x{SIZE}, G={groups}\n")
    print("| work (one batch) | time | / small conv net step |")
    print("|---|---|---|")
    for name, t in rows.items():
        print(f"| {name} | {t * 1e3:.1f} ms | {t / t_net:.4f} |")


if __name__ == "__main__":
    main()

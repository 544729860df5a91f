"""Picture of the scan and photograph degradations (`dwd_jax.data.degrade`): one crop of the real
DeepScoresV2 sample page, clean and under each family alone, then all together.

The page is scaled by `data.scale` as in training, degraded whole with the default config's
parameters (family `prob` forced to 1, seed 0), and a `data.crop_size` crop is shown with its
boxes in red, which follow the page under rotation.

Run: `python benchmarks/degradations_grid.py [--out docs/images/degradations.png]`.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_pipeline import SamplePages  # noqa: E402

from configs import default  # noqa: E402
from dwd_jax.data import degrade, input_pipeline  # noqa: E402

CORNER = (330, 100)  # (y, x) of the crop at data.scale: the first system's middle staves.
COLUMNS = 4
LABEL = 18  # Pixels above each tile for its name.


def tile(page: np.ndarray, boxes: np.ndarray, size: int, name: str) -> Image.Image:
    """A `size` crop of u8[H, W] `page` at CORNER, its f32[M, 4] boxes outlined, named."""
    y, x = CORNER
    crop = Image.fromarray(page[y : y + size, x : x + size]).convert("RGB")
    draw = ImageDraw.Draw(crop)
    for y0, x0, y1, x1 in boxes - np.float32([y, x, y, x]):
        if y1 > 0 and x1 > 0 and y0 < size and x0 < size:
            draw.rectangle([x0, y0, x1, y1], outline=(230, 40, 40))
    out = Image.new("RGB", (size, size + LABEL), "white")
    out.paste(crop, (0, LABEL))
    ImageDraw.Draw(out).text((4, 3), name, fill="black")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/images/degradations.png")
    args = parser.parse_args()
    data = default.get_config().data
    page = input_pipeline.scale_page(input_pipeline.parse_page(SamplePages(1)[0]), data.scale)
    image, boxes, size = page["image"], page["boxes"], data.crop_size

    config = data.degrade
    for name in degrade.FAMILIES:
        config[name].prob = 1.0
    tiles = [tile(image, boxes, size, "clean")]
    for name, family in degrade.FAMILIES.items():
        params = {k: v for k, v in config[name].items() if k != "prob"}
        tiles.append(tile(*family(image, boxes, np.random.default_rng(0), **params), size, name))
    config.threshold.prob = 0.0  # All together but binarisation, which would hide the rest.
    everything = degrade.degrade(image, boxes, np.random.default_rng(0), config)
    tiles.append(tile(*everything, size, "all but threshold"))

    rows = -(-len(tiles) // COLUMNS)
    gap = 6
    width, height = tiles[0].size
    grid = Image.new("RGB", (COLUMNS * (width + gap) - gap, rows * (height + gap) - gap), "white")
    for i, picture in enumerate(tiles):
        grid.paste(picture, ((i % COLUMNS) * (width + gap), (i // COLUMNS) * (height + gap)))
    grid.save(args.out, optimize=True)
    print(f"wrote {args.out} ({grid.size[0]}x{grid.size[1]})")


if __name__ == "__main__":
    main()

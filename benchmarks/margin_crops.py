"""Picture of margin augmentation (`dwd_jax.data.margin`, spec section 5): training crops of
the embedded corpus with the strip of uniformly drawn symbols along their top, every box
outlined (the strip's in blue, the page's in red).

Run: `python benchmarks/margin_crops.py [--out docs/images/margin_crops.png]` after `python
run.py generate` (it reads the prepared training split).
"""

from __future__ import annotations

import argparse
import os
import sys

from PIL import Image, ImageDraw

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import default  # noqa: E402
from dwd_jax.data import input_pipeline  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/images/margin_crops.png")
    parser.add_argument("--crops", type=int, default=4)
    args = parser.parse_args()
    config = default.get_config()
    data = config.data
    data.margin.prob = 1.0
    data.degrade.rate = 0.0
    data.batch_size = 1
    data.worker_count = 0
    source = input_pipeline.open_source(data, data.train_split)
    loader = iter(input_pipeline.make_train_loader(source, data, seed=0))
    size, gap = data.crop_size, 8
    sheet = Image.new("RGB", (args.crops * (size + gap) - gap, size), "white")
    for i in range(args.crops):
        batch = next(loader)
        tile = Image.fromarray(batch["image"][0, ..., 0]).convert("RGB")
        draw = ImageDraw.Draw(tile)
        for (y0, x0, y1, x1), valid in zip(batch["boxes"][0], batch["valid"][0], strict=True):
            if valid:
                strip = y1 <= data.margin.height
                draw.rectangle([x0, y0, x1, y1], outline=(40, 40, 230) if strip else (230, 40, 40))
        sheet.paste(tile, (i * (size + gap), 0))
    sheet.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

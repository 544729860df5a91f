"""Input pipeline pages/s against the pages/s the train step consumes (target: 2x headroom).

`python benchmarks/bench_pipeline.py [--config configs/default.py] [--pages 24] [--steps 2]`

The source serves copies of the real DeepScoresV2 sample page (2707x3828, 547 objects) as the
`deep_scores` TFDS data source does: a grey PNG decoded with OpenCV on access, boxes normalised.
The pipeline (decode, scale, crop, pad, batch) runs in-process and with `data.worker_count`
grain workers, and in-process with every page degraded (`data.degrade.rate=1`, the config's
family probabilities). The reference, measured in the same run, is the jitted train step of the same
config on batches of the same shape. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SAMPLE = ROOT / "tests" / "data" / "deepscores_v2_sample"
SAMPLE_IMAGE = "images/lg-5230237-aug-emmentaler--page-2.png"


class SamplePages:
    """`pages` copies of the sample page, decoded on access like `tfds.data_source`."""

    def __init__(self, pages: int):
        from dwd_jax import image

        rgba = cv2.imread(str(SAMPLE / SAMPLE_IMAGE), cv2.IMREAD_UNCHANGED)[..., [2, 1, 0, 3]]
        grey = image.to_grey(rgba)
        self._png = cv2.imencode(".png", grey)[1].tobytes()
        height, width = grey.shape
        annotations = json.loads((SAMPLE / "deepscores_v2_sample.json").read_text())
        boxes, labels = [], []
        for ann in annotations["annotations"].values():
            x0, y0, x1, y1 = ann["a_bbox"]
            boxes.append([y0 / height, x0 / width, y1 / height, x1 / width])
            labels.append(int(ann["cat_id"][0]) - 1)
        self._objects = {"bbox": np.float32(boxes), "label": np.int64(labels)}
        self._pages = pages

    def __len__(self) -> int:
        return self._pages

    def __getitem__(self, index: int) -> dict:
        image = cv2.imdecode(np.frombuffer(self._png, np.uint8), cv2.IMREAD_UNCHANGED)
        return {"image": image[..., None], "objects": self._objects}


def pipeline_pages_per_s(source, data, batches: int) -> float:
    from dwd_jax.data import input_pipeline

    iterator = iter(input_pipeline.make_train_loader(source, data, seed=0))
    next(iterator)  # Worker start-up is not throughput.
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * data.batch_size / (time.perf_counter() - start)


def step_pages_per_s(config, batch, steps: int) -> float:
    import jax

    from dwd_jax.modeling import model
    from dwd_jax.training import train

    mesh = train.make_mesh()
    net = model.build_model(config)
    optimizer = train.make_optimizer(config.train)
    state = train.init_state(config, net, optimizer, mesh)
    step_fn = train.compile_step(
        functools.partial(train.dwd_loss, net=net, config=config), optimizer, mesh
    )
    batch = train.global_batch(batch, mesh)
    state, metrics = step_fn(state, batch)  # Compile.
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(steps):
        state, metrics = step_fn(state, batch)
    jax.block_until_ready(metrics)
    return steps * config.data.batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "default.py"))
    parser.add_argument("--pages", type=int, default=24, help="pages through the pipeline")
    parser.add_argument("--steps", type=int, default=2, help="timed train steps")
    args = parser.parse_args()
    spec = importlib.util.spec_from_file_location("bench_config", args.config)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()

    source = SamplePages(args.pages + 8)
    batches = max(1, args.pages // config.data.batch_size)
    workers = config.data.worker_count
    rows = []
    data = config.data.copy_and_resolve_references()
    data.worker_count = 0
    rows.append(("pipeline, in-process", pipeline_pages_per_s(source, data, batches)))
    degraded = data.copy_and_resolve_references()
    degraded.degrade.rate = 1.0
    rate = pipeline_pages_per_s(source, degraded, batches)
    rows.append(("pipeline, in-process, every page degraded (data.degrade.rate=1)", rate))
    if workers:
        data.worker_count = workers
        rate = pipeline_pages_per_s(source, data, batches)
        rows.append((f"pipeline, {workers} grain workers", rate))

    from dwd_jax.data import input_pipeline

    one = next(iter(input_pipeline.make_train_loader(source, data, seed=0)))
    step = step_pages_per_s(config, one, args.steps)

    print(
        f"config `{Path(args.config).name}`: crop {config.data.crop_size}, batch "
        f"{config.data.batch_size}, scale {config.data.scale}, model ResNet-"
        f"{config.model.depth} x{config.model.width}\n"
    )
    print("| stage | pages/s | x train step |")
    print("|---|---:|---:|")
    print(f"| train step (reference) | {step:.3f} | 1.00 |")
    for name, rate in rows:
        print(f"| {name} | {rate:.2f} | {rate / step:.1f} |")


if __name__ == "__main__":
    main()

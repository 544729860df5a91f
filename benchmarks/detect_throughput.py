"""Pages per second of the shipped model: a folder batched and overlapped against one page at
a time, and evaluation on 1 device against 8.

Folder: 20 pages cut from the real DeepScoresV2 sample page (whole, and its top 80 % and
60 %: three padded shapes), written as PNGs. "One at a time" reads a page, runs
`Detector(page)` (rescale, model, decoder, re-measure on the ink) and draws its overlay, then
the next; "stream" is `detect.detect_pages` with the detector as predictor: a worker thread
reads and rescales the next pages while the device runs, and batches are dispatched before
the last one's pages are refined. Every shape is compiled before timing.

Devices: `evaluation.evaluate_pages` on the sample page cut into 8 strips of one shape, with a
`Detector` over the first device and over all 8 (virtual CPU devices here, so the 8 share
the machine's cores; on an accelerator host each would be a chip).

Run: `python benchmarks/detect_throughput.py [--pages 20]`; prints a Markdown table.
"""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
)

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from test_multidevice import _eval_config, _strip_pages  # noqa: E402

from dwd_jax import pretrained, visualize  # noqa: E402
from dwd_jax.detection import detect, inference  # noqa: E402
from dwd_jax.eval import evaluation  # noqa: E402

SAMPLE = ROOT / "tests" / "data" / "deepscores_v2_sample" / "images"


def write_folder(folder: Path, count: int) -> list[Path]:
    """`count` PNG pages from the sample page: whole, top 80 % and top 60 %, in turn."""
    page = detect.load_page(next(SAMPLE.glob("*.png")))
    paths = []
    for i in range(count):
        rows = int(page.shape[0] * (1.0, 0.8, 0.6)[i % 3])
        path = folder / f"page{i:02d}.png"
        Image.fromarray(page[:rows]).save(path)
        paths.append(path)
    return paths


def one_at_a_time(detector: inference.Detector, paths: list[Path], out: Path) -> None:
    for path in paths:
        page = detect.load_page(path)
        boxes, classes, scores, _ = detector(page)
        visualize.draw_boxes(page, boxes, classes, scores).save(out / f"{path.stem}.png")


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    params = pretrained.load_params()
    config = pretrained.get_config()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = write_folder(tmp, args.pages)
        detector = inference.Detector(config, params, devices=jax.devices()[:1])
        one_at_a_time(detector, paths[:3], tmp)  # Compiles each shape.
        modes = {
            "one at a time": lambda: one_at_a_time(detector, paths, tmp),
            "stream": lambda: detect.detect_pages(
                paths, detector, config=config, out_dir=tmp / "stream"
            ),
        }
        # Alternated, best of `--rounds`: a machine shared with other jobs slows whichever
        # runs during their bursts.
        times = {name: [] for name in modes}
        for _ in range(args.rounds):
            for name, fn in modes.items():
                times[name].append(timed(fn))
        best = {name: min(t) for name, t in times.items()}
        sequential = len(paths) / best["one at a time"]
        stream = len(paths) / best["stream"]
        rows.append((f"folder of {len(paths)} pages, one at a time", sequential, 1.0))
        rows.append(("folder, stream (batched, host overlapped)", stream, stream / sequential))

    config = _eval_config()
    pages = _strip_pages()
    speeds = {}
    for name, devices in (("1 device", jax.devices()[:1]), ("8 devices", jax.devices())):
        detector = inference.Detector(config, params, devices=devices)
        evaluation.evaluate_pages(pages, detector, config=config)  # Compiles.
        start = time.perf_counter()
        evaluation.evaluate_pages(pages, detector, config=config)
        speeds[name] = len(pages) / (time.perf_counter() - start)
    for name, speed in speeds.items():
        ratio = speed / speeds["1 device"]
        rows.append((f"evaluation of {len(pages)} strips, {name}", speed, ratio))

    print(f"jax {jax.__version__}, {jax.devices()[0].platform}, {os.cpu_count()} CPU cores\n")
    print("| case | pages/s | ratio |\n|---|---|---|")
    for name, speed, ratio in rows:
        print(f"| {name} | {speed:.3f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()

"""Reading DeepScores pages through TFDS: pages/s with image decoding, and disk per 1000 pages.

    python benchmarks/bench_read.py [--pages 40] [--manual_dir DIR --config synthetic]

Without `--manual_dir` it builds `deep_scores/dense` from a folder of copies of the real
DeepScoresV2 sample page (2707x3828, 547 objects; a little larger than the common
~2480x3500 A4 page, so a conservative stand-in). With `--manual_dir` it reads the given
DSv2-layout folder (e.g. the engraved corpus) instead.

Prints two Markdown tables:
1. Reading through `tfds.data_source` in one process (decode the PNG and all objects), in
   file order and in shuffled order, against the same run's bare `cv2.imdecode` of the
   stored PNG bytes (the floor TFDS cannot beat), plus the build rate and the disk use.
2. The PNG zlib level trade-off on one page: decode time and size per level, as ratios to
   PIL's default level 6; the builder's level (`PNG_COMPRESS_LEVEL`) is marked.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

import dwd_jax  # noqa: F401  (registers deep_scores)
from tfds_builders.deep_scores import deep_scores_dataset_builder as builder_lib

SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "data" / "deepscores_v2_sample"


def copies_of_sample(folder: Path, pages: int) -> Path:
    """A DSv2 folder holding `pages` copies of the sample page as split `train`."""
    data = json.loads((SAMPLE / "deepscores_v2_sample.json").read_text())
    (image,) = data["images"]
    annotations = list(data["annotations"].values())
    (folder / "images").mkdir(parents=True)
    images, anns = [], {}
    # Named as pages of the sample's score: one work, which the `dense` builder keeps in
    # `train` (it holds out whole works as `validation`), so every copy is read.
    score = image["filename"].partition("--page-")[0]
    for i in range(pages):
        name = f"{score}--page-{i:05d}.png"
        os.symlink(SAMPLE / "images" / image["filename"], folder / "images" / name)
        images.append({**image, "id": i, "filename": name})
        for ann in annotations:
            anns[str(len(anns))] = {**ann, "img_id": str(i)}
    out = {**data, "images": images, "annotations": anns}
    (folder / "deepscores_train.json").write_text(json.dumps(out))
    return folder


def timed(fn, *args) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def read_all(source, order) -> None:
    """Reads (and so decodes) the records of `source` at the indices `order`."""
    for i in order:
        example = source[int(i)]
        np.asarray(example["objects"]["bbox"])  # What a reader does with the objects.


def bench_reading(manual_dir: Path, config: str, split: str, repeats: int) -> list[str]:
    name = f"deep_scores/{config}"
    data_dir = Path(tempfile.mkdtemp(prefix="bench_read_tfds_"))
    try:
        start = time.perf_counter()
        source = tfds.data_source(
            name,
            split=split,
            data_dir=data_dir,
            download_and_prepare_kwargs={
                "download_config": tfds.download.DownloadConfig(manual_dir=manual_dir)
            },
        )
        build_s = time.perf_counter() - start
        n = len(source)
        disk = sum(p.stat().st_size for p in data_dir.glob(f"**/*-{split}.array_record-*"))
        undecoded = tfds.data_source(
            name, split=split, data_dir=data_dir, decoders={"image": tfds.decode.SkipDecoding()}
        )
        pngs = [np.frombuffer(undecoded[i]["image"], np.uint8) for i in range(n)]

        read_all(source, range(min(n, 2)))  # Warm up: file handles, lazy imports.
        shuffled_order = np.random.default_rng(0).permutation(n)
        runs = {
            "bare": lambda: [cv2.imdecode(png, cv2.IMREAD_UNCHANGED) for png in pngs],
            "objects_only": lambda: read_all(undecoded, range(n)),
            "sequential": lambda: read_all(source, range(n)),
            "shuffled": lambda: read_all(source, shuffled_order),
        }
        # Best of `repeats` interleaved rounds: other processes share these cores, and the
        # minimum is the least disturbed measurement of each.
        times = {key: [] for key in runs}
        for _ in range(repeats):
            for key, run in runs.items():
                times[key].append(timed(run))
        best = {key: min(t) for key, t in times.items()}
    finally:
        shutil.rmtree(data_dir)
    bare = best["bare"]
    rows = [
        ("cv2.imdecode of the stored PNGs alone (reference)", bare),
        ("tfds.data_source, objects only (image not decoded)", best["objects_only"]),
        ("tfds.data_source, file order", best["sequential"]),
        ("tfds.data_source, shuffled order", best["shuffled"]),
    ]
    return [
        f"{n} pages of `{name}` split `{split}`, one process, best of {repeats} rounds.",
        "",
        "| reading | pages/s | time x reference |",
        "|---|---:|---:|",
        *(f"| {what} | {n / t:.1f} | {t / bare:.2f} |" for what, t in rows),
        "",
        "| building and storing | value |",
        "|---|---:|",
        f"| build (`download_and_prepare`), pages/s | {n / build_s:.1f} |",
        f"| disk per 1000 pages, MB | {disk / n * 1000 / 1e6:.0f} |",
    ]


def bench_png_levels(image_path: Path, repeats: int) -> list[str]:
    with Image.open(image_path) as image:
        size = image.size
    # The page as the builder stores it, re-encoded at each level.
    grey = Image.open(io.BytesIO(builder_lib.grey_png(image_path, size, page_id=0)))
    results = {}
    for level in (1, 3, 6, 9):
        out = io.BytesIO()
        grey.save(out, format="PNG", compress_level=level)
        png = np.frombuffer(out.getvalue(), np.uint8)
        decode = min(timed(cv2.imdecode, png, cv2.IMREAD_UNCHANGED) for _ in range(repeats))
        results[level] = (decode, png.size)
    ref_decode, ref_size = results[6]
    lines = [
        f"PNG zlib level on one {size[0]}x{size[1]} grey page, best of {repeats} decodes.",
        "",
        "| level | decode ms | decode x level 6 | KB | size x level 6 |",
        "|---|---:|---:|---:|---:|",
    ]
    for level, (decode, size) in results.items():
        mark = " (builder)" if level == builder_lib.PNG_COMPRESS_LEVEL else ""
        mark += " (PIL default)" if level == 6 else ""
        lines.append(
            f"| {level}{mark} | {decode * 1e3:.1f} | {decode / ref_decode:.2f} | "
            f"{size / 1e3:.0f} | {size / ref_size:.2f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=40, help="copies of the sample page")
    parser.add_argument("--manual_dir", type=Path, help="a DSv2 folder to read instead")
    parser.add_argument("--config", default="synthetic", help="config for --manual_dir")
    parser.add_argument("--split", default="train")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds; best is kept")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_read_pages_") as tmp:
        if args.manual_dir:
            manual_dir, config = args.manual_dir, args.config
        else:
            manual_dir, config = copies_of_sample(Path(tmp) / "pages", args.pages), "dense"
        print("\n".join(bench_reading(manual_dir, config, args.split, args.repeats)))
        print()
        first_image = next((manual_dir / "images").iterdir())
        print("\n".join(bench_png_levels(first_image, 2 * args.repeats)))


if __name__ == "__main__":
    main()

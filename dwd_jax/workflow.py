"""The commands of `run.py`, composed from the library: data, train, eval, detect, all.

Each function takes the experiment config and the run's workdir and leaves its results as
files there; `run.py` only parses flags and calls one of them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np
import tqdm

from dwd_jax import (
    deepscores_json,
    detect,
    engrave,
    evaluate,
    inference,
    ink,
    input_pipeline,
    train,
)

_log = logging.getLogger(__name__)

SYNTHETIC = "deep_scores/synthetic"


def engraved_folder(config: ml_collections.ConfigDict) -> Path:
    """Where `generate` writes the engraved corpus: the builder's `synthetic/` manual folder."""
    return Path(config.data.manual_dir) / "synthetic"


def prepare_data(config: ml_collections.ConfigDict) -> None:
    """Engraves the embedded corpus if it is absent (resuming a partial one), then prepares the
    TFDS dataset `config.data.name` from the manual dir, unless it is already prepared from
    every engraved page (pages engraved since, e.g. after raising `engrave.num_pages`,
    rebuild it).

    Raises:
      FileNotFoundError (from the builder): a real DeepScoresV2 config without its download,
        naming the files, the URL and the folder.
    """
    import tensorflow_datasets as tfds

    import dwd_jax  # noqa: F401  (registers `deep_scores`)

    mode = tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS  # Keep a prepared dataset.
    if config.data.name == SYNTHETIC:
        folder = engraved_folder(config)
        e = config.engrave
        stats = engrave.generate(
            str(folder),
            num_pages=e.num_pages,
            seed=config.seed,
            workers=e.workers,
            test_fraction=e.test_fraction,
            pages_per_piece=e.pages_per_piece,
            width_range=tuple(e.width_range),
            staff_space_ratio=tuple(e.staff_space_ratio),
            piece_timeout_s=e.piece_timeout_s,
        )
        _log.info(
            "engraved corpus in %s: %d pages (%d new), %d pieces skipped",
            folder,
            stats["pages"],
            stats["new_pages"],
            len(stats["failed"]) + len(stats["crashed"]),
        )
        if stats["new_pages"]:
            # A dataset prepared before these pages existed would silently leave them out.
            mode = tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS
    builder = tfds.builder(config.data.name, data_dir=config.data.data_dir or None)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=config.data.manual_dir or None, download_mode=mode
        )
    )


def _eval_page(record: dict, name: str, predictor: inference.Predictor) -> tuple[np.ndarray, Any]:
    """(u8[H, W] page, evaluate.Page) of one TFDS record, detections in page pixels."""
    scale = predictor.config.data.scale
    page = input_pipeline.parse_page(record, name=name)
    scaled = input_pipeline.scale_page(page, scale)
    pred = predictor(scaled["image"])
    h, w = page["image"].shape
    sh, sw = scaled["image"].shape
    factors = np.float32([h / sh, w / sw] * 2)
    try:
        space = detect.estimate_staff_space(page["image"])
    except detect.PageError:  # No staff lines: the nominal spacing of training pages.
        space = predictor.config.detect.staff_space / scale
    boxes, classes, scores = ink.refine(
        page["image"],
        pred["boxes"] * factors,
        pred["classes"],
        pred["scores"],
        config=predictor.config,
        staff_space=space,
    )
    return page["image"], evaluate.Page(
        gt_boxes=page["boxes"],
        gt_classes=page["classes"],
        det_boxes=boxes,
        det_classes=classes,
        det_scores=scores,
        name=name,
    )


def evaluate_split(
    config: ml_collections.ConfigDict, workdir: str | Path, *, split: str | None = None
) -> dict:
    """Evaluates the newest checkpoint on a TFDS split; writes `<workdir>/eval_<split>/`:
    eval.json, eval.md, pr50.png and overlays of the worst pages.

    Returns:
      The `evaluate.evaluate` results.
    """
    split = split or config.data.eval_split
    params, step = inference.restore_params(config, workdir)
    predictor = inference.Predictor(config, params)
    source = input_pipeline.open_source(config.data, split)
    count = len(source) if not config.eval.max_pages else min(len(source), config.eval.max_pages)
    pages = []
    for i in tqdm.trange(count, desc=f"eval {split}", unit="page"):
        record = source[i]
        _, page = _eval_page(record, _record_name(record, i), predictor)
        pages.append(page)
    results = evaluate.evaluate(
        pages, min_instances=config.eval.min_instances, num_worst_pages=config.eval.num_worst_pages
    )
    results["checkpoint_step"] = step
    out = Path(workdir) / f"eval_{split}"
    evaluate.write_reports(results, out)
    for i in results["worst_pages"]:  # Re-read: holding every page for this costs GBs.
        image, page = _eval_page(source[i], pages[i].name, predictor)
        evaluate.page_overlay(image, page).save(out / f"worst_{Path(page.name).stem}.png")
    return results


def _record_name(record: dict, index: int) -> str:
    name = record.get("filename", b"")  # The `deep_scores` feature; bytes from TFDS.
    name = name.decode() if isinstance(name, bytes) else str(name)
    return name or f"page_{index}"


def evaluate_folder(
    config: ml_collections.ConfigDict, workdir: str | Path, folder: str | Path
) -> dict:
    """Evaluates the newest checkpoint on a DeepScoresV2-layout folder read as new pages are
    (`detect.detect_page`: staff-space rescaling, bands), e.g. the real DSv2 sample page.

    Writes `<workdir>/eval_<folder name>/` (reports and an overlay per page).
    """
    folder = Path(folder)
    params, step = inference.restore_params(config, workdir)
    predictor = inference.Predictor(config, params)
    out = Path(workdir) / f"eval_{folder.name}"
    out.mkdir(parents=True, exist_ok=True)
    pages = []
    for split, files in deepscores_json.annotation_files(folder).items():
        for file in files:
            for gt in tqdm.tqdm(deepscores_json.load_pages(file), desc=f"eval {split}"):
                image = detect.load_page(folder / "images" / gt.filename)
                boxes, classes, scores, info = detect.detect_page(image, predictor, config=config)
                page = evaluate.Page(
                    gt_boxes=gt.boxes,
                    gt_classes=gt.labels + 1,
                    det_boxes=boxes,
                    det_classes=classes,
                    det_scores=scores,
                    name=gt.filename,
                )
                pages.append(page)
                evaluate.page_overlay(image, page).save(out / f"{Path(gt.filename).stem}.png")
    results = evaluate.evaluate(pages, min_instances=1, num_worst_pages=0)
    results["checkpoint_step"] = step
    evaluate.write_reports(results, out)
    return results


def detect_files(
    config: ml_collections.ConfigDict, workdir: str | Path, paths: Sequence[str | Path]
) -> dict:
    """`run.py detect`: detections of the newest checkpoint on image files, written to
    `<workdir>/detect/` (proposals.json, coco_results.json, overlays, detect_summary.json)."""
    params, _ = inference.restore_params(config, workdir)
    predictor = inference.Predictor(config, params)
    return detect.detect_pages(paths, predictor, config=config, out_dir=Path(workdir) / "detect")


def run_all(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
    """`python run.py`: data (engraved if absent), training (resumed if interrupted),
    evaluation, pictures; returns and writes `<workdir>/summary.json` naming the files."""
    workdir = Path(workdir)
    prepare_data(config)
    train.train_and_evaluate(config, workdir)
    results = evaluate_split(config, workdir)
    split_dir = workdir / f"eval_{config.data.eval_split}"
    summary = {
        "checkpoints": str(workdir / "checkpoints"),
        "metrics": str(workdir / "metrics.jsonl"),
        "learning_curves": str(workdir / "learning_curves.png"),
        "eval_report": str(split_dir / "eval.md"),
        "overlays": sorted(str(p) for p in split_dir.glob("worst_*.png")),
        "map50": results["map50"],
        "map": results["map"],
    }
    (workdir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary

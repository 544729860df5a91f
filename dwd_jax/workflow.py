"""The commands of `run.py`, composed from the library: data, train, eval, detect, all.

Each function takes the experiment config and the run's workdir and leaves its results as
files there; `run.py` only parses flags and calls one of them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import ml_collections
from etils import epath

from dwd_jax import hosts, paths, pretrained
from dwd_jax.data import input_pipeline
from dwd_jax.detection import detect, inference
from dwd_jax.eval import evaluate, evaluation, robustness
from dwd_jax.training import train

_log = logging.getLogger(__name__)

SYNTHETIC = "deep_scores/synthetic"


def engraved_folder(config: ml_collections.ConfigDict) -> epath.Path:
    """Where `generate` writes the engraved corpus: the builder's `synthetic/` manual folder."""
    return epath.Path(config.data.manual_dir) / "synthetic"


def prepare_data(config: ml_collections.ConfigDict) -> None:
    """Engraves the embedded corpus if it is absent (resuming a partial one), then prepares the
    TFDS dataset `config.data.name` from the manual dir, unless it is already prepared from
    every engraved page (pages engraved since, e.g. after raising `engrave.num_pages`,
    rebuild it).

    With several processes the primary prepares while the others wait, then all read.

    Raises:
      FileNotFoundError (from the builder): a real DeepScoresV2 config without its download,
        naming the files, the URL and the folder.
      ImportError: the embedded corpus is to be engraved but the `engrave` extra is missing.
    """
    if hosts.is_primary():
        _prepare_data(config)
    hosts.barrier("data prepared")


def _prepare_data(config: ml_collections.ConfigDict) -> None:
    import tensorflow_datasets as tfds

    import dwd_jax  # noqa: F401  (registers `deep_scores`)

    mode = tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS  # Keep a prepared dataset.
    if config.data.name == SYNTHETIC:
        # Imported here: the engraver's libraries are an optional extra that DeepScoresV2
        # needs none of; without them this names the extra (and the DeepScoresV2 configs).
        from dwd_jax import engrave

        folder = engraved_folder(config)
        e = config.engrave
        stats = engrave.generate(
            str(folder),
            num_pages=e.num_pages,
            seed=config.seed,
            workers=e.workers,
            test_fraction=e.test_fraction,
            validation_fraction=e.validation_fraction,
            pages_per_piece=e.pages_per_piece,
            width_range=tuple(e.width_range),
            staff_space_ratio=tuple(e.staff_space_ratio),
            piece_timeout_s=e.piece_timeout_s,
            engravers=tuple(e.engravers),
            generated_share=e.generated_share,
            every_class_share=e.every_class_share,
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


def _evaluate(
    config: ml_collections.ConfigDict,
    workdir: epath.PathLike,
    pages: Sequence[evaluation.PageLoader],
    *,
    out: epath.Path,
    desc: str,
) -> dict:
    """`evaluation.evaluate_pages` with the newest checkpoint; the primary process writes
    reports (shipped, and `network_alone/`) and overlays of the worst pages to `out`."""
    detector = inference.Detector.from_workdir(config, workdir)
    scored: list[evaluate.Page] = []
    results = evaluation.evaluate_pages(
        pages, detector, config=config, desc=desc, on_page=lambda _, page: scored.append(page)
    )
    results["model"] = results["network_alone"]["model"] = detector.source
    if hosts.is_primary():
        evaluate.write_reports(results["network_alone"], out / "network_alone")
        evaluate.write_reports(results, out)
        for i in results["worst_pages"]:  # Re-read: holding every page image costs GBs.
            page = scored[i]
            image = pages[i]().image
            stem = epath.Path(page.name).stem
            paths.write_png(evaluate.page_overlay(image, page), out / f"worst_{stem}.png")
    hosts.barrier("reports written")
    return results


def _split_pages(config: ml_collections.ConfigDict, split: str) -> list:
    """The first `config.eval.max_pages` pages (0 = all) of a TFDS split, as loaders."""
    source = input_pipeline.open_source(config.data, split)
    count = len(source) if not config.eval.max_pages else min(len(source), config.eval.max_pages)
    return evaluation.split_pages(source, range(count))


def evaluate_split(
    config: ml_collections.ConfigDict, workdir: epath.PathLike, *, split: str | None = None
) -> dict:
    """Evaluates the newest checkpoint on a TFDS split (default `config.data.eval_split`, the
    validation split); writes `<workdir>/eval_<split>/`: eval.json, eval.md, pr50.png,
    `network_alone/` and overlays of the worst pages.

    Returns:
      The `evaluation.evaluate_pages` results.
    """
    split = split or config.data.eval_split
    return _evaluate(
        config, workdir, _split_pages(config, split),
        out=paths.resolve(workdir) / f"eval_{split}", desc=f"eval {split}",
    )


def evaluate_folder(
    config: ml_collections.ConfigDict,
    workdir: epath.PathLike,
    folder: epath.PathLike,
    *,
    split: str = "test",
) -> dict:
    """Evaluates the newest checkpoint on one annotation file set of a DeepScoresV2-layout
    folder (`deepscores_<split>.json`), e.g. the real DSv2 sample page (`split="v2_sample"`),
    by the same protocol as `evaluate_split`.

    Writes `<workdir>/eval_<folder name>_<split>/` (as `evaluate_split`).
    """
    folder = epath.Path(folder)
    annotations = evaluation.folder_annotations(folder, split)  # Read once; images lazily.
    return _evaluate(
        config, workdir, evaluation.folder_pages(folder, annotations),
        out=paths.resolve(workdir) / f"eval_{folder.name}_{split}",
        desc=f"eval {folder.name}/{split}",
    )


def evaluate_robustness(
    config: ml_collections.ConfigDict,
    workdir: epath.PathLike,
    folder: epath.PathLike | None = None,
    *,
    split: str | None = None,
) -> dict:
    """`run.py robustness`: the newest checkpoint on clean pages and under each condition of
    `config.robustness` (`dwd_jax.eval.robustness`), on a TFDS split (default
    `config.data.eval_split`) or a DeepScoresV2-layout folder's file set (default `test`).

    Writes `<workdir>/robustness_<split or folder_split>/` robustness.json and robustness.md
    (the primary process).

    Returns:
      `robustness.summary` figures per condition.
    """
    if folder is None:
        split = split or config.data.eval_split
        pages, name = _split_pages(config, split), split
    else:
        folder, split = epath.Path(folder), split or "test"
        annotations = evaluation.folder_annotations(folder, split)
        pages, name = evaluation.folder_pages(folder, annotations), f"{folder.name}_{split}"
    detector = inference.Detector.from_workdir(config, workdir)
    results = robustness.evaluate_conditions(pages, detector, config=config, desc=name)
    figures = robustness.summary(results)
    out = paths.resolve(workdir) / f"robustness_{name}"
    if hosts.is_primary():
        out.mkdir(parents=True, exist_ok=True)
        (out / "robustness.json").write_text(
            json.dumps({"model": detector.source, "conditions": figures}, indent=2)
        )
        title = f"Robustness: {name}, {detector.source}"
        (out / "robustness.md").write_text(robustness.markdown(figures, title))
    hosts.barrier("robustness written")
    return figures


def detect_files(
    config: ml_collections.ConfigDict, workdir: epath.PathLike, files: Sequence[epath.PathLike]
) -> dict:
    """`run.py detect`: detections of the newest checkpoint on image files, written to
    `<workdir>/detect/` (proposals.json, coco_results.json, overlays, detect_summary.json)."""
    detector = inference.Detector.from_workdir(config, workdir)
    out = paths.resolve(workdir) / "detect"
    return detect.detect_pages(files, detector, config=config, out_dir=out)


def run_all(config: ml_collections.ConfigDict, workdir: epath.PathLike) -> dict:
    """`python run.py`: data (engraved if absent), training (resumed if interrupted),
    evaluation on the validation split (what choices are tuned on) and on the test split
    (read only to report), pictures; returns and writes `<workdir>/summary.json`."""
    workdir = paths.resolve(workdir)
    prepare_data(config)
    train.train_and_evaluate(config, workdir)
    summary = {
        "checkpoints": str(workdir / "checkpoints"),
        "metrics": str(workdir / "metrics.jsonl"),
        "learning_curves": str(workdir / "learning_curves.png"),
    }
    for split in dict.fromkeys((config.data.eval_split, config.data.test_split)):
        results = evaluate_split(config, workdir, split=split)
        split_dir = workdir / f"eval_{split}"
        summary[split] = {
            **evaluation.headline(results),
            "eval_report": str(split_dir / "eval.md"),
            "overlays": sorted(str(p) for p in split_dir.glob("worst_*.png")),
        }
    if hosts.is_primary():
        (workdir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def export_model(
    config: ml_collections.ConfigDict, workdir: epath.PathLike, out: epath.PathLike | None = None
) -> dict:
    """`dwd-jax export`: the newest checkpoint of `workdir`, its config and the figures of its
    evaluation reports (every `eval_*/eval.json` there) as a shipped model (`pretrained`).

    Returns:
      The model card written as model.json.
    """
    workdir = paths.resolve(workdir)
    params, step = inference.restore_params(config, workdir)
    figures = {}
    for report in sorted(workdir.glob("eval_*/eval.json")):
        results = json.loads(report.read_text())
        alone = results.get("network_alone", {})
        figures[report.parent.name.removeprefix("eval_")] = {
            "pages": results["num_pages"],
            "map50": results["map50"],
            "map": results["map"],
            "network_alone_map50": alone.get("map50"),
            "network_alone_map": alone.get("map"),
        }
    card = {
        "trained_by": "python run.py (configs/default.py)",
        "step": step,
        "data": config.data.name,
        "splits": {
            s: len(input_pipeline.open_source(config.data, s))
            for s in (config.data.train_split, config.data.eval_split, config.data.test_split)
        },
        "figures": figures,
        "figures_note": "COCO mAP@.5 and mAP@[.5:.95] over all classes with ground truth; "
        "shipped pipeline and network alone",
    }
    pretrained.export(config, params, card, epath.Path(out) if out else pretrained.DEFAULT)
    return card

"""The evaluation protocol: every page of a split or a folder goes through one function.

A page is read as a user's page is (`detect.detect_stream`: the page's rescale rule, the
training resampler, bands, pages batched on the devices), scored twice from one forward
pass: the shipped pipeline (the detections re-measured on the ink, `detect.refine`) and the
network alone. Pages whose
decoder overflowed its budget or whose connected components did not converge are counted and
named, never silent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import ml_collections
import numpy as np
import tqdm

from dwd_jax import classes as classes_lib
from dwd_jax import hosts
from dwd_jax.data import deepscores_json, input_pipeline
from dwd_jax.detection import detect
from dwd_jax.eval import evaluate

_log = logging.getLogger(__name__)


class GroundTruth(NamedTuple):
    """One page and its annotations: image u8[H, W]; boxes f32[M, 4] [y0, x0, y1, x1] page
    pixels; classes i32[M] model classes."""

    name: str
    image: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray


def record_name(record: Mapping[str, Any], index: int) -> str:
    """A `deep_scores` record's file name (bytes from TFDS), or `page_<index>`."""
    name = record.get("filename", b"")
    name = name.decode() if isinstance(name, bytes) else str(name)
    return name or f"page_{index}"


PageLoader = Callable[[], GroundTruth]


def split_pages(
    source: Sequence[Mapping[str, Any]], indices: Iterable[int]
) -> list[PageLoader]:
    """Pages of a `deep_scores` TFDS split, each read when its loader is called."""

    def loader(i: int) -> PageLoader:
        def load() -> GroundTruth:
            record = source[i]
            name = record_name(record, i)
            page = input_pipeline.parse_page(record, name=name)
            return GroundTruth(name, page["image"], page["boxes"], page["classes"])

        return load

    return [loader(i) for i in indices]


def folder_annotations(folder: str | Path, split: str) -> Iterator[deepscores_json.Page]:
    """The annotations of one file set (`deepscores_<split>*.json`) of a DSv2-layout folder.

    Raises:
      FileNotFoundError: the folder holds no annotation file of that split; names the splits
        it has.
    """
    folder = Path(folder)
    files = deepscores_json.annotation_files(folder)
    if split not in files:
        raise FileNotFoundError(
            f"{folder} has no deepscores_{split}.json; its annotation files are for "
            f"{sorted(files) or 'no split'}: pass --split=<one of them>"
        )
    for file in files[split]:
        yield from deepscores_json.load_pages(file)


def folder_pages(
    folder: str | Path, annotations: Iterable[deepscores_json.Page]
) -> list[PageLoader]:
    """`folder_annotations`' pages, each image read from `<folder>/images` when its loader
    is called."""

    def loader(gt: deepscores_json.Page) -> PageLoader:
        def load() -> GroundTruth:
            image = detect.load_page(Path(folder) / "images" / gt.filename)
            return GroundTruth(gt.filename, image, gt.boxes, gt.labels + 1)

        return load

    return [loader(gt) for gt in annotations]


class _Scored(NamedTuple):
    index: int
    shipped: evaluate.Page
    network: evaluate.Page
    overflow: bool
    converged: bool
    error: str | None = None


def evaluate_pages(
    pages: Sequence[PageLoader],
    model: detect.Predictor | detect.PredictFn,
    *,
    config: ml_collections.ConfigDict,
    desc: str = "eval",
    on_page: Callable[[int, evaluate.Page], None] | None = None,
) -> dict:
    """Detections of every page, scored shipped and network alone.

    Pages are divided among processes (`hosts.share`), batched on each process's devices
    (`detect.detect_stream`) and gathered once, so every process returns the same results.

    Args:
      pages: the pages with their ground truth, as loaders (`split_pages`, `folder_pages`).
      model: a `detect.Predictor` (e.g. `inference.Detector`) or a one-band predict_fn.
      config: the experiment config (detect.*, decode.*, eval.*).
      desc: the progress bar's label.
      on_page: optional `f(index, shipped evaluate.Page)`, called for every page in order
        after gathering, e.g. to draw overlays.

    Returns:
      `evaluate.evaluate` results of the shipped pipeline, with "network_alone" (the same for
      the network's own detections), "overflow_pages", "unconverged_pages" and
      "failed_pages" (page names; a page that raised `detect.PageError` scores no detections).
    """
    mine = hosts.share(range(len(pages)))

    def loader(i: int) -> detect.Loader:
        def load():
            gt = pages[i]()
            return gt.image, gt

        return load

    scored = []
    stream = detect.detect_stream([loader(i) for i in mine], model, config=config)
    for done in tqdm.tqdm(stream, total=len(mine), desc=desc, unit="page", leave=False):
        if done.error is not None:
            if not isinstance(done.error, detect.PageError):
                raise done.error
            # A page the pipeline cannot measure (no staff-line pattern) is a miss of all its
            # objects, counted and named, not a reason to stop.
            gt = pages[mine[done.index]]()
            nothing = evaluate.Page(
                gt.boxes, gt.classes, np.zeros((0, 4), np.float32), np.zeros(0, np.int32),
                np.zeros(0, np.float32), name=gt.name,
            )
            scored.append(_Scored(mine[done.index], nothing, nothing, False, True, str(done.error)))
            continue
        gt, found = done.payload, done.detections
        refined = detect.refine(gt.image, found, config=config)
        scored.append(
            _Scored(
                mine[done.index],
                evaluate.Page(gt.boxes, gt.classes, *refined, name=gt.name),
                evaluate.Page(gt.boxes, gt.classes, *found[:3], name=gt.name),
                found[3]["overflow"],
                found[3]["ccl_converged"],
            )
        )
    scored = hosts.unshare(hosts.gather(scored))
    shipped = [s.shipped for s in scored]
    overflow = [s.shipped.name for s in scored if s.overflow]
    unconverged = [s.shipped.name for s in scored if not s.converged]
    failed = [s.shipped.name for s in scored if s.error is not None]
    if on_page is not None:
        for s in scored:
            on_page(s.index, s.shipped)
    e = config.eval
    kwargs = dict(
        min_instances=e.min_instances,
        num_worst_pages=e.num_worst_pages,
        class_names=classes_lib.model_class_names(config),
    )
    results = evaluate.evaluate(shipped, **kwargs)
    results["network_alone"] = evaluate.evaluate([s.network for s in scored], **kwargs)
    results["overflow_pages"], results["unconverged_pages"] = overflow, unconverged
    results["failed_pages"] = failed
    if failed:
        _log.warning(
            "%d of %d pages could not be measured and score no detections: %s",
            len(failed), len(shipped),
            "; ".join(f"{s.shipped.name}: {s.error}" for s in scored if s.error is not None),
        )
    if overflow:
        _log.warning(
            "%d of %d pages had more foreground pixels or detections than the decoder's budget "
            "(config.decode.max_foreground_pixels, max_detections), so objects were lost: %s",
            len(overflow), len(shipped), ", ".join(overflow),
        )
    if unconverged:
        _log.warning(
            "%d pages' connected components did not converge (config.decode."
            "ccl_max_iterations): %s", len(unconverged), ", ".join(unconverged),
        )
    return results


def headline(results: Mapping[str, Any]) -> dict:
    """The figures a reader compares: mAP@.5 and mAP@[.5:.95] over all classes, shipped and
    network alone, and the labelled filtered means."""
    alone = results["network_alone"]
    f = results["filtered"]
    return {
        "num_pages": results["num_pages"],
        "map50": results["map50"],
        "map": results["map"],
        "network_alone_map50": alone["map50"],
        "network_alone_map": alone["map"],
        f"map50_classes_with_{f['min_instances']}_gt": f["map50"],
        f"map_classes_with_{f['min_instances']}_gt": f["map"],
        "overflow_pages": len(results["overflow_pages"]),
        "unconverged_pages": len(results["unconverged_pages"]),
        "failed_pages": len(results["failed_pages"]),
    }

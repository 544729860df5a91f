"""A robustness development set: the pages of a split or folder under fixed, seeded
degradations, scored by the evaluation protocol, shipped and network alone.

A condition (`config.robustness.conditions.<name>`) maps `dwd_jax.data.degrade` family names to
that family's parameters, every family named being applied (in `degrade.FAMILIES` order), and
may hold `scale`, a capture at another resolution (the page and its boxes resized first).
Parameters are in pixels of the page as stored, not of training's scaled pages. The
conditions are not training's draws: fixed values, several beyond training's ranges, and
families combined as a real scan or photograph combines them. Page i of condition `name` draws
from (`config.robustness.seed`, crc32(name), i), so the set is the same for any process count,
any model and any other conditions.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections
import numpy as np

from dwd_jax.data import degrade, input_pipeline
from dwd_jax.detection import detect
from dwd_jax.eval import evaluation

CLEAN = "clean"


def apply(
    image: np.ndarray, boxes: np.ndarray, condition: Mapping[str, Any], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One page under one condition.

    Args:
      image: u8[H, W] grey page, 0 = ink.
      boxes: f32[M, 4] [y0, x0, y1, x1] page pixels.
      condition: family name -> keyword parameters, and optionally `scale` -> a size factor.
      rng: the generator of every random draw.

    Returns:
      (u8[H', W'] page, f32[M, 4] boxes on the same ink); H', W' differ only with `scale`.

    Raises:
      KeyError: a name that is neither `scale` nor a `degrade.FAMILIES` family.
    """
    unknown = set(condition) - {"scale", *degrade.FAMILIES}
    if unknown:
        raise KeyError(
            f"robustness condition names {sorted(unknown)}: use `scale` or a family of "
            f"dwd_jax.data.degrade ({', '.join(degrade.FAMILIES)})"
        )
    if "scale" in condition:
        page = input_pipeline.scale_page({"image": image, "boxes": boxes}, condition["scale"])
        image, boxes = page["image"], page["boxes"]
    for name, family in degrade.FAMILIES.items():
        if name in condition:
            image, boxes = family(image, boxes, rng, **dict(condition[name]))
    return image, np.asarray(boxes, np.float32)


def degraded_pages(
    pages: Sequence[evaluation.PageLoader],
    condition: Mapping[str, Any],
    seed: Sequence[int],
) -> list[evaluation.PageLoader]:
    """`pages` under `condition`, page i drawing from `np.random.default_rng([*seed, i])`."""

    def loader(i: int) -> evaluation.PageLoader:
        def load() -> evaluation.GroundTruth:
            gt = pages[i]()
            rng = np.random.default_rng([*seed, i])
            image, boxes = apply(gt.image, gt.boxes, condition, rng)
            return gt._replace(image=image, boxes=boxes)

        return load

    return [loader(i) for i in range(len(pages))]


def evaluate_conditions(
    pages: Sequence[evaluation.PageLoader],
    model: detect.Predictor | detect.PredictFn,
    *,
    config: ml_collections.ConfigDict,
    desc: str = "robustness",
) -> dict[str, dict]:
    """`evaluation.evaluate_pages` results per condition: "clean" first, then each of
    `config.robustness.conditions`."""
    conditions = {CLEAN: {}, **config.robustness.conditions.to_dict()}
    results = {}
    for name, condition in conditions.items():
        seed = (config.robustness.seed, zlib.crc32(name.encode()))
        degraded = degraded_pages(pages, condition, seed) if condition else list(pages)
        results[name] = evaluation.evaluate_pages(
            degraded, model, config=config, desc=f"{desc} {name}"
        )
    return results


def worse_with_post_processing(results: Mapping[str, Any]) -> list[tuple[str, float, float, int]]:
    """Classes whose AP@.5 shipped is below the network alone's by more than one object's
    worth (1 / the class's ground-truth count): (name, shipped AP@.5, alone AP@.5, count)."""
    alone = {c["name"]: c["ap50"] for c in results["network_alone"]["per_class"] if c["n_gt"]}
    return [
        (c["name"], c["ap50"], alone[c["name"]], c["n_gt"])
        for c in results["per_class"]
        if c["n_gt"] and c["ap50"] < alone[c["name"]] - 1.0 / c["n_gt"]
    ]


def summary(results: Mapping[str, Mapping[str, Any]]) -> dict[str, dict]:
    """Per condition: mAP@.5 and mAP shipped and alone, their ratios to the clean pages' and
    the classes the post-processing makes worse (`worse_with_post_processing`)."""
    clean = results[CLEAN]
    out = {}
    for name, r in results.items():
        alone, clean_alone = r["network_alone"], clean["network_alone"]
        out[name] = {
            "num_pages": r["num_pages"],
            "map50": r["map50"],
            "map": r["map"],
            "network_alone_map50": alone["map50"],
            "network_alone_map": alone["map"],
            "map50_vs_clean": r["map50"] / max(clean["map50"], 1e-9),
            "network_alone_map50_vs_clean": alone["map50"] / max(clean_alone["map50"], 1e-9),
            "worse_with_post_processing": [
                {"class": c, "shipped_ap50": s, "alone_ap50": a, "n_gt": n}
                for c, s, a, n in worse_with_post_processing(r)
            ],
            "overflow_pages": len(r["overflow_pages"]),
            "unconverged_pages": len(r["unconverged_pages"]),
            "failed_pages": len(r["failed_pages"]),
        }
    return out


def markdown(figures: Mapping[str, Mapping[str, Any]], title: str) -> str:
    """`summary`'s figures as a Markdown table."""
    lines = [
        f"# {title}",
        "",
        "All classes with ground truth; mAP@.5 / mAP@[.5:.95]; the ratio is mAP@.5 against the "
        "clean pages'. The last column lists classes whose AP@.5 the post-processing lowers by "
        "more than one object's worth.",
        "",
        "| condition | pages | shipped | ratio | network alone | ratio | worse with "
        "post-processing |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, f in figures.items():
        worse = "; ".join(
            f"{w['class']} {w['shipped_ap50']:.2f} < {w['alone_ap50']:.2f} ({w['n_gt']})"
            for w in f["worse_with_post_processing"]
        )
        lines.append(
            f"| {name} | {f['num_pages']} | {f['map50']:.3f} / {f['map']:.3f} | "
            f"{f['map50_vs_clean']:.2f}x | {f['network_alone_map50']:.3f} / "
            f"{f['network_alone_map']:.3f} | {f['network_alone_map50_vs_clean']:.2f}x | "
            f"{worse or 'none'} |"
        )
    return "\n".join(lines) + "\n"

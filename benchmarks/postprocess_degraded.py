"""Does the post-processing on the ink help or hurt on degraded pages? Per class, on the real
DeepScoresV2 sample page, clean and degraded, the shipped pipeline against the network alone.

Conditions (fixed seeds): "scan" (grey paper at 230, ink at 30, blur sigma 1, noise sigma
10), "photo" (light falling from 1.0 to 0.7 across the page, noise sigma 6, blur 0.8) and
"rotated" (0.6 degrees, ground-truth boxes rotated with the page and re-boxed). For each it
prints mAP@.5 / mAP shipped and alone, and every class whose AP@.5 with the post-processing is
lower than without it by more than one object's worth (1 / its ground-truth count).

Run: `python benchmarks/postprocess_degraded.py` (the shipped model; a few minutes on CPU).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from dwd_jax import deepscores_json, detect, evaluation, inference, pretrained

SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "data" / "deepscores_v2_sample"


def rotate(page: np.ndarray, boxes: np.ndarray, degrees: float):
    """The page rotated about its centre (white corners) and its boxes' rotated corners
    re-boxed: (u8[H, W], f32[N, 4] [y0, x0, y1, x1])."""
    h, w = page.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    out = cv2.warpAffine(page, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=255)
    y0, x0, y1, x1 = boxes.T
    xy = ((x0, y0), (x1, y0), (x0, y1), (x1, y1))
    corners = np.stack([np.stack([x, y, np.ones_like(x)], -1) for x, y in xy], 1)
    pts = corners @ m.T
    box = [pts[..., 1].min(1), pts[..., 0].min(1), pts[..., 1].max(1), pts[..., 0].max(1)]
    return out, np.stack(box, 1).astype(np.float32)


def scan(page: np.ndarray, seed: int = 0) -> np.ndarray:
    a = page.astype(np.float32) * (200 / 255) + 30
    a = cv2.GaussianBlur(a, (0, 0), 1.0) + np.random.default_rng(seed).normal(0, 10, a.shape)
    return np.clip(a, 0, 255).astype(np.uint8)


def photo(page: np.ndarray, seed: int = 1) -> np.ndarray:
    h, w = page.shape
    yy, xx = np.mgrid[0:h, 0:w]
    light = 0.7 + 0.3 * (xx / w) * (1 - 0.4 * yy / h)
    a = page.astype(np.float32) * light + np.random.default_rng(seed).normal(0, 6, page.shape)
    return cv2.GaussianBlur(np.clip(a, 0, 255).astype(np.uint8), (0, 0), 0.8)


def main() -> None:
    (gt,) = deepscores_json.load_pages(SAMPLE / "deepscores_v2_sample.json")
    clean = detect.load_page(SAMPLE / "images" / gt.filename)
    conditions = {
        "clean": (clean, gt.boxes),
        "scan": (scan(clean), gt.boxes),
        "photo": (photo(clean), gt.boxes),
        "rotated 0.6 degrees": rotate(clean, gt.boxes, 0.6),
    }
    config = pretrained.get_config()
    detector = inference.Detector(config, pretrained.load_params())
    print("| condition | shipped mAP@.5 / mAP | alone mAP@.5 / mAP | classes worse shipped |")
    print("|---|---|---|---|")
    for name, (page, boxes) in conditions.items():
        truth = evaluation.GroundTruth(name, page, boxes, gt.labels + 1)
        r = evaluation.evaluate_pages([lambda t=truth: t], detector, config=config)
        shipped = {c["name"]: (c["ap50"], c["n_gt"]) for c in r["per_class"] if c["n_gt"]}
        alone = {c["name"]: c["ap50"] for c in r["network_alone"]["per_class"] if c["n_gt"]}
        worse = [
            f"{k} {ap:.2f} < {alone[k]:.2f} ({n})"
            for k, (ap, n) in shipped.items()
            if ap < alone[k] - 1.0 / n
        ]
        a = r["network_alone"]
        print(
            f"| {name} | {r['map50']:.3f} / {r['map']:.3f} | {a['map50']:.3f} / {a['map']:.3f} "
            f"| {'; '.join(worse) or 'none'} |"
        )


if __name__ == "__main__":
    main()

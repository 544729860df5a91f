"""The least score per class that `run.py detect` writes, tuned on the validation split.

Evaluation ranks every detection (COCO's AP wants the whole ranking), but a reader of the
detections wants the weak ones gone, and the scores of different classes are not on one
scale (a beam's energy peak is lower than a note head's). Per class with at least
`--min_objects` validation objects this picks the score that maximises F1 at IoU 0.5 of the
shipped pipeline (`evaluate.best_f1_threshold`); the other classes share the score that
maximises their pooled F1. Prints the F1 of every choice and the `detect.min_score` and
`detect.class_min_scores` lines for configs/default.py. With `--split` or `--folder` it only
reports the configured scores' F1 on other pages (the test split, read only to report, or a
DeepScoresV2-layout folder such as the real sample page): nothing is tuned there.

Run: `python benchmarks/score_thresholds.py --workdir=workdir/default [--pages N]
[--class_split peaks] [--split test | --folder tests/data/deepscores_v2_sample --folder_split
v2_sample]`.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import default  # noqa: E402
from dwd_jax import classes as classes_lib  # noqa: E402
from dwd_jax.data import input_pipeline  # noqa: E402
from dwd_jax.detection import detect, inference  # noqa: E402
from dwd_jax.eval import evaluate, evaluation  # noqa: E402


def _pooled_f1(matches, threshold_of) -> tuple[int, int, int]:
    """(kept, true positives, ground truth) over classes, each cut at threshold_of(class)."""
    kept = hits = gt = 0
    for c, (scores, tp, n_gt) in matches.items():
        keep = scores >= threshold_of(c)
        kept, hits, gt = kept + int(keep.sum()), hits + int(tp[keep].sum()), gt + n_gt
    return kept, hits, gt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="workdir/default")
    parser.add_argument("--pages", type=int, default=0, help="First validation pages; 0 = all.")
    parser.add_argument("--min_objects", type=int, default=20)
    parser.add_argument("--split", default="", help="Report on this split instead of tuning.")
    parser.add_argument("--folder", default="", help="Report on this folder instead of tuning.")
    parser.add_argument("--folder_split", default="v2_sample")
    parser.add_argument("--class_split", default="", help="Default: the config's.")
    args = parser.parse_args()
    config = default.get_config()
    config.decode.class_split = args.class_split or config.decode.class_split
    params, step = inference.restore_params(config, args.workdir)
    detector = inference.Detector(config, params)
    if args.folder:
        where = args.folder
        loads = evaluation.folder_pages(
            args.folder, evaluation.folder_annotations(args.folder, args.folder_split)
        )
    else:
        where = args.split or config.data.eval_split
        source = input_pipeline.open_source(config.data, where)
        loads = evaluation.split_pages(source, range(len(source)))
    loads = loads[: args.pages] if args.pages else loads
    tuning = not (args.folder or args.split)
    pages = []  # The shipped pipeline's pages, as the evaluation protocol scores them.
    evaluation.evaluate_pages(
        loads, detector, config=config, desc=where, on_page=lambda _, page: pages.append(page)
    )
    matches = evaluate.class_matches(pages)
    names = classes_lib.model_class_names(config)
    own = {}
    for c, (scores, tp, n_gt) in matches.items():
        if n_gt >= args.min_objects and len(scores):
            own[c] = evaluate.best_f1_threshold(scores, tp, n_gt)[0]
    rest = {c: m for c, m in matches.items() if c not in own}
    pooled = [np.concatenate([np.zeros(0)] + [m[i] for m in rest.values()]) for i in (0, 1)]
    shared, _ = evaluate.best_f1_threshold(
        pooled[0], pooled[1].astype(bool), sum(m[2] for m in rest.values())
    )

    print(
        f"\n{args.workdir} (step {step}), {len(pages)} pages of {where}, shipped pipeline, "
        f"decode.class_split {config.decode.class_split}:\n"
    )
    print("| least score written | detections | true positives @.5 | F1 @.5 |")
    print("|---|---:|---:|---:|")
    table = detect.min_score_table(config)
    rows = [("every detection (0)", lambda c: 0.0), ("as configured", lambda c: table[c])]
    rows += [(f"{t} for every class", lambda c, t=t: t) for t in (0.2, 0.3, 0.4)]
    if tuning:
        rows.append(("tuned per class (below)", lambda c: own.get(c, shared)))
    for label, threshold_of in rows:
        kept, hits, gt = _pooled_f1(matches, threshold_of)
        print(f"| {label} | {kept} | {hits} | {2 * hits / (gt + kept):.3f} |")
    if not tuning:
        return
    print(f"\n    c.detect.min_score = {shared:.2f}")
    entries = ", ".join(f'("{names[c]}", {t:.2f})' for c, t in sorted(own.items()))
    print(f"    c.detect.class_min_scores = ({entries})")


if __name__ == "__main__":
    main()

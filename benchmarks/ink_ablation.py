"""What each ink re-measure adds: mAP of a trained run's detections on the test split with the
`config.decode` ink options switched on one after another, from the network's boxes alone to
the default.

The network runs once per page; each row re-applies `ink.refine` to its saved detections with
that row's options (the same as `python run.py eval --config.decode.<option>=...` for that
row, minus the overlays). Prints a Markdown table.

Run: `python benchmarks/ink_ablation.py --workdir=workdir/default [--pages 45]`.
"""

from __future__ import annotations

import os
import sys

import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import trained_run  # noqa: E402

from dwd_jax import detect, evaluate, inference, ink, input_pipeline, workflow  # noqa: E402

# (row name, config.decode overrides applied on top of the previous row's).
_STEPS = (
    ("network only", ink.OFF),
    ("+ line classes (stems, ledger lines)", {"line_classes": None}),
    ("+ solid classes", {"solid_classes": None}),
    ("+ staves from the ink", {"staves_from_ink": True}),
    ("+ symbol classes", {"symbol_classes": None}),
    ("+ ledger lines from note heads", {"ledger_lines_from_heads": True}),
    ("+ accidentals named by shape", {"accidentals_by_shape": True}),
    ("+ dots from the ink, named by place (default)", {"dots_from_ink": True}),
)
_COLUMNS = (
    "staff",
    "stem",
    "beam",
    "ledgerLine",
    "clefG",
    "augmentationDot",
    "articStaccatoBelow",
    "repeatDot",
    "accidentalFlat",
)


def main() -> None:
    args, config, params, step = trained_run.load(__doc__, pages=45, classes="")
    defaults = config.decode.to_dict()
    for key, value in _STEPS[0][1].items():
        config.decode[key] = value
    predictor = inference.Predictor(config, params)
    source = input_pipeline.open_source(config.data, "test")
    pages, images = [], []
    for i in tqdm.trange(min(args.pages, len(source)), desc="network", unit="page"):
        image, page = workflow._eval_page(source[i], str(i), predictor)
        pages.append(page)
        images.append((image, detect.estimate_staff_space(image)))
    print(f"\n{args.workdir} (step {step}), first {len(pages)} test pages:\n")
    head = " | ".join(f"{c} @.5 / AP" for c in _COLUMNS)
    print(f"| decoding | mAP@.5 | mAP | {head} |")
    print("|---|---:|---:|" + "---:|" * len(_COLUMNS))
    for name, overrides in _STEPS:
        for key, value in overrides.items():
            config.decode[key] = defaults[key] if value is None else value
        refined = []
        for page, (image, space) in zip(pages, images, strict=True):
            boxes, classes, scores = ink.refine(
                image,
                page.det_boxes,
                page.det_classes,
                page.det_scores,
                config=config,
                staff_space=space,
            )
            refined.append(page._replace(det_boxes=boxes, det_classes=classes, det_scores=scores))
        report = evaluate.evaluate(refined, min_instances=config.eval.min_instances)
        rows = {row["name"]: row for row in report["per_class"]}
        cells = " | ".join(
            f"{rows[c]['ap50']:.3f} / {rows[c]['ap']:.3f}" if c in rows else "-" for c in _COLUMNS
        )
        print(f"| {name} | {report['map50']:.3f} | {report['map']:.3f} | {cells} |", flush=True)
    assert config.decode.to_dict() == defaults  # The last row is the default.


if __name__ == "__main__":
    main()

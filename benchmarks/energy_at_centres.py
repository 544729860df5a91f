"""What the energy and class heads say at ground-truth centres, per class.

For every ground-truth object on the first validation pages of a trained run, the finest output
stride's maps are read at the object's centre (the best of the 3x3 pixels around it, in its
energy group): P(level > 1), the expected energy level E[l] (19 at a perfect centre), and
whether the class head's argmax there is the object's class. A class whose objects the
decoder misses although the class head is right is lost in the energy map.

Run: `python benchmarks/energy_at_centres.py --workdir=workdir/default [--pages 8]
[--classes a,b,...]`; prints a Markdown table.
"""

from __future__ import annotations

import collections
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import trained_run  # noqa: E402

from dwd_jax import classes as classes_lib  # noqa: E402
from dwd_jax.data import input_pipeline
from dwd_jax.detection import detect  # noqa: E402
from dwd_jax.modeling import model, targets

CLASSES = (
    "noteheadBlackOnLine,stem,accidentalSharp,augmentationDot,articStaccatoAbove,"
    "articStaccatoBelow,accidentalNatural,repeatDot,restWhole,tie,beam,ledgerLine,staff"
)


def main() -> None:
    args, config, params, step = trained_run.load(__doc__, pages=8, classes=CLASSES)
    net = model.build_model(config)
    stride = min(config.model.output_strides)
    apply = jax.jit(lambda p, x: net.apply({"params": p}, x)[stride])
    source = input_pipeline.open_source(config.data, config.data.eval_split)
    group_of = targets.group_of_class(config)
    cutoff = config.decode.energy_cutoff
    stats = collections.defaultdict(list)
    for i in range(min(args.pages, len(source))):
        page = input_pipeline.parse_page(source[i], name=str(i))
        page = input_pipeline.scale_page(page, config.data.scale)
        image = detect.pad_white(page["image"][None], config.data.pad_multiple)
        out = apply(params, jnp.asarray(image, jnp.float32)[..., None])
        p = jax.nn.softmax(out["energy"][0], axis=-1)
        foreground = np.asarray(p[..., cutoff + 1 :].sum(-1))
        level = np.asarray((p * jnp.arange(p.shape[-1])).sum(-1))
        klass = np.asarray(out["class"][0].argmax(-1))
        h, w = level.shape[:2]
        for box, c in zip(page["boxes"], page["classes"], strict=True):
            cy = min(int((box[0] + box[2]) / 2) // stride, h - 1)
            cx = min(int((box[1] + box[3]) / 2) // stride, w - 1)
            g = group_of[c]
            near = (slice(max(cy - 1, 0), cy + 2), slice(max(cx - 1, 0), cx + 2), g)
            name = classes_lib.DEEPSCORES_CLASSES[c - 1]
            stats[name].append((foreground[near].max(), level[near].max(), klass[cy, cx, g] == c))
    print(f"{args.workdir} (step {step}), first {args.pages} validation pages, stride {stride}.\n")
    print("| class | objects | P(fg) median | E[level] median | E[level] >= 5 | class right |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.classes.split(","):
        v = np.array(stats[name], np.float64).reshape(-1, 3)
        if len(v):
            print(
                f"| {name} | {len(v)} | {np.median(v[:, 0]):.2f} | {np.median(v[:, 1]):.1f} | "
                f"{(v[:, 1] >= 5).mean():.2f} | {v[:, 2].mean():.2f} |"
            )


if __name__ == "__main__":
    main()

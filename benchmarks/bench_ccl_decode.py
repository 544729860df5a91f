"""Connected components and decoding on a real DeepScoresV2 page at working resolution.

Three tables, one run, printed as Markdown:
1. `ccl.label` against scipy.ndimage.label, skimage.measure.label and OpenCV
   connectedComponents (8-connectivity) on two masks of the sample page at half resolution,
   padded to 1920x1440: its target energy map above the cutoff, and its ink (staff lines make
   components thousands of pixels long). Target: within 5x of scipy.
2. The whole jitted `decode` against a numpy/scipy reference that reads each component with
   Python loops, as the original did, on the page's targets as one-hot logits at stride 2.
   Target: at least 5x faster.
3. The oracle: share of the page's 547 objects that decoding its target maps recovers
   (IoU >= 0.5, right class), per design.

Run: `python benchmarks/bench_ccl_decode.py` (about a minute on 2 cores, 4 GB of memory).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import scipy.ndimage as ndi
import skimage.measure
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # Runnable as a script.

from timing import median_jax

from configs import line_targets
from configs.default import get_config
from dwd_jax import classes as classes_lib
from dwd_jax.decoding import ccl, decode
from dwd_jax.modeling import targets

SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "data" / "deepscores_v2_sample"
PADDED = (1920, 1440)  # The half-resolution page (1914 x 1354) padded to a multiple of 160.
LINES = get_config().targets.energy_groups[1]  # The thin symbols.


def load_page():
    """Boxes f32[M, 4] `[y0, x0, y1, x1]`, model classes i32[M], grey page u8[H, W], at 0.5."""
    data = json.loads((SAMPLE / "deepscores_v2_sample.json").read_text())
    names = {k: v["name"] for k, v in data["categories"].items()}
    anns = list(data["annotations"].values())
    x0, y0, x1, y1 = np.array([a["a_bbox"] for a in anns], np.float32).T * 0.5
    classes = np.array([classes_lib.label_of(names[a["cat_id"][0]]) + 1 for a in anns], np.int32)
    image = Image.open(SAMPLE / "images" / data["images"][0]["filename"]).convert("L")
    image = image.resize((round(image.width * 0.5), round(image.height * 0.5)), Image.BILINEAR)
    return np.stack([y0, x0, y1, x1], -1), classes, np.asarray(image)


def page_outputs(boxes, classes, stride, config):
    """The page's target maps at `stride` as the one-hot logits of a perfect model."""
    t = targets.make_targets(
        jnp.asarray(boxes)[None],
        jnp.asarray(classes)[None],
        jnp.ones((1, len(boxes)), bool),
        image_shape=PADDED,
        stride=stride,
        config=config,
    )
    levels = config.targets.energy_levels
    return {
        "energy": jax.nn.one_hot(t["energy"], levels) * 20.0,
        "class": jax.nn.one_hot(t["class"], classes_lib.num_model_classes(config)) * 20.0,
        "box": t["box"],
        **({"offset": t["offset"]} if config.model.offset_head else {}),
    }


def reference_decode(outputs, stride, config, *, slices=True):
    """DWD_SPEC.md section 6 with numpy maps, scipy components and a Python loop reading each
    component, one group after another; through its bounding slice (`slices`), or through a
    full-page mask `labels == i` per component, the most literal reading of the procedure."""
    d = config.decode
    energy, klass, box = (np.asarray(outputs[k])[0] for k in ("energy", "class", "box"))
    found = []
    for g in range(energy.shape[2]):
        level = energy[:, :, g].argmax(-1)
        cls = klass[:, :, g].argmax(-1)
        labels, _ = ndi.label(level > d.energy_cutoff, structure=np.ones((3, 3)))
        whole = (slice(0, labels.shape[0]), slice(0, labels.shape[1]))
        windows = ndi.find_objects(labels) if slices else [whole] * labels.max()
        for i, window in enumerate(windows, start=1):
            ys, xs = np.nonzero(labels[window] == i)
            if len(ys) < d.min_size:
                continue
            ys, xs = ys + window[0].start, xs + window[1].start
            voted = np.bincount(cls[ys, xs], minlength=klass.shape[-1])[1:].argmax() + 1
            centre = np.array([ys.mean(), xs.mean()]) * stride + stride // 2 + 0.5
            size = box[ys, xs, g].max(0)
            found.append((*(centre - size / 2), *(centre + size / 2), voted))
    return np.array(found)


def recovered_fraction(boxes, classes, found_boxes, found_classes):
    lo = np.maximum(boxes[:, None, :2], found_boxes[None, :, :2])
    hi = np.minimum(boxes[:, None, 2:], found_boxes[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), -1)
    area = lambda z: np.prod(z[:, 2:] - z[:, :2], -1)  # noqa: E731
    iou = inter / (area(boxes)[:, None] + area(found_boxes)[None] - inter)
    return float(((iou >= 0.5) & (classes[:, None] == found_classes[None])).any(1).mean())


def ccl_table(boxes, classes, ink):
    one_group = get_config()
    one_group.targets.energy_groups = ()
    energy = page_outputs(boxes, classes, 1, one_group)["energy"]
    masks = {
        "target energy > 1": np.asarray(energy[0, :, :, 0].argmax(-1) > 1),
        "ink (page < 128)": np.pad(
            ink < 128, [(0, p - s) for p, s in zip(PADDED, ink.shape, strict=True)]
        ),
    }
    label = jax.jit(ccl.label)
    print("| mask | foreground | components | ccl.label | scipy | skimage | OpenCV | ccl / scipy |")
    print("|---|---|---|---|---|---|---|---|")
    for name, mask in masks.items():
        reference, count = ndi.label(mask, structure=np.ones((3, 3)))
        labels, got = label(jnp.asarray(mask))
        assert int(got) == count, (name, int(got), count)
        t = {
            "ccl": median_jax(label, jnp.asarray(mask)),
            "scipy": median_jax(lambda m: ndi.label(m, structure=np.ones((3, 3))), mask),
            "skimage": median_jax(lambda m: skimage.measure.label(m, connectivity=2), mask),
            "opencv": median_jax(
                lambda m: cv2.connectedComponents(m.view(np.uint8), connectivity=8), mask
            ),
        }
        print(
            f"| {name} | {mask.mean():.1%} | {count} | {t['ccl'] * 1e3:.1f} ms "
            f"| {t['scipy'] * 1e3:.1f} ms | {t['skimage'] * 1e3:.1f} ms "
            f"| {t['opencv'] * 1e3:.1f} ms | {t['ccl'] / t['scipy']:.2f}x |"
        )


def decode_table(boxes, classes):
    print(
        "\n| decoder (stride 2, page as one-hot logits, G = 2) | time | this / jitted watershed |"
    )
    print("|---|---|---|")
    config = get_config()
    config.decode.class_split = "peaks"  # As in the oracle table (see there).
    outputs = page_outputs(boxes, classes, 2, config)
    rows = {}
    for name, depth in [
        ("jitted decode, watershed (default)", 3.0),
        ("jitted decode, plain components", 0.0),
    ]:
        config.decode.saddle_depth = depth
        rows[name] = median_jax(
            lambda o, c=config: decode.decode(o, stride=2, config=c), outputs, repeats=3
        )
    config.decode.saddle_depth = 3.0
    config.decode.max_foreground_pixels //= 2  # What a halved budget would save.
    rows["jitted decode, watershed, half the foreground budget"] = median_jax(
        lambda o, c=config: decode.decode(o, stride=2, config=c), outputs, repeats=3
    )
    config.decode.max_foreground_pixels *= 2
    rows["reference: Python loop over find_objects slices"] = median_jax(
        reference_decode, outputs, 2, config, repeats=3
    )
    literal = lambda o: reference_decode(o, 2, config, slices=False)  # noqa: E731
    literal_name = "reference: Python loop, `labels == i` per component"
    rows[literal_name] = median_jax(literal, outputs, repeats=1)
    base = rows["jitted decode, watershed (default)"]
    for name, t in rows.items():
        print(f"| {name} | {t * 1e3:.0f} ms | {t / base:.1f}x |")


def oracle_table(boxes, classes):
    print("\n| design (targets decoded at stride 2) | recovered (IoU >= 0.5, right class) |")
    print("|---|---|")
    thin = tuple(c for c in LINES if c != "stem")
    ovals, one_group = dict(line_classes=()), dict(line_classes=(), energy_groups=())
    # Plain components read the whole component, most of it outside the box markers: the
    # original's maximum box size, not the mean of the default's cores.
    plain = dict(saddle_depth=0.0, box_size="max")
    # Target maps name a class only on the class marker, inside the energy marker: with
    # "pixels" each object's outer ring would read as another class and fall apart.
    watershed = dict(saddle_depth=3.0, class_split="peaks")
    designs = [
        ("G=1, plain components, centred ovals (the original)", plain, one_group),
        ("G=1, watershed, centred ovals", watershed, one_group),
        ("G=2 (thin symbols), plain components, centred ovals", plain, ovals),
        ("G=2 (thin symbols), watershed, centred ovals (default)", watershed, ovals),
        ("G=2 (thin symbols), watershed, line markers (configs/line_targets.py)", watershed, {}),
        (
            "G=3 (stems apart), watershed, line markers for staffs and stems too",
            watershed,
            dict(energy_groups=((), thin, ("stem",)), line_classes=thin + ("stem",)),
        ),
    ]
    for name, decoding, fields in designs:
        config = line_targets.get_config()
        config.targets.update(fields)
        config.decode.update(decoding)
        det = decode.decode(page_outputs(boxes, classes, 2, config), stride=2, config=config)
        valid = np.asarray(det.valid[0])
        found = recovered_fraction(
            boxes, classes, np.asarray(det.boxes[0])[valid], np.asarray(det.classes[0])[valid]
        )
        print(f"| {name} | {found:.1%} ({round(found * len(boxes))}/{len(boxes)}) |")


def main():
    boxes, classes, ink = load_page()
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}; "
        f"page {ink.shape} padded to {PADDED}\n"
    )
    ccl_table(boxes, classes, ink)
    decode_table(boxes, classes)
    oracle_table(boxes, classes)


if __name__ == "__main__":
    main()

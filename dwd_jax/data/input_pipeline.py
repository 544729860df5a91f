"""Training input pipeline: `tfds.data_source` -> grain -> padded, fixed-shape batches.

A page goes through `parse_page` (`image.to_grey`, normalised boxes -> pixels,
labels -> model classes), `scale_page` (`image.resize`, spec section 4), on a share
`data.degrade.rate` of pages (half by default) `degrade.degrade` (scan and photograph
degradations), `crop_page` (a random square crop, white padding, boxes clipped and padded
to `data.max_objects`) and, on a share `data.margin.prob` of crops, `margin.add_margin` (a strip
of symbols of uniformly drawn classes along the top, spec section 5). Each process reads its
own slice of one global order of records (`GlobalOrderSampler`) and yields its slice of the
global batch:

    {"image": u8[b, S, S, 1], "boxes": f32[b, M, 4], "classes": i32[b, M], "valid": bool[b, M]}

with b = data.batch_size // process_count, S = data.crop_size, M = data.max_objects. Images stay
u8 until the train step (4x less host-to-device traffic); targets are made inside the step.

Randomness comes from grain's per-record generator (seeded by `seed` and the record's position
in the global order), so every page is cropped the same for any worker or process count; with
`data.worker_count = 0` the global batches are the same for any number of processes too. How
pages group into batches depends on `data.worker_count` (each grain worker builds whole
batches from every worker_count-th record), so keep it fixed across a resume. The iterator state
(`iterator.get_state()`) is a few bytes that the checkpoint stores to resume exactly.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import grain.python as grain
import jax
import ml_collections
import numpy as np
import tqdm
from absl import flags

from dwd_jax import boxes as boxes_lib
from dwd_jax import image as image_lib
from dwd_jax.data import degrade as degrade_lib
from dwd_jax.data import margin as margin_lib

# Records each loader process reads ahead, and its reading threads. Grain's defaults (500
# records, 16 threads) suit small records; a decoded page is 5-10 MB, so they held ~5 GB of
# pages per worker (measured: a worker's memory grew by ~45 MB per batch up to 4.6 GB).
READ_AHEAD_PAGES = 8
READ_THREADS = 2


def parse_page(record: Mapping[str, Any], *, name: str = "page") -> dict[str, np.ndarray]:
    """A `deep_scores` TFDS record as a grey page with pixel boxes and model classes.

    Args:
      record: `{"image": u8[H, W, 1] or bytes, "objects": {"bbox": f32[N, 4] normalised
        [ymin, xmin, ymax, xmax], "label": int[N] DeepScores labels 0..135}}`.
      name: what to call the record in error messages.

    Returns:
      `{"image": u8[H, W], "boxes": f32[N, 4] [y0, x0, y1, x1] pixels, "classes": i32[N]}`
      with classes = label + 1 (0 is background, docs/DESIGN.md).
    """
    image = image_lib.to_grey(record["image"], name=name)
    objects = record["objects"]
    boxes = np.asarray(objects["bbox"], np.float32).reshape(-1, 4)
    labels = np.asarray(objects["label"]).reshape(-1)
    if len(boxes) != len(labels):
        raise ValueError(f"{name}: {len(boxes)} boxes but {len(labels)} labels.")
    height, width = image.shape
    return {
        "image": image,
        "boxes": boxes * np.float32([height, width, height, width]),
        "classes": labels.astype(np.int32) + 1,
    }


def scale_page(page: Mapping[str, np.ndarray], scale: float) -> dict[str, np.ndarray]:
    """A page and its boxes scaled by `scale` (`image.resize`; spec section 4: 0.5 for
    DeepScores).

    Args:
      page: `{"image": u8[H, W], "boxes": f32[N, 4], "classes": i32[N]}`.
      scale: size factor.

    Returns:
      The page with `image` u8[round(H * scale), round(W * scale)] and boxes scaled to match.
    """
    height, width = page["image"].shape
    scaled = image_lib.resize(page["image"], scale)
    factors = np.float32([scaled.shape[0] / height, scaled.shape[1] / width] * 2)
    return {**page, "image": scaled, "boxes": page["boxes"] * factors}


def crop_page(
    page: Mapping[str, np.ndarray],
    rng: np.random.Generator,
    *,
    crop_size: int,
    top_left_prob: float,
    max_objects: int,
    object_prob: float = 0.0,
    crossing_classes: Sequence[int] = (),
    name: str = "page",
) -> dict[str, np.ndarray]:
    """A random square crop, padded white, with its boxes kept whole and padded.

    With probability `top_left_prob` the crop starts at the page's top-left corner (spec
    section 4: 30 % there, so titles and first systems are seen often); otherwise, with
    probability `object_prob`, it is placed so that an object's centre falls in it, the object
    drawn class-balanced (a class of the page uniformly, then one of its objects), and
    otherwise anywhere. Crops much smaller than a page often hold only margin; centring them on
    objects, rare classes as often as common ones, is our remedy for both that and the class
    imbalance (the original's is margin augmentation, spec section 5).
    Sides shorter than the crop are padded with white at the bottom/right, not an error. A box
    is kept when its centre lies in the crop, and kept whole (not clipped): targets are made at
    the box centre and regress its full size, so a clipped box would teach a false centre and
    size, and a visibility rule would never keep a symbol longer than twice the crop (a staff
    is 3-4 times a 320 crop at model scale). The network sees the rest of such a symbol only
    through its receptive field, as it does on a whole page at test time. Objects of
    `crossing_classes` (the line classes, whose targets run along them, `targets`) are kept
    whenever their box overlaps the crop.
    More than `max_objects` kept boxes are truncated with a warning (raise `data.max_objects`).

    Args:
      page: `{"image": u8[H, W], "boxes": f32[N, 4], "classes": i32[N]}`.
      rng: the per-record generator.
      crop_size: S, the side of the crop.
      top_left_prob: probability of a top-left crop.
      max_objects: M, boxes per crop after padding.
      object_prob: probability of an object-centred crop (when not top-left).
      crossing_classes: classes (as in `page["classes"]`) kept when they overlap the crop.
      name: what to call the page in warnings.

    Returns:
      `{"image": u8[S, S, 1], "boxes": f32[M, 4], "classes": i32[M], "valid": bool[M]}`;
      padding rows have zero boxes, class 0 and valid False.
    """
    image, boxes, classes = page["image"], page["boxes"], page["classes"]
    height, width = image.shape
    top_left = rng.random() < top_left_prob
    # Drawn only when enabled, so object_prob = 0 keeps the generator's sequence unchanged.
    centred = not top_left and len(boxes) > 0 and object_prob > 0 and rng.random() < object_prob
    if top_left:
        y0 = x0 = 0
    elif centred:
        y0, x0 = _object_centred_corner(boxes, classes, rng, crop_size, height, width)
    else:
        y0 = int(rng.integers(0, max(height - crop_size, 0) + 1))
        x0 = int(rng.integers(0, max(width - crop_size, 0) + 1))
    crop = np.full((crop_size, crop_size, 1), image_lib.WHITE, np.uint8)
    window = image[y0 : y0 + crop_size, x0 : x0 + crop_size]
    crop[: window.shape[0], : window.shape[1], 0] = window

    shifted = boxes - np.float32([y0, x0, y0, x0])
    centre = (shifted[:, :2] + shifted[:, 2:]) / 2
    kept = ((centre >= 0) & (centre < crop_size)).all(axis=1)
    if len(crossing_classes):
        overlaps = ((shifted[:, 2:] > 0) & (shifted[:, :2] < crop_size)).all(axis=1)
        kept |= overlaps & np.isin(classes, np.asarray(crossing_classes))
    kept_boxes, kept_classes = shifted[kept], classes[kept]
    return {
        "image": crop,
        **boxes_lib.pad_objects(kept_boxes, kept_classes, max_objects, name=name),
    }


def _object_centred_corner(
    boxes: np.ndarray,
    classes: np.ndarray,
    rng: np.random.Generator,
    crop_size: int,
    height: int,
    width: int,
) -> tuple[int, int]:
    """(y0, x0) of a crop inside the page holding the centre of a class-balanced random object."""
    chosen_class = rng.choice(np.unique(classes))
    box = boxes[rng.choice(np.flatnonzero(classes == chosen_class))]
    corner = []
    for centre, side in ((box[0] + box[2]) / 2, height), ((box[1] + box[3]) / 2, width):
        low = max(0, int(np.floor(centre)) - crop_size + 1)
        high = max(low, min(int(np.floor(centre)), side - crop_size))
        corner.append(int(rng.integers(low, high + 1)))
    return corner[0], corner[1]


def _leave_ctrl_c_to_the_trainer() -> None:
    """In a loader worker process, ignores SIGINT from then on (idempotent, cheap).

    A terminal's Ctrl-C reaches the whole process group. The trainer finishes its step, saves
    a checkpoint and shuts the workers down (`train._stop_requests`); a worker killed by the
    KeyboardInterrupt first prints a traceback and leaks its shared memory. Grain exposes no
    worker initialiser through `DataLoader`, and only a process's main thread may set a
    handler, which is where grain's workers run these transforms.
    """
    if (
        multiprocessing.parent_process() is not None
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
    ):
        signal.signal(signal.SIGINT, signal.SIG_IGN)


class _TrainPage(grain.RandomMapTransform):
    """parse -> scale -> degrade (`data.degrade.rate` of pages) -> random crop, for one record;
    `rng` is grain's per-record generator, so a page is degraded and cropped the same for any
    worker count and after a resume."""

    def __init__(
        self,
        data: ml_collections.ConfigDict,
        bank: margin_lib.Bank | None = None,
        crossing_classes: Sequence[int] = (),
    ):
        self._crossing_classes = tuple(crossing_classes)
        self._scale = data.scale
        self._crop_size = data.crop_size
        self._top_left_prob = data.crop_top_left_prob
        self._object_prob = data.crop_object_prob
        self._max_objects = data.max_objects
        self._degrade = data.degrade
        self._margin = _margin_config(data)
        self._bank = bank or {}

    def random_map(self, element: Mapping[str, Any], rng: np.random.Generator):
        _leave_ctrl_c_to_the_trainer()
        name = f"record {element.get('index', '?')}"
        page = scale_page(parse_page(element, name=name), self._scale)
        # Drawn only when enabled, so rate = 0 keeps the generator's sequence (the crops) as is.
        if self._degrade.rate > 0 and rng.random() < self._degrade.rate:
            image, boxes = degrade_lib.degrade(page["image"], page["boxes"], rng, self._degrade)
            page = {**page, "image": image, "boxes": boxes}
        crop = crop_page(
            page,
            rng,
            crop_size=self._crop_size,
            top_left_prob=self._top_left_prob,
            max_objects=self._max_objects,
            object_prob=self._object_prob,
            crossing_classes=self._crossing_classes,
            name=name,
        )
        # Drawn only when enabled, as above.
        if self._margin.prob > 0 and rng.random() < self._margin.prob:
            crop = margin_lib.add_margin(crop, rng, self._bank, self._margin, name=name)
        return crop


def _margin_config(data: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """`data.margin`, or margin augmentation off for a config written before it existed."""
    return data.get("margin") or ml_collections.ConfigDict({"prob": 0.0})


def margin_bank(
    source: Sequence[Mapping[str, Any]], data: ml_collections.ConfigDict, *, seed: int
) -> margin_lib.Bank:
    """The symbol bank of `data.margin` cut from every page of `source` at `data.scale`
    (empty with margin augmentation off)."""
    margin = _margin_config(data)
    if margin.prob == 0:
        return {}
    pages = (
        lambda i=i: scale_page(parse_page(source[i], name=f"record {i}"), data.scale)
        for i in range(len(source))
    )
    bank = margin_lib.build_bank(
        tqdm.tqdm(pages, total=len(source), desc="margin symbols", leave=False), margin, seed=seed
    )
    logging.info("Margin augmentation: %d classes in the symbol bank.", len(bank))
    return bank


class _WithIndex(Sequence):
    """A random-access source whose records also carry their index (for error messages)."""

    def __init__(self, source: Sequence[Mapping[str, Any]]):
        self._source = source

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {**self._source[index], "index": index}

    def __repr__(self) -> str:
        # Grain compares this string on resume: a different dataset size is refused.
        return f"{type(self._source).__name__} of {len(self._source)} records"


def process_batch_size(global_batch_size: int) -> int:
    """This process's share of the global batch; checks it divides over devices and hosts."""
    devices, processes = jax.device_count(), jax.process_count()
    if global_batch_size % devices:
        raise ValueError(
            f"data.batch_size={global_batch_size} does not divide over {devices} devices; "
            f"set --config.data.batch_size to a multiple of {devices}."
        )
    return global_batch_size // processes


def validate_data_config(data: ml_collections.ConfigDict) -> None:
    """Raises ValueError naming the `data` field that cannot work."""
    if data.crop_size % data.pad_multiple:
        raise ValueError(
            f"data.crop_size={data.crop_size} is not a multiple of data.pad_multiple="
            f"{data.pad_multiple}; the model's upsampling needs it (spec section 2)."
        )
    margin_lib.validate(_margin_config(data), data.crop_size)
    for field in ("crop_top_left_prob", "crop_object_prob"):
        if not 0.0 <= data[field] <= 1.0:
            raise ValueError(f"data.{field}={data[field]} is not in [0, 1].")
    if data.scale <= 0:
        raise ValueError(f"data.scale={data.scale} must be positive.")
    shares = {"rate": data.degrade.rate}
    shares |= {f"{name}.prob": data.degrade[name].prob for name in degrade_lib.FAMILIES}
    for field, value in shares.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"data.degrade.{field}={value} is not in [0, 1].")


def open_source(data: ml_collections.ConfigDict, split: str) -> Sequence[Mapping[str, Any]]:
    """The random-access records of `data.name` / `split`, read without TensorFlow.

    Args:
      data: the `config.data` section (`name`, `data_dir`).
      split: e.g. `data.train_split`.

    Raises:
      FileNotFoundError: the dataset has not been prepared (naming the commands that prepare
        it), or has no split `split` (naming the splits it has).
    """
    import tensorflow_datasets as tfds

    import dwd_jax  # noqa: F401  (registers the `deep_scores` builder)

    data_dir = data.data_dir or "~/tensorflow_datasets"
    try:
        return tfds.data_source(data.name, split=split, data_dir=data.data_dir or None)
    except Exception as error:  # TFDS raises several types for a dataset that is not there.
        try:  # Prepared, but without this split?
            splits = sorted(tfds.builder(data.name, data_dir=data.data_dir or None).info.splits)
        except Exception:
            splits = []
        if splits:
            raise FileNotFoundError(
                f"TFDS dataset {data.name!r} in data_dir {data_dir!r} has no split {split!r}; "
                f"its splits are {', '.join(splits)}. Name one of them (config.data.train_split, "
                "eval_split or test_split; `run.py eval --split`)."
            ) from error
        raise FileNotFoundError(
            f"Could not open TFDS dataset {data.name!r} split {split!r} in data_dir "
            f"{data_dir!r} ({error}). Prepare it first with the same config and data_dir: "
            "`python run.py generate` engraves and prepares our corpus; for DeepScoresV2, put "
            "the download (e.g. ds2_dense.tar.gz) in config.data.manual_dir and run `python "
            "run.py generate --config=configs/deepscores_v2.py`."
        ) from error


class GlobalOrderSampler:
    """Endless, shuffled record order shared by all processes; each reads its slice of every
    global batch.

    The global order is one shuffle per epoch of every record (grain's `MapDataset.shuffle`);
    global batch k is positions [k B, (k + 1) B), of which process p reads the b = B / P
    positions from k B + p b. Grain's `DataLoader` asks process p for its i-th record as
    `sampler[i * P + p]`. With one process this is `grain.IndexSampler(shuffle=True)`
    exactly, record keys and generators alike.
    """

    def __init__(self, num_records: int, *, seed: int, process_batch: int):
        self._num_records = num_records
        self._seed = seed
        self._batch = process_batch
        self._shard_options = grain.ShardByJaxProcess(drop_remainder=True)
        self._keys = grain.MapDataset.range(num_records).shuffle(seed=seed)

    def __len__(self) -> int:
        return sys.maxsize

    def __repr__(self) -> str:
        return (
            f"GlobalOrderSampler(num_records={self._num_records}, seed={self._seed}, "
            f"process_batch={self._batch}, shard_options={self._shard_options!r})"
        )

    def __getitem__(self, index: int) -> grain.RecordMetadata:
        count = self._shard_options.shard_count
        i, process = divmod(index, count)
        b = self._batch
        position = (i // b) * b * count + process * b + i % b
        rng = np.random.Generator(np.random.Philox(key=self._seed + position))
        return grain.RecordMetadata(index=index, record_key=self._keys[position], rng=rng)


def make_train_loader(
    source: Sequence[Mapping[str, Any]],
    data: ml_collections.ConfigDict,
    *,
    seed: int,
    crossing_classes: Sequence[int] = (),
) -> grain.DataLoader:
    """An endless, shuffled, per-process loader of fixed-shape training batches.

    Args:
      source: random access records in the `deep_scores` TFDS format
        (e.g. `tfds.data_source("deep_scores/dense", split="train")`).
      data: the `config.data` section.
      seed: shuffling and cropping seed; the same seed gives the same batches.
      crossing_classes: classes kept in a crop whenever they overlap it (`crop_page`).

    Returns:
      A `grain.python.DataLoader`; `iter(loader)` yields this process's slice of each global
      batch (see the module docstring) and has `get_state()` / `set_state()`.
    """
    validate_data_config(data)
    if data.worker_count and not flags.FLAGS.is_parsed():
        # Grain's worker processes read absl flags; outside an absl app (tests, notebooks,
        # scripts) take their defaults instead of failing in the worker.
        flags.FLAGS.mark_as_parsed()
    if len(source) == 0:
        raise ValueError(f"data.name={data.name!r}, split {data.train_split!r}: no records.")
    batch = process_batch_size(data.batch_size)
    sampler = GlobalOrderSampler(len(source), seed=seed, process_batch=batch)
    return grain.DataLoader(
        data_source=_WithIndex(source),
        sampler=sampler,
        operations=[
            _TrainPage(data, margin_bank(source, data, seed=seed), crossing_classes),
            grain.Batch(batch, drop_remainder=True),
        ],
        worker_count=data.worker_count,
        # Each worker keeps this many batches ready, so the step never waits on decoding.
        worker_buffer_size=2,
        read_options=grain.ReadOptions(
            num_threads=READ_THREADS, prefetch_buffer_size=READ_AHEAD_PAGES
        ),
    )

"""TFDS builder `deep_scores`: DeepScoresV2 pages and our engraved corpus, one reader for both.

Configs:
  dense     DeepScoresV2 dense (1,714 pages) from `ds2_dense.tar.gz`, Zenodo record 4012193.
  complete  DeepScoresV2 complete (255,385 pages, over 80 GB) from `ds2_complete.tar.gz`.
  synthetic our engraved corpus (`dwd_jax.engrave`, `run.py generate`) in the same layout.

All three read a folder in DeepScoresV2 layout (`images/` and `deepscores_<split>.json`) from
the manual dir, with `dwd_jax.data.deepscores_json`. Splits are the annotation files the folder has
(`train` and `test` in the releases, `train`, `validation` and `test` in the engraved corpus,
`v2_sample` for the one-page sample), with one addition: the releases have no validation split,
so `dense` and `complete` carve one from the official train pages, by work (`validation_pages`).
Their `train` split is the official train minus the validation works; `test` is the official
test, untouched.

Everything runs without TensorFlow: images are handed to TFDS as PNG bytes, specs use numpy
dtypes, and the files are `array_record`, read with `tfds.data_source`.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import re
import shutil
import tarfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from dwd_jax import image as image_lib
from dwd_jax.classes import DEEPSCORES_CLASSES
from dwd_jax.data import deepscores_json

_URL = "https://zenodo.org/records/4012193"

# zlib level of the stored grey PNGs. Level 3 decodes about 1.7x faster than PIL's default 6
# (fewer, cheaper filter choices) for about 25 % more disk; decoding is what bounds reading
# throughput (BENCHMARKS.md, "Reading DeepScores through TFDS").
PNG_COMPRESS_LEVEL = 3

# config name -> (folder or archive stem in the manual dir, what to download)
_SOURCES = {
    "dense": ("ds2_dense", f"`ds2_dense.tar.gz` from {_URL}"),
    "complete": ("ds2_complete", f"`ds2_complete.tar.gz` (over 80 GB) from {_URL}"),
    "synthetic": ("synthetic", "nothing: engrave it with `python run.py generate`"),
}

# Share of the DeepScoresV2 train works held out as the `validation` split of `dense` and
# `complete` (the releases have none). Pages go with their work, so about this share of the
# train pages too: enough to tune thresholds on, little taken from training.
VALIDATION_FRACTION = 0.05


@dataclasses.dataclass
class DeepScoresConfig(tfds.core.BuilderConfig):
    """A `deep_scores` config.

    Attributes:
      validation_fraction: share of the works of the folder's `train` split moved to a
        `validation` split when the folder has no `deepscores_validation.json`; 0 = none.
    """

    validation_fraction: float = 0.0


class Builder(tfds.core.GeneratorBasedBuilder):
    """DeepScoresV2-format music pages with their `deepscores` symbol boxes."""

    VERSION = tfds.core.Version("1.2.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release.",
        "1.1.0": "synthetic: a validation split, and splits by work. Transparent pages are "
        "composited on white by dwd_jax.image.to_grey, as inference reads them.",
        "1.2.0": "dense, complete: a validation split of 5 % of the official train works "
        "(whole works, chosen by a CRC-32 of the work id); train is the rest of the official "
        "train, test the official test.",
    }
    BUILDER_CONFIGS = [
        DeepScoresConfig(
            name="dense",
            description="DeepScoresV2 dense (1,714 pages).",
            validation_fraction=VALIDATION_FRACTION,
        ),
        DeepScoresConfig(
            name="complete",
            description="DeepScoresV2 complete (255,385 pages).",
            validation_fraction=VALIDATION_FRACTION,
        ),
        DeepScoresConfig(
            name="synthetic",
            description="Pages engraved by dwd_jax.engrave from music21.",
        ),
    ]
    DEFAULT_CONFIG_NAME = "synthetic"

    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
    Put the pages in the manual dir (default `<data_dir>/downloads/manual/`; pass another with
    `tfds.data_source(..., download_and_prepare_kwargs={{"download_config":
    tfds.download.DownloadConfig(manual_dir=...)}})`), one of:
      dense:     ds2_dense.tar.gz from {_URL} (or its extracted `ds2_dense/` folder)
      complete:  ds2_complete.tar.gz from {_URL} (or its extracted `ds2_complete/` folder)
      synthetic: the `synthetic/` folder written by `python run.py generate`
    A folder in DeepScoresV2 layout (`images/`, `deepscores_<split>.json`) given directly as
    the manual dir is read as it is, whatever the config.
    """

    def __init__(self, *, file_format=None, **kwargs):
        # TFDS defaults to TFRecord, which needs TensorFlow to read; array_record does not.
        super().__init__(file_format=file_format or "array_record", **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    # Grey, 0 = ink, 255 = paper (docs/DESIGN.md "Images").
                    "image": tfds.features.Image(shape=(None, None, 1), encoding_format="png"),
                    "filename": tfds.features.Text(),
                    "id": np.int64,
                    "width": np.int32,
                    "height": np.int32,
                    "objects": tfds.features.Sequence(
                        {
                            "bbox": tfds.features.BBoxFeature(),
                            "label": tfds.features.ClassLabel(names=DEEPSCORES_CLASSES),
                            "obbox": tfds.features.Tensor(shape=(8,), dtype=np.float32),
                            "area": np.float32,
                            "onset": np.float32,
                            "staff_position": np.float32,
                            "duration": np.float32,
                        }
                    ),
                }
            ),
            homepage="https://tuggeluk.github.io/deepscores/",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        folder = _dsv2_folder(
            self.builder_config.name,
            Path(dl_manager.manual_dir),
            Path(dl_manager.download_dir) / "extracted",
        )
        files_by_split = deepscores_json.annotation_files(folder)
        names = {
            path: deepscores_json.page_filenames(path)
            for files in files_by_split.values()
            for path in files
        }
        check_unique_page_names(names)
        # split -> (its annotation files, which of their pages it takes).
        sources: dict[str, tuple[list[Path], Callable[[str], bool]]] = {
            split: (files, lambda name: True) for split, files in files_by_split.items()
        }
        fraction = self.builder_config.validation_fraction
        if fraction and "train" in files_by_split and "validation" not in files_by_split:
            train = files_by_split["train"]
            held_out = validation_pages((n for path in train for n in names[path]), fraction)
            sources["train"] = (train, lambda name: name not in held_out)
            sources["validation"] = (train, held_out.__contains__)
        splits = {}
        for split, (files, takes) in sources.items():
            if any(takes(name) for path in files for name in names[path]):
                splits[split] = self._generate_examples(files, takes, folder / "images")
            else:
                # TFDS cannot store an empty split; a small engraved corpus can have one.
                logging.warning("deep_scores: %s hold no pages; split %r is left out", files, split)
        return splits

    def _generate_examples(self, files: list[Path], takes: Callable[[str], bool], image_dir: Path):
        for path in files:
            for page in deepscores_json.load_pages(path):
                if takes(page.filename):
                    yield page.filename, page_example(page, image_dir / page.filename)


def work_of(filename: str) -> str:
    """The work a DeepScoresV2 page belongs to: its file name up to `-aug-` or `--page-`.

    The releases name pages `lg-<id>-aug-<style>--page-<n>.png`: one score (`lg-<id>`) engraved
    in several styles, each over several pages. A name without those parts is its own work.
    """
    return re.split(r"-aug-|--page-", Path(filename).stem, maxsplit=1)[0]


def validation_pages(names: Iterable[str], fraction: float) -> set[str]:
    """The pages of a train split that form its validation split: every page of about
    `fraction` of the works.

    A work is in when the CRC-32 of its id (`work_of`) is below `fraction` of 2**32: a stable
    choice (unlike Python's salted `hash`, the same on every machine and rebuild) that keeps a
    work's pages together and each work where it was when pages are added.

    Args:
      names: page file names.
      fraction: share of works to hold out, in [0, 1].

    Returns:
      The names of `names` whose work is held out.
    """
    return {name for name in names if zlib.crc32(work_of(name).encode()) < fraction * 2**32}


def check_unique_page_names(names_by_file: dict[Path, list[str]]) -> None:
    """Refuses two pages of one name, in one annotation file or in two (of any splits).

    Examples are keyed by page file name, and all pages share one `images/` folder: two pages
    of one name are one image under two annotations. Left to TFDS, a repeated key in a split
    fails only when the split is written, as a misleading "No module named 'tensorflow'".

    Args:
      names_by_file: `{annotation file: its pages' file names}`.

    Raises:
      ValueError: a name repeats; the message names the page and the files it is in.
    """
    seen: dict[str, Path] = {}
    for path, names in names_by_file.items():
        for name in names:
            if name in seen:
                where = f"twice in {path}" if seen[name] == path else f"in {seen[name]} and {path}"
                raise ValueError(
                    f"deep_scores: two pages are named {name!r}, {where}; page names must be "
                    "unique (they key the examples, and one images/ file cannot be two pages). "
                    "For an engraved corpus, delete its folder and regenerate it (`python run.py "
                    "generate`); otherwise rename one of the pages (its `images` entry and image "
                    "file)."
                )
            seen[name] = path


def page_example(page: deepscores_json.Page, image_path: Path) -> dict:
    """The TFDS example of one page: its grey PNG and its objects.

    Args:
      page: the page's annotations.
      image_path: its image file (any PIL-readable mode; alpha is composited on white).

    Returns:
      A dict matching the builder's features; boxes normalised to [0, 1].

    Raises:
      FileNotFoundError: the image file is missing.
      ValueError: the image is corrupt or its size differs from the annotation's.
    """
    scale = np.array([page.height, page.width] * 2, np.float64)
    return {
        "image": grey_png(image_path, (page.width, page.height), page.id),
        "filename": page.filename,
        "id": page.id,
        "width": page.width,
        "height": page.height,
        "objects": {
            "bbox": (page.boxes / scale).astype(np.float32),
            "label": page.labels.astype(np.int64),
            "obbox": page.oboxes,
            "area": page.areas,
            "onset": page.onsets,
            "staff_position": page.staff_positions,
            "duration": page.durations,
        },
    }


def grey_png(image_path: Path, size: tuple[int, int], page_id: int) -> bytes:
    """A page image as grey PNG bytes (`dwd_jax.image.to_grey`: transparent parts composited on
    white paper, 16-bit scaled to 8 bits).

    Args:
      image_path: the image file.
      size: the (width, height) the annotation file gives for it.
      page_id: the page's id, for error messages.

    Returns:
      PNG bytes of a mode `L` image of `size` (16-bit grey is scaled to 8 bits).

    Raises:
      FileNotFoundError: the image file is missing.
      ValueError: the image is corrupt or not of `size`.
    """
    if not image_path.is_file():
        raise FileNotFoundError(
            f"page {page_id}: image {image_path} is missing; the annotations name it, so the "
            "download or engraved folder is incomplete: extract or generate it again"
        )
    try:
        with Image.open(image_path) as image:
            image.load()
            if image.mode == "L" and image.format == "PNG":
                # Already what we store (e.g. engraved pages): no re-encoding.
                return _check_size(image.size, size, image_path, page_id, image_path.read_bytes())
            grey = image_lib.to_grey(image, name=str(image_path))
    except (OSError, SyntaxError, ValueError) as e:  # PIL's errors for corrupt files.
        raise ValueError(
            f"page {page_id}: image {image_path} cannot be decoded ({e}); the file is corrupt "
            "or truncated: extract or generate it again"
        ) from e
    out = io.BytesIO()
    Image.fromarray(grey).save(out, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return _check_size(grey.shape[::-1], size, image_path, page_id, out.getvalue())


def _check_size(got: tuple[int, int], size: tuple[int, int], image_path: Path, page_id: int,
                png: bytes) -> bytes:
    if tuple(got) != tuple(size):
        raise ValueError(
            f"page {page_id}: image {image_path} is {got[0]}x{got[1]} but its "
            f"annotations say {size[0]}x{size[1]}; boxes would not match the pixels"
        )
    return png


def _dsv2_folder(config: str, manual_dir: Path, extract_dir: Path) -> Path:
    """The folder in DSv2 layout for `config`: the manual dir itself, its `<stem>/` subfolder or
    `<stem>.tar.gz` extracted into `extract_dir` (the releases unpack to a `<stem>/` folder)."""
    stem, download = _SOURCES[config]
    archive = manual_dir / f"{stem}.tar.gz"
    candidates = [manual_dir, manual_dir / stem]
    if archive.is_file():
        extracted = _extract(archive, extract_dir / stem)
        candidates += [extracted, extracted / stem]
    for folder in candidates:
        if deepscores_json.annotation_files(folder):
            return folder
    raise FileNotFoundError(
        f"deep_scores/{config}: no DeepScoresV2 annotation file (deepscores_<split>.json) in "
        f"{manual_dir}, {manual_dir / stem}/ or {archive}. Download {download}, and put the "
        f"archive (or its extracted `{stem}/` folder) in {manual_dir}, the manual dir."
    )


def _extract(archive: Path, dest: Path) -> Path:
    """Extracts `archive` into `dest` once (a rerun reuses it).

    With `tarfile`, not `dl_manager.extract`: TFDS's extractor needs TensorFlow.
    """
    if dest.is_dir():
        return dest
    partial = dest.with_name(dest.name + ".incomplete")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(partial, filter="data")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ValueError(
            f"{archive} cannot be extracted ({e}); the download is incomplete or corrupt: "
            f"download it again from {_URL}"
        ) from e
    partial.rename(dest)
    return dest

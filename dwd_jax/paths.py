"""Where a run's files live: a local folder or a bucket (`gs://...`, `s3://...`).

Every path of a workdir is an `etils.epath.Path`, which reads and writes bucket URIs through
fsspec. `pathlib` (and `epath.Path.absolute`) would turn `gs://bucket/run` into a local
folder `gs:/bucket/run` on each host of a pod.
"""

from __future__ import annotations

import os

from etils import epath
from PIL import Image


def is_remote(path: epath.PathLike) -> bool:
    """Whether `path` is a URI (`gs://...`, `s3://...`) rather than a local path."""
    return "://" in os.fspath(path)


def resolve(path: epath.PathLike) -> epath.Path:
    """`path` as an `epath.Path`: a URI as it is, a local path made absolute (orbax refuses
    relative local paths)."""
    path = epath.Path(path)
    return path if is_remote(path) else path.absolute()


def write_png(image: Image.Image, path: epath.PathLike) -> epath.Path:
    """Writes `image` as a PNG to `path`, creating its folder; returns the path.

    Through a file object: PIL's `save(path)` opens local files only.
    """
    path = epath.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        image.save(f, format="PNG")
    return path

"""Shared test fixtures.

`compilation_cache`: one XLA compilation cache for the whole suite and the processes it
starts, so that a program compiled once (the tiny config's train step, the shipped model's
forward at a page's shape) is read back wherever it recurs.
Modules holding a test marked `slow` are collected first: under `--dist loadfile` (pyproject's
pytest options) each worker takes whole modules in collection order, so the longest start first
and the workers finish together.
`sample_dir`: the real DeepScoresV2 sample page kept in the repository
(`tests/data/deepscores_v2_sample/`, provenance and licence in its README.md), the one place
that names the folder. The page is always there, so no test skips for want of it.
"""

import os
from pathlib import Path

import pytest

SAMPLE_DIR = Path(__file__).resolve().parent / "data" / "deepscores_v2_sample"
SAMPLE_JSON_NAME = "deepscores_v2_sample.json"
SAMPLE_PAGE_NAME = "lg-5230237-aug-emmentaler--page-2.png"


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The real DeepScoresV2 sample folder: the JSON, `images/` and `segmentation/`."""
    assert (SAMPLE_DIR / SAMPLE_JSON_NAME).is_file(), f"the sample page is missing: {SAMPLE_DIR}"
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def sample_json(sample_dir) -> Path:
    """The sample's annotation file, `deepscores_v2_sample.json`."""
    return sample_dir / SAMPLE_JSON_NAME


@pytest.fixture(scope="session")
def sample_page_path(sample_dir) -> Path:
    """The sample's page image (2707 x 3828, RGBA)."""
    return sample_dir / "images" / SAMPLE_PAGE_NAME


@pytest.fixture(autouse=True, scope="session")
def compilation_cache(tmp_path_factory):
    """Every test and subprocess shares XLA compilations (same HLO, new Python objects)."""
    import jax

    cache = str(tmp_path_factory.mktemp("xla_cache"))
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    saved = [getattr(jax.config, name) for name in names]
    environ = {k: os.environ.get(k) for k in ("JAX_COMPILATION_CACHE_DIR",
                                              "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")}
    jax.config.update(names[0], cache)
    jax.config.update(names[1], 0.0)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = cache  # Inherited by the tests' subprocesses.
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    yield
    for name, value in zip(names, saved, strict=True):
        jax.config.update(name, value)
    for key, value in environ.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def pytest_collection_modifyitems(items):
    """Modules holding a slow test first, each module's tests in their order."""
    module = lambda item: item.nodeid.split("::")[0]
    slow = {module(item) for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: module(item) not in slow)

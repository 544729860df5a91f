"""Shared test fixtures.

`faster_compiles`: one XLA compilation cache for the whole suite and the processes it
starts, so that a program compiled once (the tiny config's train step, the shipped model's
forward at a page's shape) is read back wherever it recurs; and the "rbg" random-number
implementation, whose parameter init compiles in about half threefry's time (6 s against 13 s
for the tiny model's 193 parameters). What the tests check does not depend on which bits,
but for one whose outcome is how far training fits from its initial parameters: `threefry`
gives it JAX's default.
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
def faster_compiles(tmp_path_factory):
    """Every test and subprocess shares XLA compilations (same HLO, new Python objects) and
    draws its random numbers with "rbg"."""
    import jax

    settings = {
        "jax_compilation_cache_dir": str(tmp_path_factory.mktemp("xla_cache")),
        "jax_persistent_cache_min_compile_time_secs": 0.0,
        "jax_default_prng_impl": "rbg",
    }
    names = tuple(settings)
    saved = [getattr(jax.config, name) for name in names]
    environ = {name.upper(): os.environ.get(name.upper()) for name in names}
    for name, value in settings.items():
        jax.config.update(name, value)
        os.environ[name.upper()] = str(value)  # Inherited by the tests' subprocesses.
    yield
    for name, value in zip(names, saved, strict=True):
        jax.config.update(name, value)
    for key, value in environ.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def threefry():
    """JAX's default random numbers (threefry) for one test whose outcome depends on the
    initial parameters themselves (how far 160 steps fit two pages), as users get them."""
    import jax

    saved = jax.config.jax_default_prng_impl
    jax.config.update("jax_default_prng_impl", "threefry2x32")
    yield
    jax.config.update("jax_default_prng_impl", saved)


def pytest_collection_modifyitems(items):
    """Modules holding a slow test first, each module's tests in their order."""
    module = lambda item: item.nodeid.split("::")[0]
    slow = {module(item) for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: module(item) not in slow)

"""Shared test fixtures.

`sample_dir`: the real DeepScoresV2 sample page kept in the repository
(`tests/data/deepscores_v2_sample/`, provenance and licence in its README.md), the one place
that names the folder. The page is always there, so no test skips for want of it.
"""

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

"""DeepScoresV2 without the engraver: `run.py` generate (TFDS preparation only), train, eval,
eval-folder and detect with music21, verovio and cairo unimportable, as after a plain
`pip install -e .` (they are the optional `engrave` extra).

Each command runs in its own process, as a user runs it, on the builder's dummy DeepScoresV2
folder (seven pages of a few dozen pixels) with the tiny config: one compile per command.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from configs import tiny

pytestmark = pytest.mark.slow  # Each test runs a process or more.

ROOT = Path(__file__).resolve().parents[1]
DUMMY_DATA = ROOT / "tfds_builders" / "deep_scores" / "dummy_data"

# The `engrave` extra's modules (cairo: pycairo, in case anything reached for it instead).
ENGRAVING = ("music21", "verovio", "cairocffi", "cairo")
# `run.py` with those modules unimportable: a None entry in sys.modules fails every import of
# the module and of its submodules.
_RUN_WITHOUT_ENGRAVING = (
    "import runpy, sys\n"
    f"sys.modules.update(dict.fromkeys({ENGRAVING!r}))\n"
    "sys.argv[0] = 'run.py'\n"
    "runpy.run_path('run.py', run_name='__main__')\n"
)


def _run(tmp: Path, *args: str, data: str = "deep_scores/dense") -> subprocess.CompletedProcess:
    flags = [
        "--config=configs/tiny.py",
        f"--config.data.name={data}",
        f"--config.data.data_dir={tmp / 'tfds'}",
        f"--config.data.manual_dir={tmp / 'manual'}",
        f"--workdir={tmp / 'work'}",
        # The dummy pages hold no staff to measure a scale from: read them as trained.
        "--config.detect.scale=1.0",
    ]
    env = {
        **os.environ,
        # eval, eval-folder and detect compile the same forward pass on the same page size;
        # a cache shared between their processes compiles it once.
        "JAX_COMPILATION_CACHE_DIR": str(tmp / "jax_cache"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }
    return subprocess.run(
        [sys.executable, "-c", _RUN_WITHOUT_ENGRAVING, *args, *flags],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, done.stderr[-4000:]
    return done


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tmp dir holding a DeepScoresV2 download (`manual/ds2_dense/`, as the release unpacks),
    its prepared TFDS files and a workdir trained on them, all without the engraver."""
    tmp = tmp_path_factory.mktemp("without_engraving")
    shutil.copytree(DUMMY_DATA, tmp / "manual" / "ds2_dense")
    _ok(_run(tmp, "generate"))
    _ok(_run(tmp, "train"))
    return tmp


def test_generate_prepares_and_train_trains_deepscores_v2(trained):
    assert (trained / "tfds" / "deep_scores" / "dense").is_dir()
    assert not (trained / "manual" / "synthetic").exists()  # Nothing was engraved.
    work = trained / "work"
    lines = (work / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == tiny.get_config().train.steps
    assert any(p.name.isdigit() for p in (work / "checkpoints").iterdir())


def test_eval_scores_the_validation_split_carved_from_train(trained):
    # The release has train and test files only; the builder holds out whole train works
    # (here the dummy's two pages of lg-87444682) as the validation split eval reads by default.
    _ok(_run(trained, "eval"))
    results = json.loads((trained / "work" / "eval_validation" / "eval.json").read_text())
    assert results["num_pages"] == 2


def test_eval_scores_the_test_split(trained):
    # The test split is read only when named.
    _ok(_run(trained, "eval", "--split=test"))
    results = json.loads((trained / "work" / "eval_test" / "eval.json").read_text())
    assert results["num_pages"] == 1 and "network_alone" in results


def test_eval_folder_scores_the_download_folder(trained):
    _ok(_run(trained, "eval-folder", str(trained / "manual" / "ds2_dense"), "--split=test"))
    out = trained / "work" / "eval_ds2_dense_test"
    assert json.loads((out / "eval.json").read_text())["num_pages"] == 1


def test_detect_writes_proposals(trained):
    page = trained / "manual" / "ds2_dense" / "images" / "page-7.png"
    _ok(_run(trained, "detect", str(page)))
    summary = json.loads((trained / "work" / "detect" / "detect_summary.json").read_text())
    assert summary["num_pages"] == 1 and summary["num_failed"] == 0
    assert Path(summary["proposals"]).is_file()


def test_engraving_without_the_engraver_names_the_extra(tmp_path):
    done = _run(tmp_path, "generate", data="deep_scores/synthetic")
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: Engraving the embedded corpus"), done.stderr[-4000:]
    # What is missing, how to install it, and the DeepScoresV2 way that needs none of it.
    hints = ("music21", "verovio", "cairocffi", "dwd-jax[engrave]", "data.name=deep_scores/dense")
    assert all(hint in last for hint in hints), last
    assert not (tmp_path / "manual" / "synthetic").exists()  # Failed before writing anything.

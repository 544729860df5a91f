"""The whole `run.py` path on the tiny config: engrave, prepare, train, evaluate, detect.

One module-scoped run (a few engraved pages, a few steps) feeds every test, so the suite pays
for one engraving, one TFDS build and one training run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from configs import tiny
from dwd_jax import workflow

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "deepscores_v2_sample"

# Small engraved pages at a quarter scale keep the eval pages, and their compiles, small.
OVERRIDES = {
    "engrave.num_pages": 4,
    "engrave.width_range": (1200, 1300),
    "data.scale": 0.25,
    "eval.num_worst_pages": 1,
}


def _config(tmp: Path):
    c = tiny.get_config()
    c.data.data_dir = str(tmp / "tfds")
    c.data.manual_dir = str(tmp / "manual")
    for key, value in OVERRIDES.items():
        section, field = key.split(".")
        c[section][field] = value
    return c


def _flags(tmp: Path) -> list[str]:
    flags = [
        "--config=configs/tiny.py",
        f"--config.data.data_dir={tmp / 'tfds'}",
        f"--config.data.manual_dir={tmp / 'manual'}",
        f"--workdir={tmp / 'work'}",
    ]
    for key, value in OVERRIDES.items():
        flags.append(f"--config.{key}={value}")
    return flags


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    tmp = tmp_path_factory.mktemp("run")
    done = subprocess.run(
        [sys.executable, "run.py", *_flags(tmp)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return tmp, done


def test_run_py_writes_every_artifact_readable(run):
    tmp, done = run
    work = tmp / "work"
    summary = json.loads((work / "summary.json").read_text())
    assert set(summary) >= {"checkpoints", "metrics", "learning_curves", "eval_report", "overlays"}
    records = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, tiny.get_config().train.steps + 1))
    assert all(np.isfinite(r["loss"]) for r in records)
    assert "COCO mAP@.5" in Path(summary["eval_report"]).read_text()
    results = json.loads((work / "eval_test" / "eval.json").read_text())
    assert results["num_pages"] >= 1 and 0.0 <= results["map50_all_classes"] <= 1.0
    for png in [summary["learning_curves"], *summary["overlays"], work / "eval_test" / "pr50.png"]:
        with Image.open(png) as im:
            im.verify()
    assert len(summary["overlays"]) == 1
    assert sorted(p.name for p in (work / "checkpoints").iterdir() if p.name.isdigit())
    # The headline printed at the end names the report.
    assert str(work / "eval_test" / "eval.md") in done.stdout


def test_rerun_resumes_without_redoing_work(run):
    tmp, _ = run
    again = subprocess.run(
        [sys.executable, "run.py", "train", *_flags(tmp)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr[-4000:]
    lines = (tmp / "work" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == tiny.get_config().train.steps  # No step was trained twice.


def test_more_engraved_pages_rebuild_the_prepared_dataset(run):
    import tensorflow_datasets as tfds

    tmp, _ = run
    config = _config(tmp)

    def pages():
        builder = tfds.builder(config.data.name, data_dir=config.data.data_dir)
        return sum(split.num_examples for split in builder.info.splits.values())

    before = pages()
    config.engrave.num_pages = OVERRIDES["engrave.num_pages"] + 1
    workflow.prepare_data(config)
    assert pages() == before + 1
    workflow.prepare_data(config)  # Nothing new: the prepared dataset is kept.
    assert pages() == before + 1


def test_detect_writes_proposals_and_survives_a_bad_file(run, tmp_path):
    tmp, _ = run
    config = _config(tmp)
    page = tmp_path / "page.png"
    # The first engraved page stands in for a new page at its own resolution.
    first = sorted((tmp / "manual" / "synthetic" / "images").glob("*.png"))[0]
    page.write_bytes(first.read_bytes())
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    summary = workflow.detect_files(config, tmp / "work", [page, bad])
    assert summary["num_failed"] == 1
    good, failed = summary["pages"]
    assert good["ok"] and "notes.txt" in failed["path"] and failed["error"]
    proposals = json.loads(Path(summary["proposals"]).read_text())
    assert proposals["annotation_set"] == "deepscores"
    for p in proposals["proposals"]:
        assert set(p) == {"img_id", "cat_id", "bbox", "score"} and 1 <= p["cat_id"] <= 136
    with Image.open(good["overlay"]) as im:
        im.verify()


@pytest.mark.skipif(not SAMPLE.exists(), reason="the shared DeepScoresV2 sample is not here")
def test_eval_folder_reads_the_real_sample_page(run):
    tmp, _ = run
    results = workflow.evaluate_folder(_config(tmp), tmp / "work", SAMPLE)
    assert results["num_pages"] == 1
    out = tmp / "work" / f"eval_{SAMPLE.name}"
    assert (out / "eval.md").exists()
    assert (out / "lg-5230237-aug-emmentaler--page-2.png").exists()

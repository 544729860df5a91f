"""The whole `run.py` path on the tiny config: engrave, prepare, train, evaluate, detect.

One module-scoped run (a few engraved pages, a few steps) feeds every test, so the suite pays
for one engraving, one TFDS build and one training run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import ml_collections
import numpy as np
import pytest
from PIL import Image

from configs import tiny
from dwd_jax import workflow

pytestmark = pytest.mark.slow  # Each test runs a process or more.

ROOT = Path(__file__).resolve().parents[1]

# Small engraved pages at a quarter scale keep the eval pages, and their compiles, small.
OVERRIDES = {
    "engrave.num_pages": 4,
    "engrave.width_range": (1200, 1300),
    "data.scale": 0.25,
    "detect.scale": 0.25,  # Evaluation reads pages at the training scale, not staff-space.
    "eval.num_worst_pages": 1,
    "train.eval_every": 4,  # Validation mAP in the log at step 4 and at the last step.
    "eval.during_training_pages": 1,
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
    assert set(summary) >= {"checkpoints", "metrics", "learning_curves", "validation", "test"}
    records = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    steps = tiny.get_config().train.steps
    assert [r["step"] for r in records] == list(range(1, steps + 1))
    assert all(np.isfinite(r["loss"]) for r in records)
    # Validation figures, all classes, shipped and network alone, at intervals and at the end.
    scored = [r["step"] for r in records if "val_map50" in r]
    assert scored == [4, steps]
    assert all(0 <= r["val_network_map"] <= 1 for r in records if "val_map50" in r)
    for split in ("validation", "test"):
        headline = summary[split]
        assert headline["num_pages"] >= 1
        assert 0.0 <= headline["map50"] <= 1.0 and 0.0 <= headline["network_alone_map50"] <= 1.0
        report = Path(headline["eval_report"])
        assert report == work / f"eval_{split}" / "eval.md"
        assert "| metric | shipped pipeline | network alone |" in report.read_text()
        results = json.loads((work / f"eval_{split}" / "eval.json").read_text())
        assert results["map50"] == headline["map50"]
        assert len(headline["overlays"]) == 1
        for png in [*headline["overlays"], work / f"eval_{split}" / "pr50.png"]:
            with Image.open(png) as im:
                im.verify()
    with Image.open(summary["learning_curves"]) as im:
        im.verify()
    assert sorted(p.name for p in (work / "checkpoints").iterdir() if p.name.isdigit())
    # The headline printed at the end names the reports.
    assert str(work / "eval_test" / "eval.md") in done.stdout
    assert '"network_alone_map50"' in done.stdout


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


def test_eval_folder_reads_the_real_sample_page(run, sample_dir):
    tmp, _ = run
    results = workflow.evaluate_folder(_config(tmp), tmp / "work", sample_dir, split="v2_sample")
    assert results["num_pages"] == 1 and "network_alone" in results
    out = tmp / "work" / f"eval_{sample_dir.name}_v2_sample"
    assert (out / "eval.md").exists() and (out / "network_alone" / "eval.md").exists()
    assert (out / "worst_lg-5230237-aug-emmentaler--page-2.png").exists()
    with pytest.raises(FileNotFoundError, match="v2_sample"):  # Names the files it has.
        workflow.evaluate_folder(_config(tmp), tmp / "work", sample_dir, split="test")


def test_eval_and_eval_folder_give_the_same_figures_on_the_same_pages(run):
    # The engraved corpus is itself a DeepScoresV2-layout folder: its validation pages read
    # through TFDS (`eval`) and from the folder (`eval_folder`) go through one protocol.
    tmp, _ = run
    config = _config(tmp)
    split = workflow.evaluate_split(config, tmp / "work", split="validation")
    folder = workflow.evaluate_folder(
        config, tmp / "work", tmp / "manual" / "synthetic", split="validation"
    )
    for results in (split, folder):
        assert results["num_pages"] >= 1
    for key in ("map", "map50", "voc_map50", "per_class", "pages"):
        assert folder[key] == split[key], key
        assert folder["network_alone"][key] == split["network_alone"][key], key


def test_robustness_scores_clean_and_each_condition_from_one_protocol(run):
    tmp, _ = run
    config = _config(tmp)
    with config.unlocked():
        config.robustness.conditions = ml_collections.ConfigDict(
            {
                "unchanged": {"noise": {"sigma": (0.0, 0.0)}},  # Adds zeros: the clean page.
                "rotated": {"rotation": {"degrees": (4.0, 4.0)}},
            }
        )
    figures = workflow.evaluate_robustness(config, tmp / "work", split="validation")
    assert list(figures) == ["clean", "rotated", "unchanged"]
    clean = workflow.evaluate_split(config, tmp / "work", split="validation")
    assert figures["clean"]["map50"] == figures["unchanged"]["map50"] == clean["map50"]
    assert figures["unchanged"]["network_alone_map"] == clean["network_alone"]["map"]
    assert figures["rotated"]["map"] != clean["map"]
    out = tmp / "work" / "robustness_validation"
    saved = json.loads((out / "robustness.json").read_text())
    assert saved["conditions"] == json.loads(json.dumps(figures))
    assert "| rotated |" in (out / "robustness.md").read_text()

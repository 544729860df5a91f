"""A workdir in a bucket: train, checkpoint, resume, evaluate and detect with `s3://...`.

A moto S3 server on 127.0.0.1 stands in for the bucket a pod's hosts share. epath reaches it
through s3fs, tensorstore (orbax's arrays) and tensorboardX through their own S3 clients. The
run must leave everything in the bucket and nothing in a local folder named after it.
"""

from __future__ import annotations

import io
import json
import os

import pytest
from PIL import Image
from test_input_pipeline import synthetic_records

from configs import tiny
from dwd_jax import workflow
from dwd_jax.data import input_pipeline
from dwd_jax.training import train

moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")
s3fs = pytest.importorskip("s3fs")  # epath's s3:// backend.

BUCKET = "dwd-remote-run"
WORK = f"s3://{BUCKET}/run"


@pytest.fixture(scope="module")
def s3():
    """A boto3 client of a fresh moto S3 server holding `BUCKET`, with the S3 clients of the
    process (boto3, s3fs, tensorboardX) pointed at it; tensorstore's in `orbax_s3_arrays`."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as env:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,  # boto3 and s3fs.
            "S3_ENDPOINT": endpoint,  # tensorboardX.
        }.items():
            env.setenv(name, value)
        s3fs.S3FileSystem.clear_instance_cache()  # An s3fs made before would miss the endpoint.
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        try:
            yield client
        finally:
            s3fs.S3FileSystem.clear_instance_cache()
            server.stop()


@pytest.fixture(autouse=True)
def orbax_s3_arrays(s3, monkeypatch):
    """orbax (0.12) builds tensorstore specs for gs:// only and takes `s3://b/x` for a relative
    local path; this routes s3:// to tensorstore's s3 driver the way orbax routes gs:// to its
    gcs driver. A test of this repository's paths, not of orbax's S3 support."""
    from orbax.checkpoint._src.path import gcs_utils
    from orbax.checkpoint._src.serialization import tensorstore_utils

    use_gcs, gcs_spec = tensorstore_utils._use_gcs_driver, gcs_utils.get_kvstore_for_gcs

    def kvstore(path: str) -> dict:
        if not path.startswith("s3:/"):  # orbax normalises `s3://b/x` to `s3:/b/x`.
            return gcs_spec(path)
        bucket, _, key = path.removeprefix("s3:/").lstrip("/").partition("/")
        # tensorstore's s3 driver does not read AWS_ENDPOINT_URL; without this it waits on AWS.
        endpoint = os.environ["AWS_ENDPOINT_URL"]
        return {"driver": "s3", "bucket": bucket, "path": key, "endpoint": endpoint}

    monkeypatch.setattr(
        tensorstore_utils, "_use_gcs_driver", lambda d: d.startswith("s3:/") or use_gcs(d)
    )
    monkeypatch.setattr(gcs_utils, "get_kvstore_for_gcs", kvstore)


def _keys(s3, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", ()))


def _read(s3, key: str) -> bytes:
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def _config(**train_overrides):
    config = tiny.get_config()
    for key, value in train_overrides.items():
        config.train[key] = value
    config.detect.scale = 1.0  # Synthetic pages have no staff to measure.
    config.eval.max_pages = 2
    return config


@pytest.mark.slow
def test_train_resume_evaluate_and_detect_with_the_workdir_in_a_bucket(
    s3, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # A URI taken for a relative path would land here.
    source = synthetic_records(4)
    monkeypatch.setattr(input_pipeline, "open_source", lambda data, split: source)

    train.train_and_evaluate(
        _config(steps=2, checkpoint_every=2, picture_every=2), WORK, source=source
    )
    resumed = train.train_and_evaluate(_config(steps=4, checkpoint_every=2), WORK, source=source)
    assert int(resumed.step) == 4

    keys = _keys(s3, "run/")
    for step in (2, 4):  # Complete checkpoints: arrays, input position, commit marker.
        for name in ("commit_success.txt", "state/manifest.ocdbt", "data/process_0-of-1.json"):
            assert f"run/checkpoints/{step}/{name}" in keys, (step, name, keys)
    # One record per step: the second run resumed at step 2 and continued the first's log.
    records = [json.loads(line) for line in _read(s3, "run/metrics.jsonl").splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert any(k.startswith("run/tensorboard/events") for k in keys)
    for key in ("run/pictures/step_0000002.png", "run/learning_curves.png"):
        Image.open(io.BytesIO(_read(s3, key))).verify()

    results = workflow.evaluate_split(_config(), WORK, split="validation")
    assert results["model"] == f"{WORK} step 4"  # Restored from the bucket, not the shipped model.
    eval_keys = _keys(s3, "run/eval_validation/")
    for name in ("eval.json", "eval.md", "pr50.png", "network_alone/eval.json"):
        assert f"run/eval_validation/{name}" in eval_keys, (name, eval_keys)
    assert any("/worst_" in k for k in eval_keys)
    assert json.loads(_read(s3, "run/eval_validation/eval.json"))["num_pages"] == 2

    page = tmp_path / "page.png"
    Image.fromarray(source[0]["image"][..., 0]).save(page)
    summary = workflow.detect_files(_config(), WORK, [page])
    assert summary["num_failed"] == 0 and summary["proposals"] == f"{WORK}/detect/proposals.json"
    detect_keys = _keys(s3, "run/detect/")
    for name in ("proposals.json", "coco_results.json", "detect_summary.json", "page_overlay.png"):
        assert f"run/detect/{name}" in detect_keys, (name, detect_keys)

    # Nothing went to a local folder named after the scheme or the bucket.
    local = [str(p) for p in tmp_path.rglob("*") if p.name != "page.png"]
    assert not local, local

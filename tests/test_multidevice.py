"""Data parallelism: training and evaluation give the same results on 1 device, 8 devices
and 2 processes.

Each case runs in a fresh interpreter, since the device count is fixed when JAX starts:
`python tests/test_multidevice.py <mode> <out> [process_id port]` runs one case and saves
what the test compares.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # Each test runs a process or more.

ROOT = Path(__file__).resolve().parent.parent
GLOBAL_BATCH = 8


def _fixed_batch(config) -> dict:
    """A fixed global batch of GLOBAL_BATCH crops from synthetic pages (no loader, no shuffle)."""
    from test_input_pipeline import synthetic_records

    from dwd_jax.data import input_pipeline

    crops = []
    for index, record in enumerate(synthetic_records(GLOBAL_BATCH, seed=5)):
        page = input_pipeline.parse_page(record)
        crops.append(
            input_pipeline.crop_page(
                page,
                np.random.default_rng(index),
                crop_size=config.data.crop_size,
                top_left_prob=0.5,
                max_objects=config.data.max_objects,
            )
        )
    return {key: np.stack([crop[key] for crop in crops]) for key in crops[0]}


def run_one_step(mode: str, out: str) -> None:
    """Worker: one train step in `mode` ("one_device", "eight_devices")."""
    import functools

    import jax

    from configs import tiny
    from dwd_jax.modeling import model
    from dwd_jax.training import train

    config = tiny.get_config()
    config.data.batch_size = GLOBAL_BATCH
    # Not the tiny config's Adam: its first step is about lr * sign(g), which turns float noise
    # in parameters whose true gradient is 0 (conv biases before GroupNorm) into +-lr.
    config.train.optimizer = "rmsprop"
    devices = jax.devices()[:1] if mode == "one_device" else jax.devices()
    mesh = train.make_mesh(devices)
    net = model.build_model(config)
    optimizer = train.make_optimizer(config.train)
    state = train.init_state(config, net, optimizer, mesh)
    step_fn = train.compile_step(
        functools.partial(train.dwd_loss, net=net, config=config), optimizer, mesh
    )
    batch = _fixed_batch(config)
    state, metrics = step_fn(state, train.global_batch(batch, mesh))
    leaves = jax.tree.leaves(jax.device_get(state.params))
    np.savez(out, *leaves, loss=float(metrics["loss"]), devices=len(devices))


# The real sample page cut into 8 strips of one shape: 8 pages that fill one batch of 8.
STRIPS = 8


def _strip_pages() -> list:
    """Loaders of the sample page's strips, each with the ground truth centred in it."""
    from dwd_jax.data import deepscores_json
    from dwd_jax.detection import detect
    from dwd_jax.eval import evaluation

    sample = ROOT / "tests" / "data" / "deepscores_v2_sample"
    (gt,) = deepscores_json.load_pages(sample / "deepscores_v2_sample.json")
    page = detect.load_page(sample / "images" / gt.filename)
    height = page.shape[0] // STRIPS
    centre = (gt.boxes[:, 0] + gt.boxes[:, 2]) / 2
    pages = []
    for i in range(STRIPS):
        inside = (centre >= i * height) & (centre < (i + 1) * height)
        boxes = gt.boxes[inside] - np.float32([i * height, 0, i * height, 0])
        strip = evaluation.GroundTruth(
            f"strip{i}", page[i * height : (i + 1) * height], boxes, gt.labels[inside] + 1
        )
        pages.append(lambda strip=strip: strip)
    return pages


def _eval_config():
    from configs import default

    config = default.get_config()
    config.detect.scale = 0.5  # Strips cut staves apart: a fixed scale, not a measured one.
    return config


def _figures(results: dict) -> dict:
    from dwd_jax.eval import evaluation

    figures = evaluation.headline(results)
    figures["ap50"] = results["per_class"]
    figures["network_ap50"] = results["network_alone"]["per_class"]
    return json.loads(json.dumps(figures))


def evaluate_on_devices(out: str) -> None:
    """Worker: the shipped model evaluated on 1 device and on all 8, and how 8 bands spread."""
    import jax

    from dwd_jax import pretrained
    from dwd_jax.detection import detect, inference
    from dwd_jax.eval import evaluation

    config, params = _eval_config(), pretrained.load_params()
    pages = _strip_pages()
    one = inference.Detector(config, params, devices=jax.devices()[:1])
    eight = inference.Detector(config, params)
    figures = {
        "one": _figures(evaluation.evaluate_pages(pages, one, config=config)),
        "eight": _figures(evaluation.evaluate_pages(pages, eight, config=config)),
        "batch_size": eight.batch_size,
    }
    bands = np.concatenate(
        [detect.prepare_page(load().image, config=config)[0] for load in pages]
    )
    dets = eight.forward(bands)
    shards = sorted(dets.classes.addressable_shards, key=lambda s: s.index[0].start)
    figures["shard_devices"] = [s.device.id for s in shards]
    figures["shard_rows"] = [[s.index[0].start, s.index[0].stop] for s in shards]
    # Each device's page gives that page's detections computed alone on one device (the
    # same classes; boxes to float rounding, as the two programs compile differently).
    figures["shard_equals_alone"] = []
    for i, shard in enumerate(shards):
        alone = jax.device_get(one.forward(bands[i : i + 1]))
        boxes = next(
            np.asarray(b.data)[0] for b in dets.boxes.addressable_shards
            if b.index[0].start == i
        )
        valid = alone.valid[0]
        figures["shard_equals_alone"].append(
            bool(valid.any())
            and bool(np.array_equal(np.asarray(shard.data)[0][valid], alone.classes[0][valid]))
            and bool(np.allclose(boxes[valid], alone.boxes[0][valid], atol=1e-2))
        )
    Path(out).write_text(json.dumps(figures))


def train_then_evaluate(mode: str, out: str, process_id: int = 0, port: int = 0) -> None:
    """Worker: `train_and_evaluate` for 2 steps of the tiny config, then the shipped model
    evaluated on the strips, in one process ("one_process") or two ("two_processes")."""
    import jax

    if mode == "two_processes":
        # CPU collectives across processes go through gloo (jax_cpu_collectives_implementation,
        # the default in this JAX).
        jax.distributed.initialize(
            f"127.0.0.1:{port}", num_processes=2, process_id=process_id, local_device_ids=[0]
        )
    from test_input_pipeline import synthetic_records

    from configs import tiny
    from dwd_jax import pretrained
    from dwd_jax.detection import inference
    from dwd_jax.eval import evaluation
    from dwd_jax.training import train

    config = tiny.get_config()
    config.train.steps = 2
    config.train.optimizer = "rmsprop"  # See run_one_step.
    workdir = Path(out).with_suffix("")
    state = train.train_and_evaluate(config, workdir, source=synthetic_records(6, seed=2))
    leaves = [np.asarray(x.addressable_data(0)) for x in jax.tree.leaves(state.params)]
    config = _eval_config()
    detector = inference.Detector(config, pretrained.load_params())
    figures = _figures(evaluation.evaluate_pages(_strip_pages(), detector, config=config))
    if jax.process_index() == 0:
        np.savez(out, *leaves, figures=json.dumps(figures), processes=jax.process_count())
    if mode == "two_processes":
        jax.distributed.shutdown()


def _env(device_count: int) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={device_count}"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["JAX_PLATFORMS"] = "cpu"
    return env


def _launch(args, device_count):
    return subprocess.Popen(
        [sys.executable, __file__, *map(str, args)],
        cwd=ROOT,
        env=_env(device_count),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait(processes):
    for process in processes:
        output, _ = process.communicate(timeout=600)
        assert process.returncode == 0, output[-3000:]


def _load(path):
    data = np.load(path)
    leaves = [data[f"arr_{i}"] for i in range(len(data.files) - 2)]
    return float(data["loss"]), int(data["devices"]), leaves


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_one_device_and_eight_devices_agree(tmp_path):
    runs = [
        _launch(["one_device", tmp_path / "one.npz"], 8),
        _launch(["eight_devices", tmp_path / "eight.npz"], 8),
    ]
    _wait(runs)
    loss_1, devices_1, params_1 = _load(tmp_path / "one.npz")
    loss_8, devices_8, params_8 = _load(tmp_path / "eight.npz")
    assert (devices_1, devices_8) == (1, 8)
    # Float tolerance: sharding only reorders the batch sums (gradient all-reduce, masked means).
    np.testing.assert_allclose(loss_8, loss_1, rtol=1e-5)
    for a, b in zip(params_1, params_8, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def test_eight_devices_evaluate_different_pages_with_the_one_device_figures(tmp_path):
    _wait([_launch(["evaluate_on_devices", tmp_path / "eval.json"], 8)])
    got = json.loads((tmp_path / "eval.json").read_text())
    assert got["batch_size"] == 8
    assert sorted(got["shard_devices"]) == list(range(8))  # Every device has a page...
    assert got["shard_rows"] == [[i, i + 1] for i in range(8)]  # ...a different one...
    assert all(got["shard_equals_alone"])  # ...computed as it would be alone.
    one, eight = got["one"], got["eight"]
    assert one["num_pages"] == eight["num_pages"] == STRIPS and one["map50"] > 0.3
    assert eight == one


def test_two_processes_train_and_evaluate_as_one(tmp_path):
    # All three at once: each is mostly single-threaded compiling, and the two processes
    # wait on each other at every collective.
    port = _free_port()
    runs = [_launch(["train_then_evaluate_one_process", tmp_path / "one.npz"], 1)] + [
        _launch(["train_then_evaluate_two_processes", tmp_path / "two.npz", i, port], 1)
        for i in range(2)
    ]
    _wait(runs)
    one, two = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    assert (int(one["processes"]), int(two["processes"])) == (1, 2)
    # The same global batches (one record order for any process count), so the same
    # parameters up to the order of the gradient sums.
    leaves = [k for k in one.files if k.startswith("arr_")]
    assert leaves and leaves == [k for k in two.files if k.startswith("arr_")]
    for k in leaves:
        np.testing.assert_allclose(two[k], one[k], rtol=1e-4, atol=1e-6, err_msg=k)
    # Each process evaluated half the pages; gathered, they give the one-process figures.
    assert json.loads(str(two["figures"])) == json.loads(str(one["figures"]))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "tests"))
    mode, out, *rest = sys.argv[1:]
    if mode == "evaluate_on_devices":
        evaluate_on_devices(out)
    elif mode.startswith("train_then_evaluate_"):
        train_then_evaluate(mode.removeprefix("train_then_evaluate_"), out, *map(int, rest))
    else:
        run_one_step(mode, out)

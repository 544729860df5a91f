"""Data parallelism: one step gives the same result on 1 device, 8 devices and 2 processes.

Each case runs in a fresh interpreter, since the device count is fixed when JAX starts:
`python tests/test_multidevice.py <mode> <out.npz> [process_id port]` runs one step of the
tiny config on a fixed global batch and saves the loss and the updated parameters.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
GLOBAL_BATCH = 8


def _fixed_batch(config) -> dict:
    """A fixed global batch of GLOBAL_BATCH crops from synthetic pages (no loader, no shuffle)."""
    from test_input_pipeline import synthetic_records

    from dwd_jax import input_pipeline

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


def run_one_step(mode: str, out: str, process_id: int = 0, port: int = 0) -> None:
    """Worker: one train step in `mode` ("one_device", "eight_devices", "two_processes")."""
    import jax

    if mode == "two_processes":
        # CPU collectives across processes go through gloo (jax_cpu_collectives_implementation,
        # the default in this JAX).
        jax.distributed.initialize(
            f"127.0.0.1:{port}", num_processes=2, process_id=process_id, local_device_ids=[0]
        )
    import functools

    from configs import tiny
    from dwd_jax import model, train

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
    share = GLOBAL_BATCH // jax.process_count()
    local = {
        k: v[jax.process_index() * share : (jax.process_index() + 1) * share]
        for k, v in batch.items()
    }
    state, metrics = step_fn(state, train.global_batch(local, mesh))
    leaves = jax.tree.leaves(jax.device_get(state.params))
    if jax.process_index() == 0:
        np.savez(out, *leaves, loss=float(metrics["loss"]), devices=len(devices))
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


def test_one_device_eight_devices_and_two_processes_agree(tmp_path):
    port = _free_port()
    runs = {
        "one_device": [_launch(["one_device", tmp_path / "one.npz"], 8)],
        "eight_devices": [_launch(["eight_devices", tmp_path / "eight.npz"], 8)],
    }
    _wait(runs["one_device"] + runs["eight_devices"])
    two = [_launch(["two_processes", tmp_path / "two.npz", i, port], 1) for i in range(2)]
    _wait(two)

    loss_1, devices_1, params_1 = _load(tmp_path / "one.npz")
    loss_8, devices_8, params_8 = _load(tmp_path / "eight.npz")
    loss_2, devices_2, params_2 = _load(tmp_path / "two.npz")
    assert (devices_1, devices_8, devices_2) == (1, 8, 2)
    # Float tolerance: sharding only reorders the batch sums (gradient all-reduce, masked means).
    np.testing.assert_allclose(loss_8, loss_1, rtol=1e-5)
    np.testing.assert_allclose(loss_2, loss_1, rtol=1e-5)
    for a, b, c in zip(params_1, params_8, params_2, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(c, a, rtol=1e-4, atol=1e-6)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "tests"))
    mode, out, *rest = sys.argv[1:]
    run_one_step(mode, out, *map(int, rest))

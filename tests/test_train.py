"""Train step and loop: compile once, resume bitwise, NaN stop, config errors, logs."""

import functools
import json
import os
import signal

import chex
import jax
import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags
from test_input_pipeline import synthetic_records

from configs import tiny
from dwd_jax import checkpoint
from dwd_jax.data import input_pipeline
from dwd_jax.decoding import decode
from dwd_jax.detection import inference
from dwd_jax.modeling import model, targets
from dwd_jax.training import train


def _tiny(**train_overrides):
    config = tiny.get_config()
    for key, value in train_overrides.items():
        config.train[key] = value
    return config


def _params(state):
    return jax.tree.leaves(jax.device_get(state.params))


@pytest.mark.slow
def test_step_is_traced_and_compiled_once_over_five_steps():
    config = _tiny()
    mesh = train.make_mesh()
    net = model.build_model(config)
    optimizer = train.make_optimizer(config.train)
    state = train.init_state(config, net, optimizer, mesh)

    @chex.assert_max_traces(n=1)  # A second trace (a recompile) raises.
    def counted_loss(*args):
        return train.dwd_loss(*args, net=net, config=config)

    step_fn = train.compile_step(counted_loss, optimizer, mesh)
    batches = iter(input_pipeline.make_train_loader(synthetic_records(4), config.data, seed=0))
    losses = []
    # Five steps cross the schedule's energy -> combined switch at step 2 without a recompile.
    for _ in range(5):
        state, metrics = step_fn(state, train.global_batch(next(batches), mesh))
        losses.append(float(metrics["loss"]))
    assert int(state.step) == 5 and all(np.isfinite(losses))


def test_tiny_config_overfits_two_pages(threefry):
    config = _tiny()
    mesh = train.make_mesh()
    net = model.build_model(config)
    optimizer = train.make_optimizer(config.train)
    state = train.init_state(config, net, optimizer, mesh)
    step_fn = train.compile_step(
        functools.partial(train.dwd_loss, net=net, config=config), optimizer, mesh
    )
    crops = [
        input_pipeline.crop_page(
            input_pipeline.parse_page(record),
            np.random.default_rng(0),
            crop_size=64,
            top_left_prob=1.0,
            max_objects=config.data.max_objects,
        )
        for record in synthetic_records(2, height=64, width=64)
    ]
    batch = train.global_batch({k: np.stack([c[k] for c in crops]) for k in crops[0]}, mesh)
    history = []
    for _ in range(160):
        state, metrics = step_fn(state, batch)
        history.append(jax.device_get(metrics))
    # The heads start at their priors (model._head_bias), so the first losses are chance
    # level. Adam on a loss near zero can spike and recover (here the class loss climbs from
    # 0.001 to 0.96 at step 110 and is back to 0.29 by step 160), so each head is judged by
    # its best loss over the last 40 steps. Measured on CPU: energy 0.63 -> 0.19, class
    # 4.9 -> 0.29, box 0.24 -> 0.002 (log sizes) at step 160; bests 0.18, 0.29, 0.002.
    for head, factor in (("energy_loss", 2), ("class_loss", 10), ("box_loss", 8)):
        best = min(float(metrics[head]) for metrics in history[-40:])
        assert best < float(history[0][head]) / factor, (head, history[0], best)
    # The decoded energy map shows the markers: most predicted foreground (the decoder's
    # rule, P(level > 1) > config.decode.foreground_threshold) is target foreground, and it
    # covers most of it (measured 0.63 and 0.74; the 20 levels are the slowest head to fit).
    maps = train.make_targets_by_stride(batch, (2,), config)[2]
    outputs = net.apply({"params": state.params}, batch["image"].astype(np.float32))[2]
    predicted = np.asarray(
        decode.foreground(outputs["energy"], 1, config.decode.foreground_threshold)
    )
    target = np.asarray(maps["energy"] > 1)
    hits = (predicted & target).sum()
    assert hits / predicted.sum() > 0.5 and hits / target.sum() > 0.5


def test_rmsprop_has_tf1_semantics():
    # TF1: ms = 1 at start; ms <- d ms + (1 - d) g^2; w <- w - lr g / sqrt(ms + eps).
    config = _tiny(optimizer="rmsprop", weight_decay=0.0, learning_rate=0.1)
    optimizer = train.make_optimizer(config.train)
    w, g = np.float32([1.0, -2.0]), np.float32([0.5, 3.0])
    updates, _ = optimizer.update(g, optimizer.init(w), w)
    ms = 0.995 + 0.005 * g**2
    np.testing.assert_allclose(updates, -0.1 * g / np.sqrt(ms + 1e-10), rtol=1e-6)


def test_weight_decay_applies_to_kernels_only():
    config = _tiny(weight_decay=0.5, optimizer="adam")
    optimizer = train.make_optimizer(config.train)
    params = {"kernel": np.ones((2, 2), np.float32), "bias": np.ones((2,), np.float32)}
    zeros = jax.tree.map(np.zeros_like, params)
    updates, _ = optimizer.update(zeros, optimizer.init(params), params)
    # Adam of a pure decay gradient moves kernels by -lr; zero gradient leaves biases alone.
    np.testing.assert_allclose(updates["kernel"], -config.train.learning_rate, rtol=1e-3)
    np.testing.assert_array_equal(updates["bias"], 0.0)


def test_kill_and_resume_gives_bitwise_identical_params(tmp_path):
    source = synthetic_records(4)
    straight = train.train_and_evaluate(
        _tiny(steps=4, checkpoint_every=2, picture_every=2), tmp_path / "straight", source=source
    )
    killed = _tiny(steps=2, checkpoint_every=2)  # Stops at N = 2, as a killed run would.
    train.train_and_evaluate(killed, tmp_path / "resumed", source=source)
    resumed = train.train_and_evaluate(
        _tiny(steps=4, checkpoint_every=2), tmp_path / "resumed", source=source
    )
    assert int(resumed.step) == 4
    for a, b in zip(_params(straight), _params(resumed), strict=True):
        np.testing.assert_array_equal(a, b)

    # The straight run left its logs: one JSONL record per step, TensorBoard, pictures.
    records = [json.loads(line) for line in open(tmp_path / "straight" / "metrics.jsonl")]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert {"loss", "energy_loss", "class_loss", "box_loss", "steps_per_s"} <= set(records[0])
    assert list((tmp_path / "straight" / "tensorboard").iterdir())
    pictures = sorted(p.name for p in (tmp_path / "straight" / "pictures").iterdir())
    assert pictures == ["step_0000002.png", "step_0000004.png"]
    assert (tmp_path / "straight" / "learning_curves.png").exists()


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    # Two good steps, then a resumed run whose infinite learning rate makes step 3's update
    # inf or NaN: its loss is still finite, its parameters are not, and they must not be saved.
    train.train_and_evaluate(
        _tiny(steps=2, checkpoint_every=1), tmp_path, source=synthetic_records(2)
    )
    config = _tiny(steps=4, checkpoint_every=1, learning_rate=float("inf"))
    with pytest.raises(FloatingPointError, match=r"Step 3: non-finite.*checkpoint \(step 2\)"):
        train.train_and_evaluate(config, tmp_path, source=synthetic_records(2))
    manager = checkpoint.make_manager(tmp_path, config.train)
    assert manager.all_steps()[-1] == 2
    mesh = train.make_mesh()
    net = model.build_model(config)
    optimizer = train.make_optimizer(config.train)
    abstract = train.abstract_state(config, net, optimizer, mesh)
    loader = input_pipeline.make_train_loader(synthetic_records(2), config.data, seed=0)
    restored = checkpoint.restore_latest(manager, abstract, iter(loader))
    assert int(restored.step) == 2
    assert all(np.isfinite(p).all() for p in _params(restored))
    # Inference reads the parameters alone (no optimiser state), and the same ones.
    params, step = inference.restore_params(config, tmp_path)
    assert step == 2
    for a, b in zip(jax.tree.leaves(params), _params(restored), strict=True):
        np.testing.assert_array_equal(np.asarray(a), b)
    with pytest.raises(FileNotFoundError, match="train first"):
        inference.restore_params(config, tmp_path / "empty")


def test_sigterm_saves_the_step_reached_and_exits_as_killed(tmp_path, monkeypatch):
    # A scheduler's SIGTERM arrives while step 2's batch is being placed on the devices.
    place = train.global_batch
    calls = []

    def place_then_signal(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return place(*args, **kwargs)

    monkeypatch.setattr(train, "global_batch", place_then_signal)
    before = signal.getsignal(signal.SIGTERM)
    config = _tiny(steps=6, checkpoint_every=100)
    with pytest.raises(train.Preempted, match="SIGTERM after step 2.*Rerun") as stopped:
        train.train_and_evaluate(config, tmp_path, source=synthetic_records(2))
    assert stopped.value.code == 128 + signal.SIGTERM  # The status of a process it killed.
    assert signal.getsignal(signal.SIGTERM) is before  # The handler is put back.
    # Step 2 finished and was saved although the interval (100) would not have saved it
    # (orbax saves a run's first step too); no later step ran.
    assert checkpoint.make_manager(tmp_path, config.train).all_steps() == [1, 2]
    assert len(calls) == 2


def test_wrong_config_field_is_named():
    config = tiny.get_config()
    with pytest.raises(AttributeError, match="stepz"):
        config.train.stepz = 3
    flag_values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", "configs/tiny.py", flag_values=flag_values)
    with pytest.raises(flags.Error, match="stepz"):
        flag_values(["run.py", "--config=configs/tiny.py", "--config.train.stepz=3"])
    config.train.optimizer = "sgd"
    with pytest.raises(ValueError, match="config.train.optimizer"):
        train.make_optimizer(config.train)


def test_learning_rate_schedules():
    config = _tiny(steps=100, learning_rate=0.5, warmup_steps=10, lr_schedule="cosine")
    rate = train.learning_rate_schedule(config.train)
    # Linear warm-up from 0, the peak at the end of it, a cosine down to 0 at the last step.
    np.testing.assert_allclose([rate(0), rate(5), rate(10)], [0.0, 0.25, 0.5], rtol=1e-6)
    np.testing.assert_allclose(rate(55), 0.25, rtol=1e-5)  # Half-way through the decay.
    np.testing.assert_allclose(rate(100), 0.0, atol=1e-7)
    constant = train.learning_rate_schedule(_tiny(lr_schedule="constant", learning_rate=0.5).train)
    assert float(constant(0)) == float(constant(1000)) == 0.5
    with pytest.raises(ValueError, match="config.train.lr_schedule"):
        train.learning_rate_schedule(_tiny(lr_schedule="linear").train)


@pytest.mark.slow
def test_another_class_list_builds_trains_one_step_and_decodes(monkeypatch):
    # MUSCIMA++-like: a list of one's own is one entry in classes.CLASS_LISTS plus a config.
    from dwd_jax import classes

    names = ("noteheadFull", "stem", "beam", "sharp", "flat")
    monkeypatch.setitem(classes.CLASS_LISTS, "toy", names)
    config = _tiny()
    config.model.classes = "toy"
    config.targets.energy_groups = ((), ("stem", "beam"))
    records = synthetic_records(2)
    for r in records:
        r["objects"]["label"] = r["objects"]["label"] % len(names)
    mesh = train.make_mesh()
    net = model.build_model(config)
    optimizer = train.make_optimizer(config.train)
    state = train.init_state(config, net, optimizer, mesh)
    assert state.params["class_size_prior"].shape == (len(names) + 1, 2)
    step_fn = train.compile_step(
        functools.partial(train.dwd_loss, net=net, config=config), optimizer, mesh
    )
    batch = next(iter(input_pipeline.make_train_loader(records, config.data, seed=0)))
    state, metrics = step_fn(state, train.global_batch(batch, mesh))
    assert np.isfinite(float(metrics["loss"])) and int(state.step) == 1
    stride = min(config.model.output_strides)
    outputs = net.apply({"params": state.params}, batch["image"].astype(np.float32))[stride]
    assert outputs["class"].shape[-2:] == (2, len(names) + 1)  # Two groups, 6 classes.
    dets = jax.device_get(decode.decode(outputs, stride=stride, config=config))
    assert dets.classes.max() <= len(names)
    config.targets.energy_groups = ((), ("ledgerLine",))  # A DeepScores name, not in "toy".
    with pytest.raises(KeyError, match="not in the class list 'toy'"):
        targets.group_of_class(config)

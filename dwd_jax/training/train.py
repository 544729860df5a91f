"""Training: the train state, the compiled data-parallel step, and `train_and_evaluate`.

The step is one pure function `(state, batch) -> (state, metrics)` compiled once with
`jax.jit` over a 1-D `'data'` mesh of every device of every process: the batch is sharded on
its leading axis, the state replicated, both placed explicitly with `NamedSharding`, and the
state donated. XLA inserts the gradient all-reduce. Multi-host runs call
`jax.distributed.initialize()` first (run.py); each process then feeds its own slice of the
global batch (`jax.make_array_from_process_local_data`).

Targets are made inside the step from the padded boxes (`targets.make_targets`), so the host
ships only the u8 crop and a few kilobytes of boxes per page.

The optimiser is RMSProp with TF1 semantics (spec section 4) or Adam, after L2 weight decay on
conv kernels. We use one optimiser for all stages of the schedule; the original built one
RMSProp per stage loss, each with its own accumulators (a deliberate simplification: the
stage only changes which loss the shared optimiser sees, see `losses.total_loss`).
"""

from __future__ import annotations

import contextlib
import functools
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from etils import epath
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from dwd_jax import checkpoint, paths, visualize
from dwd_jax.data import input_pipeline
from dwd_jax.detection import inference
from dwd_jax.eval import evaluation
from dwd_jax.modeling import losses, model, targets
from dwd_jax.training import metrics_log

# (params, loss_state, batch, step) -> (loss f32[], (new loss_state, {head: f32[]})).
LossFn = Callable[[Any, Any, Mapping[str, jax.Array], jax.Array], tuple[jax.Array, Any]]


@flax.struct.dataclass
class TrainState:
    """Everything a step reads and writes; a pytree, checkpointed whole.

    step: i32[] optimiser steps done. params: the model's `params` collection.
    opt_state: the optax state. loss_state: `losses.Normaliser` (the combined loss's ring
    buffer of recent per-head losses).
    """

    step: jax.Array
    params: Any
    opt_state: Any
    loss_state: Any


def make_mesh(devices: Sequence[jax.Device] | None = None) -> jax.sharding.Mesh:
    """A 1-D `'data'` mesh over `devices` (default: all devices of all processes).

    Auto axes: the model, targets and losses carry no sharding annotations, so XLA propagates
    the batch sharding through them.
    """
    devices = jax.devices() if devices is None else list(devices)
    return jax.make_mesh(
        (len(devices),), ("data",), axis_types=(jax.sharding.AxisType.Auto,), devices=devices
    )


def learning_rate_schedule(train: ml_collections.ConfigDict) -> optax.Schedule:
    """The learning rate per optimiser step, from `config.train`.

    "constant" (the original: 1e-4 throughout) or "cosine": linear warm-up over
    `warmup_steps` to `learning_rate`, then a cosine decay to 0 at `train.steps`. A short run
    ends far sharper with the decay (its last steps average out batch-1 noise).

    Raises:
      ValueError: naming `config.train.lr_schedule` when it is neither.
    """
    if train.lr_schedule == "constant":
        return optax.constant_schedule(train.learning_rate)
    if train.lr_schedule == "cosine":
        warmup = min(int(train.warmup_steps), int(train.steps) - 1)
        return optax.warmup_cosine_decay_schedule(
            0.0, train.learning_rate, max(warmup, 1), max(int(train.steps), 2), 0.0
        )
    raise ValueError(
        f"config.train.lr_schedule = {train.lr_schedule!r} is not supported; use 'constant' "
        "or 'cosine'."
    )


def make_optimizer(train: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """L2 weight decay on conv kernels, then RMSProp (TF1 semantics) or Adam.

    Decay is added to the gradient before the optimiser, which is the gradient of
    `weight_decay / 2 * sum(kernel ** 2)` added to the loss: TF1's `slim.l2_regularizer`, which
    the original used (spec section 4). Biases and norm scales are not decayed.

    Args:
      train: the `config.train` section.

    Raises:
      ValueError: naming `config.train.optimizer` when it is not "rmsprop" or "adam".
    """
    rate = learning_rate_schedule(train)
    if train.optimizer == "rmsprop":
        # TF1 RMSProp: mean square starts at 1, epsilon inside the square root (spec section 4).
        base = optax.rmsprop(
            rate,
            decay=train.rmsprop_decay,
            eps=1e-10,
            initial_scale=1.0,
            eps_in_sqrt=True,
        )
    elif train.optimizer == "adam":
        base = optax.adam(rate)
    else:
        raise ValueError(
            f"config.train.optimizer = {train.optimizer!r} is not supported; use 'rmsprop' or "
            "'adam'."
        )
    is_kernel = lambda params: jax.tree.map(lambda p: p.ndim > 1, params)
    return optax.chain(optax.add_decayed_weights(train.weight_decay, mask=is_kernel), base)


def supervised_strides(config: ml_collections.ConfigDict) -> tuple[int, ...]:
    """Strides at which targets are needed: the union of the heads' loss strides."""
    return tuple(sorted({s for strides in losses.loss_strides(config).values() for s in strides}))


def make_targets_by_stride(
    batch: Mapping[str, jax.Array], strides: Sequence[int], config: ml_collections.ConfigDict
) -> dict[int, dict[str, jax.Array]]:
    """Target maps at each stride from a batch's padded boxes (docs/DESIGN.md `Targets`).

    Args:
      batch: {"image": u8[B, H, W, 1], "boxes": f32[B, M, 4], "classes": i32[B, M],
        "valid": bool[B, M]}.
      strides: output strides to make targets for.
      config: the experiment config.
    """
    image_shape = tuple(batch["image"].shape[1:3])
    return {
        stride: targets.make_targets(
            batch["boxes"],
            batch["classes"],
            batch["valid"],
            image_shape=image_shape,
            stride=stride,
            config=config,
        )
        for stride in strides
    }


def dwd_loss(
    params: Any,
    loss_state: losses.Normaliser,
    batch: Mapping[str, jax.Array],
    step: jax.Array,
    *,
    net: model.DWD,
    config: ml_collections.ConfigDict,
) -> tuple[jax.Array, tuple[losses.Normaliser, dict[str, jax.Array]]]:
    """The scheduled DWD loss of one batch: forward pass, targets, per-head and total loss.

    Args:
      params: model parameters.
      loss_state: the combined loss's normaliser.
      batch: see `make_targets_by_stride`.
      step: i32[] optimiser steps done (picks the schedule stage).
      net: the flax module from `model.build_model`.
      config: the experiment config.

    Returns:
      (loss f32[], (new normaliser, {"energy", "class", "box": f32[]})).
    """
    outputs = net.apply({"params": params}, batch["image"].astype(jnp.float32))
    maps = make_targets_by_stride(batch, supervised_strides(config), config)
    per_head = losses.head_losses(outputs, maps, config)
    loss, loss_state = losses.total_loss(per_head, loss_state, step, config)
    return loss, (loss_state, per_head)


def train_step(
    state: TrainState,
    batch: Mapping[str, jax.Array],
    *,
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimiser step; pure, so it is jitted once and sharded by its caller.

    Args:
      state: the replicated train state.
      batch: the global batch (see `make_targets_by_stride`), sharded on axis 0.
      loss_fn: e.g. `functools.partial(dwd_loss, net=..., config=...)`.
      optimizer: from `make_optimizer`.

    Returns:
      (new state, {"loss", "energy_loss", "class_loss", "box_loss", "grad_norm",
      "param_norm": f32[]}).
    """
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (loss, (loss_state, per_head)), grads = grad_fn(
        state.params, state.loss_state, batch, state.step
    )
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    new_state = state.replace(
        step=state.step + 1,
        params=optax.apply_updates(state.params, updates),
        opt_state=opt_state,
        loss_state=loss_state,
    )
    metrics = {f"{head}_loss": value for head, value in per_head.items()}
    return new_state, {
        "loss": loss,
        **metrics,
        "grad_norm": optax.tree.norm(grads),
        # The caller checks it before saving: a finite loss can still leave an update that
        # made the parameters inf or NaN, and that state must not become a checkpoint.
        "param_norm": optax.tree.norm(new_state.params),
    }


def _init_fn(
    config: ml_collections.ConfigDict, net: model.DWD, optimizer: optax.GradientTransformation
) -> Callable[[jax.Array], TrainState]:
    def init(rng: jax.Array) -> TrainState:
        params = model.init_params(net, rng, side=config.data.pad_multiple)
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=optimizer.init(params),
            loss_state=losses.init_normaliser(config.loss.normaliser_window),
        )

    return init


def abstract_state(
    config: ml_collections.ConfigDict,
    net: model.DWD,
    optimizer: optax.GradientTransformation,
    mesh: jax.sharding.Mesh,
) -> Any:
    """The train state's shapes, dtypes and (replicated) shardings, computed without FLOPs.

    Returns:
      A TrainState of `jax.ShapeDtypeStruct` with `.sharding` set: the target of
      `init_state` and of a checkpoint restore.
    """
    shapes = jax.eval_shape(_init_fn(config, net, optimizer), jax.random.key(config.seed))
    replicated = NamedSharding(mesh, P())
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), shapes
    )


def init_state(
    config: ml_collections.ConfigDict,
    net: model.DWD,
    optimizer: optax.GradientTransformation,
    mesh: jax.sharding.Mesh,
) -> TrainState:
    """A fresh replicated train state, made by a jitted init straight into its shardings."""
    shardings = jax.tree.map(lambda x: x.sharding, abstract_state(config, net, optimizer, mesh))
    init = jax.jit(_init_fn(config, net, optimizer), out_shardings=shardings)
    return init(jax.random.key(config.seed))


def compile_step(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    mesh: jax.sharding.Mesh,
) -> Callable[[TrainState, Mapping[str, jax.Array]], tuple[TrainState, dict[str, jax.Array]]]:
    """`train_step` jitted with the batch sharded over `'data'`, the state replicated, donated.

    The state is replicated, so `P()` serves as the sharding prefix of the whole state pytree.
    """
    step = functools.partial(train_step, loss_fn=loss_fn, optimizer=optimizer)
    replicated = NamedSharding(mesh, P())
    return jax.jit(
        step,
        in_shardings=(replicated, NamedSharding(mesh, P("data"))),
        out_shardings=(replicated, replicated),
        donate_argnums=0,
    )


def global_batch(local_batch: Mapping[str, np.ndarray], mesh: jax.sharding.Mesh) -> dict:
    """This process's slice of the batch -> global arrays sharded on axis 0 over `'data'`."""
    sharding = NamedSharding(mesh, P("data"))
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
        for k, v in local_batch.items()
    }


def _picture_fn(net: model.DWD, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh):
    """Jitted (params, batch) -> argmax energy/class and targets of page 0 at the finest stride."""
    stride = min(config.model.output_strides)

    def maps(params, batch):
        outputs = net.apply({"params": params}, batch["image"].astype(jnp.float32))[stride]
        target = make_targets_by_stride(batch, (stride,), config)[stride]
        return {
            "pred_energy": outputs["energy"][0].argmax(-1),
            "pred_class": outputs["class"][0].argmax(-1),
            "target_energy": target["energy"][0],
            "target_class": target["class"][0],
        }

    return jax.jit(maps, out_shardings=NamedSharding(mesh, P()))


def _write_picture(
    path: epath.Path, image: np.ndarray, maps: Mapping[str, jax.Array], levels: int
):
    panel = visualize.training_panel(
        image,
        *(
            np.asarray(maps[k])
            for k in ("pred_energy", "target_energy", "pred_class", "target_class")
        ),
        levels=levels,
    )
    paths.write_png(panel, path)


# The headline figures logged as val_<name> ("network_alone_map" as "val_network_map").
VALIDATION_FIGURES = ("map50", "map", "network_alone_map50", "network_alone_map")


def _validation_fn(config: ml_collections.ConfigDict) -> Callable[[Any], dict[str, float]]:
    """`f(params) -> {"val_map50", "val_map", "val_network_map50", "val_network_map"}`: the
    first `config.eval.during_training_pages` pages of `config.data.eval_split`, by the
    evaluation protocol (`evaluation.evaluate_pages`), all classes."""
    source = input_pipeline.open_source(config.data, config.data.eval_split)
    count = min(len(source), config.eval.during_training_pages)
    detector = inference.Detector(config, None)  # Compiled once; params change per call.

    def validate(params) -> dict[str, float]:
        detector.params = params
        pages = evaluation.split_pages(source, range(count))
        r = evaluation.evaluate_pages(pages, detector, config=config, desc="val")
        h = evaluation.headline(r)
        return {f"val_{k.replace('_alone', '')}": h[k] for k in VALIDATION_FIGURES}

    return validate


def _check_finite(step: int, metrics: Mapping[str, float], manager) -> None:
    if not all(np.isfinite(v) for v in metrics.values()):
        latest = manager.latest_step()
        kept = (
            f"the last good checkpoint (step {latest}) in {manager.directory} is untouched"
            if latest is not None
            else f"no checkpoint was written to {manager.directory}"
        )
        raise FloatingPointError(
            f"Step {step}: non-finite training metrics {dict(metrics)} (checked at every log "
            f"and save, so they turned non-finite after the last of those). The run stopped "
            f"before saving; {kept}. Lower config.train.learning_rate or inspect the steps' "
            "pages, then rerun to resume from that checkpoint."
        )


class Preempted(SystemExit):
    """Training stopped by SIGTERM (a scheduler's preemption) or Ctrl-C after saving a
    checkpoint at the step it had reached. As a SystemExit, the process exits with status 128 +
    the signal number, as if killed by it, after normal clean-up (input workers included)."""

    def __init__(self, signum: int, message: str):
        super().__init__(128 + signum)
        self.signum = signum
        self.message = message

    def __str__(self) -> str:
        return self.message


@contextlib.contextmanager
def _stop_requests():
    """Yields `stop(step) -> signal number or None`: whether to save and stop after `step`.

    One process: SIGTERM or SIGINT only set a flag that the loop reads between steps (killing
    the process mid-step would lose the steps since the last checkpoint and orphan the input
    workers); outside the main thread, where Python cannot install handlers, nothing is
    caught. Several processes must stop at the same step, so JAX's preemption service
    decides (`multihost_utils.reached_preemption_sync_point`: the scheduler's SIGTERM to any
    process reaches all of them, with no collective per step).
    """
    if jax.process_count() > 1:
        yield lambda step: (
            signal.SIGTERM if multihost_utils.reached_preemption_sync_point(step) else None
        )
        return
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda step: None
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        signal.signal(sig, lambda signum, frame: caught.append(signum))
    try:
        yield lambda step: caught[0] if caught else None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: epath.PathLike,
    *,
    source: Sequence[Mapping[str, Any]] | None = None,
) -> TrainState:
    """Trains (or resumes training) until `config.train.steps`; the `run.py train` entry point.

    Writes to `workdir`: `checkpoints/` (orbax, with the input position), `metrics.jsonl`
    (with validation mAPs every `train.eval_every` steps and at the end), `tensorboard/`,
    `pictures/step_XXXXXXX.png` every `train.picture_every` steps and `learning_curves.png`
    at the end. A rerun with the same workdir resumes from the newest
    checkpoint and sees the same batches as an uninterrupted run.

    Args:
      config: the experiment config (configs/*.py).
      workdir: the run's folder, local or a bucket URI (`gs://...`).
      source: training records in the `deep_scores` TFDS format; default
        `input_pipeline.open_source(config.data, config.data.train_split)`.

    Returns:
      The final train state.

    Raises:
      FloatingPointError: a step's loss or gradient norm is not finite (nothing is saved).
      Preempted: SIGTERM or SIGINT arrived; a checkpoint of the last finished step was saved
        first, so rerunning the same command resumes from there.
    """
    workdir = paths.resolve(workdir)
    if source is None:
        source = input_pipeline.open_source(config.data, config.data.train_split)
    mesh = make_mesh()
    net = model.build_model(config)
    optimizer = make_optimizer(config.train)
    loader = input_pipeline.make_train_loader(
        source,
        config.data,
        seed=config.seed,
        crossing_classes=tuple(int(c) for c in np.flatnonzero(targets.line_classes(config))),
    )
    batches: Iterator = iter(loader)
    manager = checkpoint.make_manager(workdir, config.train)
    abstract = abstract_state(config, net, optimizer, mesh)
    state = checkpoint.restore_latest(manager, abstract, batches)
    if state is None:
        state = init_state(config, net, optimizer, mesh)
    step_fn = compile_step(functools.partial(dwd_loss, net=net, config=config), optimizer, mesh)
    picture_fn = _picture_fn(net, config, mesh) if config.train.picture_every else None
    validate = _validation_fn(config) if config.train.eval_every else None
    first = int(state.step)
    logger = metrics_log.MetricsLogger(workdir, first_step=first, total_steps=config.train.steps)
    with contextlib.ExitStack() as stack:
        stop_signal = stack.enter_context(_stop_requests())
        stack.callback(logger.close)
        stack.callback(manager.wait_until_finished)
        for step in range(first + 1, config.train.steps + 1):
            local = next(batches)
            batch = global_batch(local, mesh)
            state, metrics = step_fn(state, batch)
            last = step == config.train.steps
            signum = stop_signal(step)
            validating = validate is not None and (step % config.train.eval_every == 0 or last)
            saving = last or bool(signum) or manager.should_save(step)
            # The host waits for the device only here: a step's metrics are fetched when they
            # are logged or a checkpoint follows, so a non-finite state is never saved.
            logging_now = validating or last or step % config.train.log_every == 0
            if saving or logging_now:
                values = {k: float(v) for k, v in jax.device_get(metrics).items()}
                _check_finite(step, values, manager)
                if validating:
                    values.update(validate(state.params))
                if logging_now:
                    logger.write(step, values)
            if picture_fn is not None and step % config.train.picture_every == 0:
                maps = picture_fn(state.params, batch)
                if jax.process_index() == 0:
                    path = workdir / "pictures" / f"step_{step:07d}.png"
                    _write_picture(path, local["image"][0], maps, config.targets.energy_levels)
            if saving:
                checkpoint.save(manager, step, state, batches, force=True)
            if signum:
                manager.wait_until_finished()
                message = (
                    f"Stopped by {signal.Signals(signum).name} after step {step}; its checkpoint "
                    f"is in {manager.directory}. Rerun the same command to resume."
                )
                logging.warning(message)
                raise Preempted(signum, message)
    if jax.process_index() == 0 and (workdir / "metrics.jsonl").exists():
        visualize.learning_curves(workdir / "metrics.jsonl", workdir / "learning_curves.png")
    return state

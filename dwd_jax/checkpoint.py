"""Orbax checkpoints of the train state together with the input pipeline's position.

One checkpoint = `state` (the TrainState pytree, restored straight into its shardings) and
`data` (each process's grain iterator state), so a resumed run sees exactly the batches the
interrupted run would have seen. Orbax writes into a temporary folder and renames it when
complete (atomic; in a bucket a commit file marks it complete instead), keeps the last
`train.keep_checkpoints`, and saves asynchronously.
"""

from __future__ import annotations

from typing import Any

import grain.python as grain
import jax
import ml_collections
import orbax.checkpoint as ocp
from etils import epath

from dwd_jax import paths


def _manager(workdir: epath.PathLike, item_handlers: dict, **options) -> ocp.CheckpointManager:
    """An orbax manager of `<workdir>/checkpoints` (local, made absolute, or in a bucket)."""
    directory = paths.resolve(workdir) / "checkpoints"
    # An object store cannot rename a folder at once: there a checkpoint is complete when its
    # commit file is (orbax's own choice for gs://; s3:// would get a partial rename).
    atomic = ocp.path.atomicity.CommitFileTemporaryPath if paths.is_remote(directory) else None
    return ocp.CheckpointManager(
        directory,
        options=ocp.CheckpointManagerOptions(temporary_path_class=atomic, **options),
        item_handlers=item_handlers,
    )


def make_manager(
    workdir: epath.PathLike, train: ml_collections.ConfigDict
) -> ocp.CheckpointManager:
    """The checkpoint manager of a run, under `<workdir>/checkpoints`.

    Args:
      workdir: the run's folder, local or a bucket URI (`gs://...`).
      train: the `config.train` section (`checkpoint_every`, `keep_checkpoints`).
    """
    return _manager(
        workdir,
        {"state": ocp.StandardCheckpointHandler(), "data": grain.PyGrainCheckpointHandler()},
        save_interval_steps=train.checkpoint_every,
        max_to_keep=train.keep_checkpoints,
        create=True,
    )


def save(
    manager: ocp.CheckpointManager,
    step: int,
    state: Any,
    data_iterator: grain.PyGrainDatasetIterator,
    *,
    force: bool = False,
) -> bool:
    """Saves `state` and the iterator position at `step` if the save interval says so, or
    whatever it says with `force`.

    The caller guarantees `state` is finite (train.py checks the metrics of every step it
    saves before it gets here), so a checkpoint on disk is always a good one.

    Returns:
      Whether a checkpoint was started.
    """
    return manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=grain.PyGrainCheckpointSave(data_iterator),
        ),
        force=force,
    )


def restore_latest(
    manager: ocp.CheckpointManager,
    abstract_state: Any,
    data_iterator: grain.PyGrainDatasetIterator,
) -> Any | None:
    """Restores the newest checkpoint into `abstract_state`'s shapes and shardings.

    Args:
      manager: from `make_manager`.
      abstract_state: pytree of `jax.ShapeDtypeStruct` with `.sharding` set.
      data_iterator: its position is restored in place.

    Returns:
      The restored state, or None when the folder holds no checkpoint.
    """
    step = manager.latest_step()
    if step is None:
        return None
    restored = manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state),
            data=grain.PyGrainCheckpointRestore(data_iterator),
        ),
    )
    return jax.block_until_ready(restored["state"])


def restore_params(workdir: epath.PathLike, abstract_params: Any) -> tuple[Any, int] | None:
    """Only the model parameters of the newest checkpoint under `<workdir>/checkpoints`.

    Inference needs neither the optimiser's moments (twice the parameters with Adam) nor the
    input position, so they are not read: orbax's partial restore of the `state` item.

    Args:
      workdir: the run's folder, local or a bucket URI.
      abstract_params: pytree of `jax.ShapeDtypeStruct` (with shardings) of the parameters.

    Returns:
      (params, step), or None when the folder holds no checkpoint.
    """
    manager = _manager(workdir, {"state": ocp.PyTreeCheckpointHandler()})
    step = manager.latest_step()
    if step is None:
        manager.close()
        return None
    item = {"params": abstract_params}
    restored = manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.PyTreeRestore(
                item=item,
                restore_args=ocp.checkpoint_utils.construct_restore_args(item),
                partial_restore=True,
            )
        ),
    )
    manager.close()
    return restored["state"]["params"], step

"""The default model, shipped with the package: a detector without training.

`default/` holds what `python run.py` trains: `params.msgpack` (the parameters, flax
serialisation), `config.json` (the experiment config they were trained with) and
`model.json` (its training data and its figures). `inference.Detector.from_workdir` falls back
to it when a workdir holds no checkpoint of its own.

This file is also a config file: `--config=<path of this file>` gives the shipped model's
config (`get_config`), which the `dwd-jax` command uses outside a clone of the repository.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import ml_collections
from flax import serialization

DEFAULT = Path(__file__).resolve().parent / "default"

# Model settings that change how the network computes, not its parameters.
_COMPUTE_ONLY = ("dtype", "remat")
# Target settings of line objects (`dwd_jax.modeling.targets`).
_LINE_FIELDS = ("line_classes", "line_marker", "line_reach", "max_line_objects")
# Target options whose settings change nothing while the first (their class list) is empty.
_OPTIONS = (_LINE_FIELDS, ("fitted_classes", "fitted_min_radius"))


def _tuples(value: Any) -> Any:
    """JSON lists back to the tuples a config holds."""
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def get_config(folder: Path = DEFAULT) -> ml_collections.ConfigDict:
    """The config the shipped model was trained with (locked, like configs/default.py's).

    Raises:
      FileNotFoundError: the package holds no shipped model.
    """
    path = folder / "config.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no shipped model in {folder}; train one with `python run.py` in a clone of the "
            "repository, or reinstall the package"
        )
    config = ml_collections.ConfigDict(_tuples(json.loads(path.read_text())))
    config.lock()
    return config


def is_compatible(config: ml_collections.ConfigDict, folder: Path = DEFAULT) -> bool:
    """Whether `config` builds the shipped model's network (same model and targets; how it
    computes, `model.dtype` and `model.remat`, may differ)."""
    if not (folder / "params.msgpack").is_file():
        return False
    shipped = get_config(folder)

    def network(c: ml_collections.ConfigDict) -> dict:
        fields = {k: _tuples(c[k].to_dict()) for k in ("model", "targets")}
        for k in _COMPUTE_ONLY:
            fields["model"].pop(k, None)
        for option in _OPTIONS:
            # Without classes named, an option's settings change nothing (nor does their
            # absence, in a config written before it existed).
            if not fields["targets"].get(option[0]):
                for k in option:
                    fields["targets"].pop(k, None)
        return fields

    return network(config) == network(shipped)


def load_params(folder: Path = DEFAULT) -> Any:
    """The shipped parameters, on the first local device."""
    from dwd_jax.modeling import model

    sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = model.abstract_params(get_config(folder), sharding)
    empty = jax.tree.map(lambda x: jax.numpy.zeros(x.shape, x.dtype), target)
    return serialization.from_bytes(empty, (folder / "params.msgpack").read_bytes())


def model_card(folder: Path = DEFAULT) -> dict:
    """The shipped model's description: training data, step and figures."""
    return json.loads((folder / "model.json").read_text())


def export(
    config: ml_collections.ConfigDict, params: Any, card: dict, folder: Path = DEFAULT
) -> None:
    """Writes a model into `folder` (params.msgpack, config.json, model.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.msgpack").write_bytes(serialization.to_bytes(jax.device_get(params)))
    (folder / "config.json").write_text(config.to_json(indent=1) + "\n")
    (folder / "model.json").write_text(json.dumps(card, indent=1) + "\n")

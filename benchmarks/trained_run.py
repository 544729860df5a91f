"""Command line and restore shared by the scripts that probe a trained run (localisation,
energy_at_centres, ink_refine); run them as `python benchmarks/<name>.py`."""

from __future__ import annotations

import argparse
import importlib
from typing import Any

import ml_collections

from dwd_jax.detection import inference


def load(
    doc: str, *, pages: int, classes: str, network_alone: bool = False
) -> tuple[argparse.Namespace, ml_collections.ConfigDict, Any, int]:
    """Parses --workdir, --config, --pages, --classes, --no-offset-head (and with
    `network_alone` --network-alone), and restores the run.

    Returns:
      (args, the config the run was trained with, its parameters, their step).
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--workdir", default="workdir/default")
    parser.add_argument(
        "--config", default="default", help="The run's config module in configs/ (a name)."
    )
    parser.add_argument("--pages", type=int, default=pages, help="First validation pages to read.")
    parser.add_argument("--classes", default=classes, help="Class names separated by ','.")
    parser.add_argument(
        "--no-offset-head",
        action="store_true",
        help="For a run trained with model.offset_head off.",
    )
    if network_alone:
        parser.add_argument(
            "--network-alone",
            action="store_true",
            help="The network's boxes, not the shipped pipeline's.",
        )
    args = parser.parse_args()
    config = importlib.import_module(f"configs.{args.config}").get_config()
    config.model.offset_head = not args.no_offset_head
    params, step = inference.restore_params(config, args.workdir)
    return args, config, params, step

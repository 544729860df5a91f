"""The `dwd-jax` command (and `python run.py`): flags only; the work is in `dwd_jax.workflow`.

    dwd-jax [COMMAND] [--config=configs/default.py] [--config.train.steps=500] [--workdir=...]

Commands:
  all (default)   engrave the embedded corpus if absent, train (resuming), evaluate, draw
  generate        engrave the corpus (resumable) and prepare the TFDS dataset
  train           train (resuming from the newest checkpoint in --workdir)
  eval            evaluate the newest checkpoint on config.data.eval_split (or --split)
  eval-folder F   evaluate on one annotation file of a DeepScoresV2-layout folder F
                  (deepscores_<--split>.json, default test), by the same protocol as eval
  robustness [F]  evaluate on the eval split (or folder F's --split file set, default test)
                  clean and under each fixed degradation of config.robustness
  detect PATHS    detect symbols on images, PDFs and folders of them: overlays, proposals,
                  COCO results and a summary
  export          the newest checkpoint, its config and its evaluation figures as the
                  model shipped with the package (dwd_jax/pretrained/default/)

`eval_folder` is the same command as `eval-folder`. Without a checkpoint in --workdir, eval,
eval-folder and detect use the default model shipped with the package. The config defaults to
configs/default.py in a clone of the repository, and to the shipped model's config elsewhere.

Multi-host: pass --multihost to call `jax.distributed.initialize()` (its arguments come from the
cluster environment, or JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID).
"""


from __future__ import annotations

import json
import logging
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

from dwd_jax.pretrained import __file__ as pretrained_file

# In a clone, the default config; installed elsewhere, the shipped model's (a config file too).
_DEFAULT_CONFIG = "configs/default.py"
_CONFIG = config_flags.DEFINE_config_file(
    "config",
    _DEFAULT_CONFIG if Path(_DEFAULT_CONFIG).is_file() else str(Path(pretrained_file)),
    "Experiment config (a get_config() file).",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string("workdir", "workdir/default", "Checkpoints, logs and reports.")
_SPLIT = flags.DEFINE_string(
    "split", None, "Split for `eval` (default: config.data.eval_split, the validation split) or "
    "the annotation file set for `eval_folder` (deepscores_<split>.json; default: test)."
)
_MULTIHOST = flags.DEFINE_bool("multihost", False, "Call jax.distributed.initialize() first.")

COMMANDS = ("all", "generate", "train", "eval", "eval-folder", "robustness", "detect", "export")


def main(argv: list[str]) -> None:
    command, *args = argv[1:] or ["all"]
    command = command.replace("_", "-")
    if command not in COMMANDS:
        raise app.UsageError(f"unknown command {command!r}; use one of {', '.join(COMMANDS)}")
    if command in ("detect", "eval-folder") and not args:
        raise app.UsageError(f"`dwd-jax {command}` needs at least one path")
    logging.getLogger().setLevel(logging.INFO)
    if _MULTIHOST.value:
        import jax

        jax.distributed.initialize()

    from dwd_jax import workflow
    from dwd_jax.training import train

    config, workdir = _CONFIG.value, _WORKDIR.value
    if command == "all":
        result = workflow.run_all(config, workdir)
    elif command == "generate":
        workflow.prepare_data(config)
        return
    elif command == "train":
        train.train_and_evaluate(config, workdir)
        return
    elif command == "eval":
        result = workflow.evaluate_split(config, workdir, split=_SPLIT.value)
    elif command == "eval-folder":
        split = _SPLIT.value or "test"
        result = {a: workflow.evaluate_folder(config, workdir, a, split=split) for a in args}
    elif command == "robustness":
        if len(args) > 1:
            raise app.UsageError("`dwd-jax robustness` takes at most one folder")
        result = workflow.evaluate_robustness(
            config, workdir, args[0] if args else None, split=_SPLIT.value
        )
    elif command == "export":
        result = workflow.export_model(config, workdir)
    else:
        result = workflow.detect_files(config, workdir, args)
    print(json.dumps(_headline(result), indent=2))


# What `run.py` prints at the end: headline figures and the files to open; reports hold the rest.
HEADLINE = (
    "num_pages", "map50", "map", "network_alone_map50", "network_alone_map", "overflow_pages",
    "unconverged_pages", "failed_pages", "num_failed", "eval_report", "overlays",
    "learning_curves", "metrics",
    "checkpoints", "proposals", "coco_results", "validation", "test", "skipped",
    "seconds_per_page", "symbols_per_class", "step", "figures", "map50_vs_clean",
    "network_alone_map50_vs_clean",
)


def _headline(result: dict) -> dict:
    if "network_alone" in result:  # Evaluation results: the figures a reader compares.
        from dwd_jax.eval import evaluation

        return evaluation.headline(result)
    if result and all(isinstance(v, dict) for v in result.values()):  # One per folder.
        return {k: _headline(v) for k, v in result.items()}
    return {k: result[k] for k in HEADLINE if k in result}


def run() -> None:
    """The console entry point (`dwd-jax`, and `python run.py`)."""
    app.run(main)

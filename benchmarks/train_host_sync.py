"""Training steps per second when the host fetches metrics every step against every 10 steps.

The loop fetches a step's metrics (and so waits for the device) only when it logs or saves;
with `train.log_every = 1` it waits every step, as a loop that checks each step's loss on the
host does. While it does not wait, the host decodes and places the next batch as the device
computes. Both runs train the same model on the same synthetic pages; steps/s is measured over
steps 11 to `--steps` from `metrics.jsonl` (the compile is in the first ten).

Run: `python benchmarks/train_host_sync.py [--steps 60] [--crop 256]`; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import jax

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from test_input_pipeline import synthetic_records  # noqa: E402

from configs import tiny  # noqa: E402
from dwd_jax.training import train  # noqa: E402


def steps_per_s(log_every: int, steps: int, crop: int) -> float:
    config = tiny.get_config()
    config.data.crop_size = crop
    config.train.steps = steps
    config.train.log_every = log_every
    config.train.checkpoint_every = 10 * steps  # Only the first and last steps are saved.
    source = synthetic_records(32, height=2 * crop, width=2 * crop, seed=1)
    with tempfile.TemporaryDirectory() as workdir:
        train.train_and_evaluate(config, workdir, source=source)
        records = [json.loads(line) for line in open(Path(workdir) / "metrics.jsonl")]
    # Each record's steps/s covers the steps since the previous record.
    window = [r for r in records if r["step"] > 10]
    seconds = sum((log_every if r["step"] % log_every == 0 else 1) / r["steps_per_s"]
                  for r in window)
    return (steps - 10) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--crop", type=int, default=256)
    args = parser.parse_args()
    every = steps_per_s(1, args.steps, args.crop)
    tenth = steps_per_s(10, args.steps, args.crop)
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}, tiny model, crop {args.crop}\n")
    print("| metrics fetched | steps/s | ratio |\n|---|---|---|")
    print(f"| every step | {every:.2f} | 1.00x |")
    print(f"| every 10 steps | {tenth:.2f} | {tenth / every:.2f}x |")


if __name__ == "__main__":
    main()

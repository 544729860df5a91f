"""Training metrics: a tqdm progress bar, TensorBoard scalars and a JSONL log in the workdir.

Only process 0 writes; other processes get a logger whose methods do nothing visible, so the
training loop has a single code path.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path

import jax
import tensorboardX
import tqdm


class MetricsLogger:
    """Writes `<workdir>/metrics.jsonl` and `<workdir>/tensorboard/`, and shows a progress bar.

    Each record is `{"step": int, "steps_per_s": float, <metric>: float, ...}`; JSONL lines
    from a resumed run simply continue the file.
    """

    def __init__(self, workdir: str | Path, *, first_step: int, total_steps: int):
        self._active = jax.process_index() == 0
        self._last = (first_step, time.perf_counter())
        if not self._active:
            return
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(workdir / "metrics.jsonl", "a")
        self._tensorboard = tensorboardX.SummaryWriter(str(workdir / "tensorboard"))
        self._bar = tqdm.tqdm(initial=first_step, total=total_steps, unit="step", smoothing=0.1)

    def write(self, step: int, metrics: Mapping[str, float]) -> dict[str, float]:
        """Logs `metrics` of `step` (the number of steps done) with the steps/s since last call.

        Returns:
          The record written, steps/s included.
        """
        last_step, last_time = self._last
        now = time.perf_counter()
        record = {k: float(v) for k, v in metrics.items()}
        record["steps_per_s"] = (step - last_step) / max(now - last_time, 1e-9)
        self._last = (step, now)
        if self._active:
            self._jsonl.write(json.dumps({"step": step, **record}) + "\n")
            self._jsonl.flush()
            for name, value in record.items():
                self._tensorboard.add_scalar(name, value, step)
            self._bar.update(step - self._bar.n)
            self._bar.set_postfix({k: f"{v:.4g}" for k, v in record.items()}, refresh=True)
        return record

    def close(self) -> None:
        if self._active:
            self._bar.close()
            self._tensorboard.close()
            self._jsonl.close()

"""Training metrics: a tqdm progress bar, TensorBoard scalars and a JSONL log in the workdir.

Only process 0 writes; other processes get a logger whose methods do nothing visible, so the
training loop has a single code path. The workdir may be a bucket (`gs://...`): tensorboardX
writes there itself, and the JSONL log is rewritten whole (objects cannot be appended to) at
most every `REMOTE_WRITE_S` seconds and on closing.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping

import jax
import tensorboardX
import tqdm
from etils import epath

from dwd_jax import paths

REMOTE_WRITE_S = 60.0  # Each write uploads the whole log: at every record, quadratic traffic.


class MetricsLogger:
    """Writes `<workdir>/metrics.jsonl` and `<workdir>/tensorboard/`, and shows a progress bar.

    Each record is `{"step": int, "steps_per_s": float, <metric>: float, ...}`; JSONL lines
    from a resumed run simply continue the file.
    """

    def __init__(self, workdir: epath.PathLike, *, first_step: int, total_steps: int):
        self._active = jax.process_index() == 0
        self._last = (first_step, time.perf_counter())
        if not self._active:
            return
        workdir = paths.resolve(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        self._path = workdir / "metrics.jsonl"
        if paths.is_remote(workdir):
            self._jsonl = None
            self._text = self._path.read_text() if self._path.exists() else ""
            self._written = -REMOTE_WRITE_S  # The first record goes out at once.
        else:
            self._jsonl = self._path.open("a")  # Appended line by line: `tail -f` follows.
        self._tensorboard = tensorboardX.SummaryWriter(os.fspath(workdir / "tensorboard"))
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
            line = json.dumps({"step": step, **record}) + "\n"
            if self._jsonl is None:
                self._text += line
                if now - self._written >= REMOTE_WRITE_S:
                    self._path.write_text(self._text)
                    self._written = now
            else:
                self._jsonl.write(line)
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
            if self._jsonl is None:
                self._path.write_text(self._text)
            else:
                self._jsonl.close()

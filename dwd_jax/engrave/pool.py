"""A process pool that survives its workers: a task whose worker dies is reported, not fatal.

verovio aborts the whole process on a few corpus files (C++ asserts), and
`concurrent.futures.ProcessPoolExecutor` fails every pending task when one worker dies. Here
each worker runs one task at a time over its own pipe; a dead worker (or one past the time
limit) is replaced and its task reported as a `WorkerDied`.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import wait


@dataclasses.dataclass(frozen=True)
class WorkerDied:
    """The result of a task whose worker process died or ran out of time."""

    reason: str


@dataclasses.dataclass(frozen=True)
class TaskFailed:
    """The result of a task that raised: the exception's type and message."""

    reason: str


def _worker_loop(conn, fn: Callable) -> None:
    while True:
        task = conn.recv()
        if task is None:
            return
        try:
            result = fn(task)
        except Exception as e:  # reported to the parent; the worker carries on
            result = TaskFailed(f"{type(e).__name__}: {e}")
        conn.send(result)


class _Worker:
    def __init__(self, ctx, fn: Callable):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_loop, args=(child, fn), daemon=True)
        self.process.start()
        child.close()
        self.task = None
        self.started = 0.0

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()


def map_isolated(fn: Callable, next_task: Callable[[], object | None], *, workers: int,
                 timeout_s: float) -> Iterator[tuple[object, object]]:
    """Runs `fn(task)` in `workers` separate processes; yields (task, result) as they finish.

    Tasks are asked for only when a worker is free, so the caller can decide from the results
    so far whether more are needed. The run ends when `next_task()` returns None with no task
    in flight. `fn` must be importable (processes are spawned, not forked: the parent may hold
    threads, e.g. JAX's).

    Args:
      fn: a module-level function of one task.
      next_task: returns the next picklable task, or None for "nothing (more) to do now".
      workers: number of worker processes (>= 1).
      timeout_s: a task running longer is killed and reported as `WorkerDied`.

    Yields:
      (task, result); result is fn's return value, `TaskFailed` if it raised, or `WorkerDied`.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    ctx = mp.get_context("spawn")
    pool = [_Worker(ctx, fn) for _ in range(workers)]
    try:
        while True:
            for w in pool:
                if w.task is None:
                    task = next_task()
                    if task is None:
                        break
                    w.task, w.started = (task,), time.monotonic()
                    w.conn.send(task)
            busy = [w for w in pool if w.task is not None]
            if not busy:
                return
            ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy],
                         timeout=1.0)
            now = time.monotonic()
            for i, w in enumerate(pool):
                if w.task is None:
                    continue
                result = None
                if w.conn in ready:
                    try:
                        result = w.conn.recv()
                    except (EOFError, OSError):
                        result = WorkerDied(f"worker exited with code {w.process.exitcode}")
                elif w.process.sentinel in ready:
                    w.process.join()
                    result = WorkerDied(f"worker exited with code {w.process.exitcode}")
                elif now - w.started > timeout_s:
                    result = WorkerDied(f"timed out after {timeout_s:.0f} s")
                if result is None:
                    continue
                (task,) = w.task
                w.task = None
                if isinstance(result, WorkerDied):
                    w.stop()
                    pool[i] = _Worker(ctx, fn)
                yield task, result
    finally:
        for w in pool:
            if w.process.is_alive() and w.task is None:
                try:
                    w.conn.send(None)
                except OSError:
                    pass
            w.process.join(timeout=1.0)
            w.stop()

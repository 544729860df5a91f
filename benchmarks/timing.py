"""Timing helpers shared by the benchmark scripts (run as `python benchmarks/<name>.py`)."""

from __future__ import annotations

import time
from collections.abc import Callable

import jax
import numpy as np


def best_of(fn: Callable[[], object], rounds: int) -> float:
    """Fastest wall-clock seconds of `fn()` over `rounds` calls (the least disturbed run)."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def median_jax(fn: Callable, *args, repeats: int = 7) -> float:
    """Median seconds of `fn(*args)`, results awaited, after one warm-up call (which compiles)."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times))

"""Several processes, one job: who prepares data, who writes files, whose pages are whose.

On a pod or a multi-GPU host every process runs the same command (`--multihost`). Process 0,
the primary, prepares shared data and writes reports and logs while the others wait at a
barrier; pages to evaluate or detect are divided among processes and gathered once at the
end. With one process every function here is a no-op or the identity.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import Any, TypeVar

import jax
import numpy as np
from jax.experimental import multihost_utils

T = TypeVar("T")


def is_multiprocess() -> bool:
    """Whether this job runs as several processes."""
    return jax.process_count() > 1


def is_primary() -> bool:
    """Whether this process writes shared files (process 0)."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Waits until every process reaches the barrier `name` (same name on all processes)."""
    if is_multiprocess():
        multihost_utils.sync_global_devices(name)


def share(items: Sequence[T]) -> list[T]:
    """This process's share of `items`: every `process_count`-th, from its index."""
    return list(items[jax.process_index() :: jax.process_count()])


def gather(value: Any) -> list[Any]:
    """Every process's `value` (any picklable object), in process order, on every process.

    Two collectives however large the value: its byte length, then the bytes padded to the
    longest.
    """
    if not is_multiprocess():
        return [value]
    data = np.frombuffer(pickle.dumps(value), np.uint8)
    lengths = multihost_utils.process_allgather(np.int64(len(data)))
    padded = np.zeros(int(lengths.max()), np.uint8)
    padded[: len(data)] = data
    every = multihost_utils.process_allgather(padded)
    return [pickle.loads(every[i, :n].tobytes()) for i, n in enumerate(lengths.tolist())]


def unshare(shares: Sequence[Sequence[T]]) -> list[T]:
    """`share`'s inverse: the gathered shares of every process, back in the items' order."""
    out: list[T] = []
    for i in range(max(map(len, shares), default=0)):
        out += [s[i] for s in shares if i < len(s)]
    return out

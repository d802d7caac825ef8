"""How many torch threads a fine-tune runs with, pinned for its whole length.

A CPU matmul or reduction split over n threads adds its terms in an order that depends on n, so
the same examples, seed and settings give other weights with another thread count (and, after a
few epochs, another model). The count must therefore not depend on what ran before in the
process: an execution shard run in this process (`use_threads`) or a benchmark may have changed
torch's setting. `pinned_threads` sets the count the settings name for the fine-tune and puts the
previous one back afterwards, so inference elsewhere in the process is unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


def training_threads(threads: int | None = None) -> int:
    """`threads` when given, else OMP_NUM_THREADS when it is a positive integer, else the
    machine's cores: a function of the settings and the environment, never of the process's past."""
    if threads:
        return int(threads)
    try:
        from_env = int(os.environ.get("OMP_NUM_THREADS", "").strip() or 0)
    except ValueError:
        from_env = 0
    return from_env if from_env > 0 else (os.cpu_count() or 1)


@contextmanager
def pinned_threads(threads: int) -> Iterator[int]:
    """Run the block with `threads` torch threads, then restore the count it had before."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)


__all__ = ["pinned_threads", "training_threads"]

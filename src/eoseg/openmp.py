"""OpenMP threads that sleep while they wait, for prediction (no torch import here: it must run before torch).

torch's OpenMP threads spin for a while after each parallel region (libgomp's default), so on the CPU every
gap between two forwards (blending, taking the next batch) and every time a reader or writer thread takes
one of their cores, the waiting threads burn a core doing nothing. ``OMP_WAIT_POLICY=PASSIVE`` makes them
sleep at once; libgomp reads it once, when torch loads. Measured 2026-12-03 (benchmarks/predict.py (d),
4,096², 3x3-conv, 2 cores, load 5-7, alternating): eoseg predict 3.78 / 4.21 -> 4.65 / 4.94 Mpx/s, its CPU
2.15 / 2.05 -> 1.83 / 1.79 core-s; the bare forward 8.14 / 8.17 -> 8.44 / 8.90 Mpx/s.
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY = "PASSIVE"
"""OpenMP wait policy of prediction processes, unless the environment sets one."""


def wait_policy() -> str:
    """The policy a prediction process gets: the environment's ``OMP_WAIT_POLICY``, else :data:`WAIT_POLICY`."""
    return os.environ.get("OMP_WAIT_POLICY", WAIT_POLICY)


def sleep_while_waiting() -> bool:
    """Set ``OMP_WAIT_POLICY`` to :func:`wait_policy` in this process's environment if torch has not loaded
    yet (then it takes effect, and child processes inherit it); returns whether it did."""
    if "torch" in sys.modules:
        return False
    os.environ["OMP_WAIT_POLICY"] = wait_policy()
    return True

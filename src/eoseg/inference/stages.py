"""Where a scene prediction spends its time: seconds per pipeline stage, summed over the threads running it.

Cheap enough to stay on always (two ``perf_counter`` calls and a locked float addition per window, batch or
tile), so ``SceneOutputs.stages`` and ``benchmarks/predict.py`` can show the breakdown of any run. Stages
that run in background threads (reading, writing) overlap the forward pass: their sum exceeds the wall time
when the pipeline overlaps well; ``wait`` is the time the forward loop sat idle waiting for windows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

STAGES = {
    "read": "read",
    "prepare": "band math+normalise",
    "wait": "waiting for windows",
    "forward": "forward",
    "blend": "blend",
    "write": "encode+write",
    "finish": "COG finish",
}
"""Stage keys in pipeline order, with the names printed for them."""


class StageClock:
    """Seconds per stage (:data:`STAGES`), added from any thread."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] += seconds

    @contextmanager
    def time(self, stage: str) -> Iterator[None]:
        """Time the ``with`` block into ``stage``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - start)

    @staticmethod
    def format(seconds: dict[str, float]) -> str:
        """One line: ``read 1.20 s | band math+normalise 0.80 s | ...`` (e.g. of ``SceneOutputs.stages``)."""
        return " | ".join(f"{STAGES.get(k, k)} {v:.2f} s" for k, v in seconds.items())

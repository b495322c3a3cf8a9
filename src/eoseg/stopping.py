"""Stop requests (SIGINT / SIGTERM) that a long loop honours at its next safe point.

Raising :class:`KeyboardInterrupt` from a signal handler can land anywhere in the main thread, also between
a lock's acquisition and the ``with`` block that releases it (``queue.Queue.put``, ``ThreadPoolExecutor.submit``):
the cleanup that follows then waits for that lock forever. A loop that checks often (the predictor checks
once per batch) runs inside :func:`safe_points`; while it does, :func:`request_stop` only records the
request and the loop raises the :class:`KeyboardInterrupt` itself at :func:`stop_point`, where no lock is
held. Outside such a loop the handler raises at once, as before.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

_state = {"requested": False, "loops": 0}


def reset() -> None:
    """Forget an earlier request (each command starts without one)."""
    _state["requested"] = False


def request_stop() -> bool:
    """Record a stop request when a loop in :func:`safe_points` runs, and say so (that loop raises it); False:
    no such loop, nothing recorded, the caller raises at once."""
    if _state["loops"] == 0:
        return False
    _state["requested"] = True
    return True


def announce(line: str) -> None:
    """Print ``line`` on stderr from a signal handler, so that a deferred stop is seen at once. ``os.write``, not
    ``sys.stderr`` or the console: a handler that writes to a stream the main thread is writing to fails with a
    reentrant call."""
    os.write(2, f"{line}\n".encode())


def stop_point() -> None:
    """Raise :class:`KeyboardInterrupt` when a stop was requested (once: the request is taken)."""
    if _state["requested"]:
        _state["requested"] = False
        raise KeyboardInterrupt


@contextmanager
def safe_points() -> Iterator[None]:
    """Run a loop that calls :func:`stop_point` often; a request made inside is raised at the latest on leaving."""
    _state["loops"] += 1
    try:
        yield
    finally:
        _state["loops"] -= 1
    stop_point()

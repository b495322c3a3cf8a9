"""Streaming writer of a scene's output rasters: finished row bands are encoded and written in a
background thread while the next windows run, then every raster becomes a COG atomically.

At most ``max_pending`` bands wait in the queue, so memory stays bounded when writing is slower than
the model. If anything fails, temporary files are removed and existing outputs are left untouched.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from pathlib import Path

from eoseg.geo.cog import TiledRasterWriter
from eoseg.inference.blend import BlendedBand
from eoseg.inference.outputs import OutputRaster

_DONE = object()


class SceneWriter:
    """Writes blended row bands into every output raster of a scene, in a background thread."""

    def __init__(self, outputs: Sequence[OutputRaster], max_pending: int = 2):
        self.outputs = list(outputs)
        self._writers: list[TiledRasterWriter] = []
        try:
            for out in self.outputs:
                self._writers.append(TiledRasterWriter(out.path, out.spec))
        except BaseException:
            self._abort_writers()
            raise
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="eoseg-write", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            band = self._queue.get()
            if band is _DONE:
                return
            if self._error is not None:
                continue  # keep draining so that the producer never blocks
            try:
                for out, writer in zip(self.outputs, self._writers, strict=True):
                    data, valid = out.encode(band)
                    writer.write_rows(band.row_off, data, valid)
            except BaseException as exc:  # re-raised in the caller's thread by submit / finish
                self._error = exc

    def submit(self, band: BlendedBand) -> None:
        """Queue a finished band (blocks while ``max_pending`` bands are waiting)."""
        if self._error is not None:
            self.abort()
            raise self._error
        self._queue.put(band)

    def finish(self) -> list[Path]:
        """Wait for the queued bands, then turn every raster into its COG; returns the paths."""
        self._stop()
        if self._error is not None:
            self._abort_writers()
            raise self._error
        done = []
        try:
            for writer in self._writers:
                done.append(writer.finish())
        finally:
            self._abort_writers()
        return done

    def abort(self) -> None:
        """Stop writing and remove the temporary files; finished outputs of earlier runs stay."""
        self._stop()
        self._abort_writers()

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_DONE)
            self._thread.join()

    def _abort_writers(self) -> None:
        for writer in self._writers:
            writer.abort()

    def __enter__(self) -> SceneWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            self.abort()

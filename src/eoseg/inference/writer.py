"""Streaming writer of a scene's output rasters: finished tiles are encoded and written block by block in
a background thread while the next windows run, then every raster becomes a COG atomically (the rasters
in parallel threads; GDAL compresses with every core).

At most ``max_pending`` groups of tiles wait in the queue, so memory stays bounded when writing is slower
than the model. If anything fails, temporary files are removed and existing outputs are left untouched.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from eoseg.geo.cog import DEFAULT_COMPRESS, TiledRasterWriter
from eoseg.inference.blend import TILE, BlendedTile
from eoseg.inference.outputs import OutputRaster
from eoseg.inference.stages import StageClock

_DONE = object()


class SceneWriter:
    """Writes blended tiles into every output raster of a scene, in a background thread."""

    def __init__(
        self,
        outputs: Sequence[OutputRaster],
        max_pending: int = 4,
        block: int = TILE,
        clock: StageClock | None = None,
        compress: str = DEFAULT_COMPRESS,
    ):
        """``block``: the blend's tile size, used as the temporary files' block size (whole-block writes);
        ``clock``: where the ``write`` (encode + write blocks) and ``finish`` (COGs) seconds go;
        ``compress``: the COGs' compression (``predict.compress``)."""
        self.outputs = list(outputs)
        self.clock = clock or StageClock()
        self._writers: list[TiledRasterWriter] = []
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="eoseg-write", daemon=True)
        try:  # an interrupt anywhere in here (even while the thread starts) must not leave temporaries
            for out in self.outputs:
                self._writers.append(TiledRasterWriter(out.path, out.spec, compress, block=block))
            self._thread.start()
        except BaseException:
            self.abort()
            raise

    def _run(self) -> None:
        while True:
            tiles = self._queue.get()
            if tiles is _DONE:
                return
            if self._error is not None:
                continue  # keep draining so that the producer never blocks
            try:
                with self.clock.time("write"):
                    for tile in tiles:
                        for out, writer in zip(self.outputs, self._writers, strict=True):
                            data, valid = out.encode(tile)
                            writer.write_block(tile.row_off, tile.col_off, data, valid)
            except BaseException as exc:  # re-raised in the caller's thread by submit / finish
                self._error = exc

    def submit(self, tiles: Sequence[BlendedTile]) -> None:
        """Queue finished tiles (blocks while ``max_pending`` groups are waiting)."""
        if self._error is not None:
            self.abort()
            raise self._error
        if tiles:
            self._queue.put(list(tiles))

    def finish(self) -> list[Path]:
        """Wait for the queued bands, then turn every raster into its COG; returns the paths."""
        self._stop()
        if self._error is not None:
            self._abort_writers()
            raise self._error
        try:
            with (
                self.clock.time("finish"),
                ThreadPoolExecutor(max_workers=len(self._writers) or 1, thread_name_prefix="eoseg-cog") as pool,
            ):
                futures = [pool.submit(writer.finish) for writer in self._writers]
            return [future.result() for future in futures]  # the first failure, after all have stopped
        finally:
            self._abort_writers()

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

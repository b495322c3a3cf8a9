"""Tiled GeoTIFF writing by blocks or row bands, and Cloud-Optimized GeoTIFF finalisation (rasterio / GDAL).

A :class:`TiledRasterWriter` writes a temporary tiled GeoTIFF, and on :meth:`~TiledRasterWriter.finish`
turns it into a COG (``rasterio.shutil.copy(driver="COG")``, with overviews) written atomically onto the
target. It receives either blocks in any order (:meth:`~TiledRasterWriter.write_block`, written at once:
memory is one block) or rows in order (:meth:`~TiledRasterWriter.write_rows`, any band height, buffered
until a full row of tiles is complete: memory is one tile row plus the band being added).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from eoseg.geo.atomic import atomic_path, temporary_beside, write_cause, write_failed
from eoseg.geo.raster import check_written

BLOCK_SIZE = 512
DEFLATE_LEVEL = 1
"""DEFLATE level of the COGs (GDAL uses libdeflate): level 1 takes about 35 % less CPU than GDAL's default 6 for
files about 5 % larger (``benchmarks/predict.py`` scene); every DEFLATE reader reads any level."""
GDAL_ENV = {"GDAL_TIFF_INTERNAL_MASK": True, "GDAL_CACHEMAX": 64 * 2**20}
"""GDAL settings while reading and writing scenes: masks inside the files, and a block cache of 64 MB
(rasterio sets it in bytes; GDAL's default, 5 % of the machine's memory, would grow with the scene)."""


@dataclass(frozen=True)
class RasterSpec:
    """Grid and encoding of an output raster."""

    width: int
    height: int
    count: int
    dtype: str
    crs: CRS | None
    transform: Affine
    nodata: float | None = None
    use_mask: bool = False  # store validity as an internal mask band (when no nodata value fits the dtype)
    resampling: str = "average"  # overview resampling: average for probabilities, nearest for classes
    band_names: tuple[str, ...] = ()
    nbits: int | None = None  # 16 with dtype float32: stored as IEEE half floats (GDAL < 3.11 has no Float16)


class TiledRasterWriter:
    """Write a raster block by block or row band by row band; :meth:`finish` makes the COG at ``target`` atomically."""

    def __init__(
        self,
        target: str | os.PathLike[str],
        spec: RasterSpec,
        compress: str = "deflate",
        block: int | None = None,
    ):
        """``block``: tile side of the temporary file (a multiple of 16; the COG always has
        :data:`BLOCK_SIZE` blocks); default :data:`BLOCK_SIZE`, or less for a small raster."""
        self.target = Path(target)
        self.spec = spec
        self.compress = compress
        self.tmp = temporary_beside(self.target, ".tiles.tif")
        if block is not None and (block < 16 or block % 16):
            raise ValueError(f"block must be a positive multiple of 16, got {block}")
        self.block = block or min(BLOCK_SIZE, _round_up(max(spec.height, spec.width), 16))
        profile = {
            "driver": "GTiff",
            "width": spec.width,
            "height": spec.height,
            "count": spec.count,
            "dtype": spec.dtype,
            "crs": spec.crs,
            "transform": spec.transform,
            "nodata": spec.nodata,
            "photometric": "minisblack",  # GDAL's default for 3/4 uint8 bands is RGB(A): class 4 would be alpha
            "tiled": True,
            "blockxsize": self.block,
            "blockysize": self.block,
            "compress": "zstd",
            "zstd_level": 1,
            "bigtiff": "if_safer",
        }
        if spec.nbits is not None:
            profile["nbits"] = spec.nbits
        try:
            with rasterio.Env(**GDAL_ENV), warnings.catch_warnings():
                if spec.crs is None:  # the caller has already warned that the scene has no georeference
                    warnings.simplefilter("ignore", NotGeoreferencedWarning)
                self._ds = rasterio.open(self.tmp, "w", **profile)
        except BaseException:  # an interrupt or a GDAL error here must not leave the temporary behind
            self.tmp.unlink(missing_ok=True)
            raise
        try:
            for i, name in enumerate(spec.band_names[: spec.count], start=1):
                self._ds.set_band_description(i, name)
        except BaseException:
            self.abort()
            raise
        self._pending: list[tuple[np.ndarray, np.ndarray | None]] = []
        self._pending_rows = 0
        self._next_row = 0  # first row not yet written to the file by write_rows
        self._block_pixels = 0  # pixels written by write_block

    def write_block(
        self, row_off: int, col_off: int, data: np.ndarray, valid: np.ndarray | None = None
    ) -> None:
        """Write the block ``data`` ``(count, h, w)`` at ``(row_off, col_off)`` now (any order; blocks must not
        overlap, and not mix with :meth:`write_rows`). ``valid`` ``(h, w)`` is needed with a mask band."""
        if self._next_row or self._pending_rows:
            raise ValueError("write_block cannot follow write_rows on the same raster")
        if self.spec.use_mask and valid is None:
            raise ValueError("this raster stores a validity mask: pass valid")
        _, h, w = data.shape
        window = Window(col_off, row_off, w, h)
        try:
            self._ds.write(data.astype(self.spec.dtype, copy=False), window=window)
            if self.spec.use_mask:
                with rasterio.Env(**GDAL_ENV):
                    self._ds.write_mask(np.where(valid, 255, 0).astype(np.uint8), window=window)
        except Exception as exc:  # GDAL write errors (disk full) name the output, not the temporary
            cause = write_cause(self.target, exc)
            if cause is None:
                raise
            raise write_failed(self.target, cause) from exc
        self._block_pixels += h * w

    def write_rows(self, row_off: int, data: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Add rows ``[row_off, row_off + n)``: ``data`` is ``(count, n, width)``; ``valid`` ``(n, width)``.

        Rows must come in order without gaps. ``valid`` is needed when the spec uses a mask band.
        """
        expected = self._next_row + self._pending_rows
        if self._block_pixels:
            raise ValueError("write_rows cannot follow write_block on the same raster")
        if row_off != expected:
            raise ValueError(f"rows must be written in order: expected row {expected}, got {row_off}")
        if self.spec.use_mask and valid is None:
            raise ValueError("this raster stores a validity mask: pass valid")
        self._pending.append((data.astype(self.spec.dtype, copy=False), valid))
        self._pending_rows += data.shape[1]
        full = (self._pending_rows // self.block) * self.block
        if self._next_row + self._pending_rows == self.spec.height:
            full = self._pending_rows
        if full:
            try:
                self._write(full)
            except Exception as exc:  # GDAL write errors (disk full) name the output, not the temporary
                cause = write_cause(self.target, exc)
                if cause is None:
                    raise
                raise write_failed(self.target, cause) from exc

    def _write(self, n: int) -> None:
        data = np.concatenate([d for d, _ in self._pending], axis=1)
        window = Window(0, self._next_row, self.spec.width, n)
        self._ds.write(data[:, :n], window=window)
        if self.spec.use_mask:
            valid = np.concatenate([v for _, v in self._pending], axis=0)
            with rasterio.Env(**GDAL_ENV):
                self._ds.write_mask(np.where(valid[:n], 255, 0).astype(np.uint8), window=window)
            rest = [(data[:, n:], valid[n:])] if data.shape[1] > n else []
        else:
            rest = [(data[:, n:], None)] if data.shape[1] > n else []
        self._pending = rest
        self._pending_rows -= n
        self._next_row += n

    def finish(self) -> Path:
        """Check that every row was written, convert to a COG at the target (atomic) and clean up."""
        try:
            if self._block_pixels:
                if self._block_pixels != self.spec.height * self.spec.width:
                    raise ValueError(
                        f"{self.target}: only {self._block_pixels} of "
                        f"{self.spec.height * self.spec.width} pixels were written"
                    )
            elif self._next_row != self.spec.height:
                raise ValueError(
                    f"{self.target}: only {self._next_row} of {self.spec.height} rows were written"
                )
            self._ds.close()
            with atomic_path(self.target) as tmp:
                to_cog(
                    self.tmp,
                    tmp,
                    resampling=self.spec.resampling,
                    compress=self.compress,
                    nbits=self.spec.nbits,
                )
                check_written(tmp, self.target)
            return self.target
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop the temporary file; the target is left as it was."""
        if not self._ds.closed:
            self._ds.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> TiledRasterWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is not None:
            self.abort()


def to_cog(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    resampling: str = "average",
    compress: str = "deflate",
    nbits: int | None = None,
) -> None:
    """Copy a GeoTIFF to a Cloud-Optimized GeoTIFF with internal overviews (GDAL's COG driver)."""
    extra = {"nbits": nbits} if nbits is not None else {}
    if compress.lower() == "deflate":
        extra["level"] = DEFLATE_LEVEL
    with rasterio.Env(**GDAL_ENV):
        rasterio.shutil.copy(
            str(src),
            str(dst),
            driver="COG",
            compress=compress,
            predictor="yes",
            blocksize=BLOCK_SIZE,
            overview_resampling=resampling,
            overviews="auto",
            bigtiff="if_safer",
            num_threads="all_cpus",
            **extra,
        )


def _round_up(n: int, multiple: int) -> int:
    return max(multiple, -(-n // multiple) * multiple)

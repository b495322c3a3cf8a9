"""Tiled GeoTIFF writing by blocks or row bands, and Cloud-Optimized GeoTIFF finalisation (rasterio / GDAL).

A :class:`TiledRasterWriter` writes a temporary tiled GeoTIFF, and on :meth:`~TiledRasterWriter.finish`
turns it into a COG (``rasterio.shutil.copy(driver="COG")``, with overviews) written atomically onto the
target. It receives either blocks in any order (:meth:`~TiledRasterWriter.write_block`, written at once:
memory is one block) or rows in order (:meth:`~TiledRasterWriter.write_rows`, any band height, buffered
until a full row of tiles is complete: memory is one tile row plus the band being added).

The temporaries are uncompressed (the COG driver reads them once more; compressing them cost more CPU
than the COG itself, ``benchmarks/predict.py`` (d)), so they take the raw size on disk while a raster is
written (1 byte per pixel and uint8 band, plus 1 for a mask band). The overview levels are reduced from
each block as it arrives (:class:`OverviewPyramid`, GDAL's own arithmetic), so the COG finish only copies
and compresses instead of re-reading the whole raster to compute them after the last block.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import MaskFlags
from rasterio.windows import Window

from eoseg.geo.atomic import atomic_path, temporary_beside, write_cause, write_failed
from eoseg.geo.raster import COMPRESS_LEVELS, check_written, compression_options, no_grid_warning

BLOCK_SIZE = 512
DEFAULT_COMPRESS = "zstd"
"""Compression of the COGs unless told otherwise (``predict.compress``'s default). ZSTD level 1 with
predictor: the same pixels as DEFLATE level 1, the COG finish of a 4,096² scene's probability + mask rasters
0.55 -> 0.31 core-s and the files ~6 % smaller (2026-12-03, ``benchmarks/predict.py`` scene, 3x3-conv). GDAL
>= 2.3 (so rasterio, QGIS 3, titiler) reads it; for a reader without ZSTD (older GDAL, libtiff built without
it, some Java/web TIFF readers) write ``predict.compress: deflate``, the most portable. It compresses the data
directories; GDAL writes the 1-bit internal mask directories DEFLATE whatever it is (no option: docs/design.md)."""


def compression_of(src: Any) -> str:
    """The compression of an open raster as :func:`to_cog` takes it (``zstd``, ``deflate``, ... or ``none``)."""
    return src.compression.name.lower() if src.compression is not None else "none"


def written_compression(src: Any) -> str:
    """The compression to write a product derived from ``src`` with: ``src``'s own when it is one the COGs
    take (:data:`COMPRESS_LEVELS`: so the ``predict.compress`` of the run that wrote it decides), else
    :data:`DEFAULT_COMPRESS` (an uncompressed or lossy, e.g. JPEG, input is not copied)."""
    compress = compression_of(src)
    return compress if compress in COMPRESS_LEVELS else DEFAULT_COMPRESS


GDAL_ENV = {"GDAL_TIFF_INTERNAL_MASK": True, "GDAL_CACHEMAX": 32 * 2**20}
"""GDAL settings while reading and writing scenes: masks inside the files, and a block cache of 32 MB
(rasterio sets it in bytes; GDAL's default, 5 % of the machine's memory, would grow with the scene). A scene
larger than the cache fills it: 64 MB made 16,384² peak ~60 MB above 4,096² (``benchmarks/predict.py`` (b));
32 MB holds the input blocks of one band of a 4,096-px strip, and predicted as fast (3x3-conv, 4,096², part d)."""


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
    tags: tuple[tuple[str, str], ...] = ()  # dataset metadata, e.g. a class mask's ``classes``


def write_mask(dataset: Any, valid: np.ndarray, window: Window) -> None:
    """Write ``valid`` into the internal mask band of ``dataset`` (opened for writing); the first write creates
    the band inside the file (:data:`GDAL_ENV`; entering a ``rasterio.Env`` per block cost more than the write)."""
    mask = np.asarray(valid, dtype=bool).view(np.uint8) * np.uint8(255)  # any truthy dtype, like np.where
    if dataset.mask_flag_enums[0] == [MaskFlags.per_dataset]:
        dataset.write_mask(mask, window=window)
        return
    with rasterio.Env(**GDAL_ENV):
        dataset.write_mask(mask, window=window)


def overview_shapes(height: int, width: int, threshold: int = BLOCK_SIZE) -> list[tuple[int, int]]:
    """``(height, width)`` of each overview level: halved (rounded up) until both sides fit ``threshold``,
    GDAL's COG rule whenever the sides divide by 2 at every level (GDAL rounds odd sides down)."""
    shapes = []
    while height > threshold or width > threshold:
        height, width = -(-height // 2), -(-width // 2)
        shapes.append((height, width))
    return shapes


def _pairs(array: np.ndarray, fill: float | bool = 0) -> np.ndarray:
    """``array`` (..., h, w) padded with ``fill`` to even sides."""
    h, w = array.shape[-2:]
    if h % 2 == 0 and w % 2 == 0:
        return array
    pad = [(0, 0)] * (array.ndim - 2) + [(0, h % 2), (0, w % 2)]
    return np.pad(array, pad, constant_values=fill)


def _halve_average_masked(data: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2x2 average of uint8 ``data`` (C, h, w) over the ``valid`` pixels of each square, rounded half up
    (GDAL's ``average`` with a mask band); a square without a valid pixel becomes 0 and invalid."""
    if valid.all() and data.shape[-2] % 2 == 0 and data.shape[-1] % 2 == 0:
        total = data[:, ::2, ::2].astype(np.uint16)
        total += data[:, 1::2, ::2]
        total += data[:, ::2, 1::2]
        total += data[:, 1::2, 1::2]
        total += 2
        total >>= 2
        return total.astype(np.uint8), np.ones(total.shape[1:], bool)
    data, valid = _pairs(np.where(valid, data, 0)), _pairs(valid, False)
    count = (valid[::2, ::2].astype(np.uint16) + valid[1::2, ::2] + valid[::2, 1::2] + valid[1::2, 1::2])
    total = data[:, ::2, ::2].astype(np.uint16) + data[:, 1::2, ::2] + data[:, ::2, 1::2] + data[:, 1::2, 1::2]
    out = (2 * total + count) // np.maximum(2 * count, 1)  # floor(total / count + 1/2)
    return out.astype(np.uint8), count > 0


def _halve_average_nan(data: np.ndarray) -> np.ndarray:
    """2x2 average of float32 ``data`` (C, h, w) over its finite values, in float64 (GDAL's ``average`` with
    nodata NaN); NaN where a square has none."""
    data = _pairs(data, np.nan).astype(np.float64)
    finite = np.isfinite(data)
    values = np.where(finite, data, 0.0)
    total = values[:, ::2, ::2] + values[:, 1::2, ::2] + values[:, ::2, 1::2] + values[:, 1::2, 1::2]
    count = (finite[:, ::2, ::2].astype(np.uint8) + finite[:, 1::2, ::2] + finite[:, ::2, 1::2]
             + finite[:, 1::2, 1::2])
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total / count).astype(np.float32)  # 0 / 0: NaN


OVERVIEW_BUFFER = 8 * 2**20
"""Bytes of overview pieces an :class:`OverviewPyramid` gathers into whole blocks of its level files before
writing them: one write per block of a level instead of one per written block and level (a 4,096² probability
+ mask pair: 2,304 writes of 32-128 px pieces, data and masks, become 252 of whole blocks). When more is
open (a walk in strips leaves the blocks on a strip border open until the next strip), the oldest open
block is written piece by piece, so memory stays bounded whatever the scene's sides."""


@dataclass
class _OpenBlock:
    """A block of an overview level being gathered: its pixels so far, and which pieces they came in."""

    data: np.ndarray  # (count, h, w)
    valid: np.ndarray | None  # (h, w) with a mask band
    missing: int  # pixels not received yet
    pieces: list[Window]  # received, in the block's coordinates

    @property
    def nbytes(self) -> int:
        return self.data.nbytes + (self.valid.nbytes if self.valid is not None else 0)


class OverviewPyramid:
    """The overview levels of a raster, reduced block by block as the blocks are written, each level into its
    own temporary tiled GeoTIFF beside the target (its pieces gathered into whole blocks, :data:`OVERVIEW_BUFFER`).

    Level ``k + 1`` is the 2x2 reduction of level ``k``, with GDAL's arithmetic for the COG driver's
    resamplings that eoseg writes (``average`` of a uint8 raster with a mask band, ``average`` of a float32
    raster with nodata NaN, ``nearest``), so the COG holds the overviews GDAL would have computed after the
    last block. :meth:`supports` says whether a raster qualifies: its sides must divide by 2 at every level
    (GDAL rounds an odd side down, 1,025 -> 512, and then resamples by a factor a little over 2, which a 2x2
    reduction cannot reproduce: such rasters get GDAL's overviews at the finish), and blocks must start on
    multiples of ``2 ** levels``, which the writer's blocks do when ``block`` is such a multiple.
    """

    def __init__(self, target: Path, spec: RasterSpec, block: int, buffer: int | None = None):
        """``buffer``: bytes of open blocks (default :data:`OVERVIEW_BUFFER`)."""
        self.spec = spec
        self.shapes = overview_shapes(spec.height, spec.width)
        self.paths: list[Path] = []
        self._datasets: list[Any] = []
        self._blocks = [(min(block, _round_up(h, 16)), min(block, _round_up(w, 16))) for h, w in self.shapes]
        self._buffer = OVERVIEW_BUFFER if buffer is None else buffer
        self._open: dict[tuple[int, int, int], _OpenBlock] = {}  # (level index, block row, block column)
        self._unbuffered: dict[tuple[int, int, int], int] = {}  # blocks written piece by piece: pixels missing
        self._open_bytes = 0
        try:
            for k, (height, width) in enumerate(self.shapes, start=1):
                self.paths.append(temporary_beside(target, f".ovr{k}.tif"))
                blockysize, blockxsize = self._blocks[k - 1]
                profile = {
                    "driver": "GTiff", "width": width, "height": height, "count": spec.count, "dtype": spec.dtype,
                    "nodata": spec.nodata, "photometric": "minisblack", "tiled": True,
                    "blockxsize": blockxsize, "blockysize": blockysize, "bigtiff": "if_safer",
                }
                with rasterio.Env(**GDAL_ENV), no_grid_warning():  # georeferenced by the VRT
                    self._datasets.append(rasterio.open(self.paths[-1], "w", **profile))
        except BaseException:
            self.abort()
            raise

    @staticmethod
    def supports(spec: RasterSpec, block: int) -> bool:
        """Whether the levels of ``spec`` can be built from blocks of side ``block`` with GDAL's arithmetic."""
        shapes = overview_shapes(spec.height, spec.width)
        levels = len(shapes)
        if not levels or block % 2**levels or spec.nbits is not None:
            return False
        sides = [(spec.height, spec.width), *shapes[:-1]]  # what each level halves
        if any(h % 2 or w % 2 for h, w in sides):  # GDAL rounds odd sides down, resampling by 2.00x (see class doc)
            return False
        if spec.resampling == "nearest":
            return True
        if spec.resampling != "average":
            return False
        if spec.dtype == "uint8":
            return spec.use_mask and spec.nodata is None
        return spec.dtype == "float32" and not spec.use_mask and spec.nodata is not None and np.isnan(spec.nodata)

    def add(self, row_off: int, col_off: int, data: np.ndarray, valid: np.ndarray | None) -> None:
        """Reduce the block ``data`` (count, h, w) written at ``(row_off, col_off)`` into every level."""
        for k in range(1, len(self._datasets) + 1):
            if self.spec.resampling == "nearest":
                data = data[:, ::2, ::2]
                valid = valid[::2, ::2] if valid is not None else None
            elif self.spec.use_mask:
                data, valid = _halve_average_masked(data, valid)
            else:
                data = _halve_average_nan(data)
            self._gather(k - 1, row_off >> k, col_off >> k, data, valid)
        while self._open_bytes > self._buffer:
            self._write_pieces(next(iter(self._open)))  # the oldest open block

    def _gather(self, level: int, row: int, col: int, data: np.ndarray, valid: np.ndarray | None) -> None:
        """Copy the piece ``data`` at ``(row, col)`` of level ``level`` into the blocks it falls in; write each
        block that it completes."""
        (bh, bw), (height, width) = self._blocks[level], self.shapes[level]
        h, w = data.shape[1:]
        for block_row in range(row // bh, (row + h - 1) // bh + 1):
            for block_col in range(col // bw, (col + w - 1) // bw + 1):
                top, left = block_row * bh, block_col * bw
                y0, y1 = max(row, top), min(row + h, top + bh, height)  # the part in this block, level pixels
                x0, x1 = max(col, left), min(col + w, left + bw, width)
                part = (slice(y0 - row, y1 - row), slice(x0 - col, x1 - col))
                part_valid = None if valid is None else valid[part]
                key = (level, block_row, block_col)
                if key in self._unbuffered:
                    self._write(level, Window(x0, y0, x1 - x0, y1 - y0), data[(slice(None), *part)], part_valid)
                    self._unbuffered[key] -= (y1 - y0) * (x1 - x0)
                    if not self._unbuffered[key]:
                        del self._unbuffered[key]
                    continue
                block = self._open.get(key)
                if block is None:
                    shape = (min(bh, height - top), min(bw, width - left))
                    block = _OpenBlock(np.empty((self.spec.count, *shape), self.spec.dtype),
                                       np.empty(shape, bool) if self.spec.use_mask else None, shape[0] * shape[1], [])
                    self._open[key] = block
                    self._open_bytes += block.nbytes
                inside = Window(x0 - left, y0 - top, x1 - x0, y1 - y0)
                block.data[(slice(None), *inside.toslices())] = data[(slice(None), *part)]
                if block.valid is not None:
                    block.valid[inside.toslices()] = part_valid
                block.pieces.append(inside)
                block.missing -= (y1 - y0) * (x1 - x0)
                if not block.missing:
                    del self._open[key]
                    self._open_bytes -= block.nbytes
                    self._write(level, Window(left, top, *block.data.shape[:0:-1]), block.data, block.valid)

    def _write_pieces(self, key: tuple[int, int, int]) -> None:
        """Write the open block ``key``'s pieces one by one; its later pieces are written as they come."""
        block = self._open.pop(key)
        self._open_bytes -= block.nbytes
        level, block_row, block_col = key
        bh, bw = self._blocks[level]
        for inside in block.pieces:
            part = inside.toslices()
            window = Window(block_col * bw + inside.col_off, block_row * bh + inside.row_off, inside.width,
                            inside.height)
            self._write(level, window, block.data[(slice(None), *part)],
                        None if block.valid is None else block.valid[part])
        if block.missing:
            self._unbuffered[key] = block.missing

    def _write(self, level: int, window: Window, data: np.ndarray, valid: np.ndarray | None) -> None:
        dataset = self._datasets[level]
        dataset.write(data, window=window)
        if self.spec.use_mask:
            write_mask(dataset, valid, window)

    def close(self) -> None:
        """Write what is still open (nothing once every block of the raster was added) and close the files."""
        try:
            while self._open and not any(d.closed for d in self._datasets):
                self._write_pieces(next(iter(self._open)))
        finally:
            self._open.clear()
            for dataset in self._datasets:
                if not dataset.closed:
                    dataset.close()

    def attach(self, base: Path, vrt: Path) -> None:
        """Write ``vrt``: the raster ``base`` (closed) with these levels as its overviews (and its mask's)."""
        self.close()
        with rasterio.Env(**GDAL_ENV):
            rasterio.shutil.copy(str(base), str(vrt), driver="VRT")
        tree = ET.parse(vrt)
        bands = tree.getroot().findall("VRTRasterBand")
        for index, band in enumerate(bands, start=1):
            self._overviews(band, str(index))
        mask = tree.getroot().find("MaskBand/VRTRasterBand")
        if mask is not None:
            self._overviews(mask, "mask,1")
        tree.write(vrt)

    def _overviews(self, band: ET.Element, source_band: str) -> None:
        for path in self.paths:
            overview = ET.SubElement(band, "Overview")
            ET.SubElement(overview, "SourceFilename", relativeToVRT="0").text = str(path)
            ET.SubElement(overview, "SourceBand").text = source_band

    def abort(self) -> None:
        """Close and remove the level files (nothing still open is written)."""
        self._open.clear()
        self.close()
        for path in self.paths:
            path.unlink(missing_ok=True)


class TiledRasterWriter:
    """Write a raster block by block or row band by row band; :meth:`finish` makes the COG at ``target`` atomically."""

    def __init__(
        self,
        target: str | os.PathLike[str],
        spec: RasterSpec,
        compress: str = DEFAULT_COMPRESS,
        block: int | None = None,
    ):
        """``compress``: the COG's compression (:data:`DEFAULT_COMPRESS`, :data:`COMPRESS_LEVELS`);
        ``block``: tile side of the temporary file (a multiple of 16; the COG always has
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
            "bigtiff": "if_safer",  # uncompressed: see the class docstring
        }
        if spec.nbits is not None:
            profile["nbits"] = spec.nbits
        try:
            # quiet without a CRS: the caller has already warned that the scene has no georeference
            with rasterio.Env(**GDAL_ENV), no_grid_warning(spec.crs is None):
                self._ds = rasterio.open(self.tmp, "w", **profile)
        except BaseException:  # an interrupt or a GDAL error here must not leave the temporary behind
            self.tmp.unlink(missing_ok=True)
            raise
        self._pyramid: OverviewPyramid | None = None
        self._vrt: Path | None = None
        try:
            for i, name in enumerate(spec.band_names[: spec.count], start=1):
                self._ds.set_band_description(i, name)
            if spec.tags:
                self._ds.update_tags(**dict(spec.tags))
            if OverviewPyramid.supports(spec, self.block):
                self._pyramid = OverviewPyramid(self.target, spec, self.block)
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
        data = data.astype(self.spec.dtype, copy=False)
        try:
            self._ds.write(data, window=window)
            if self.spec.use_mask:
                write_mask(self._ds, valid, window)
            if self._pyramid is not None:
                self._pyramid.add(row_off, col_off, data, valid)
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
        valid = np.concatenate([v for _, v in self._pending], axis=0) if self.spec.use_mask else None
        if valid is not None:
            write_mask(self._ds, valid[:n], window)
        if self._pyramid is not None:
            self._pyramid.add(self._next_row, 0, data[:, :n], None if valid is None else valid[:n])
        self._pending = [(data[:, n:], None if valid is None else valid[n:])] if data.shape[1] > n else []
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
            source = self.tmp
            if self._pyramid is not None:  # the temporary with its overviews, as a VRT
                source = self._vrt = temporary_beside(self.target, ".vrt")
                self._pyramid.attach(self.tmp, source)
            with atomic_path(self.target) as tmp:
                to_cog(
                    source,
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
        if self._pyramid is not None:
            self._pyramid.abort()
        if self._vrt is not None:
            self._vrt.unlink(missing_ok=True)

    def __enter__(self) -> TiledRasterWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is not None:
            self.abort()


def to_cog(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    resampling: str = "average",
    compress: str = DEFAULT_COMPRESS,
    nbits: int | None = None,
) -> None:
    """Copy a GeoTIFF to a Cloud-Optimized GeoTIFF with internal overviews (GDAL's COG driver), compressed
    with ``compress`` at its :data:`COMPRESS_LEVELS` level (another GDAL compression: GDAL's level)."""
    extra = {"nbits": nbits} if nbits is not None else {}
    with rasterio.Env(**GDAL_ENV):
        rasterio.shutil.copy(
            str(src),
            str(dst),
            driver="COG",
            **compression_options(compress, "COG"),
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

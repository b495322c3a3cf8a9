"""Raster I/O: open with clear errors, read windows beyond the edge, align images onto one grid.

Plain functions over paths, windows and arrays (rasterio). Windows are in the native pixel grid of the
reference image; a window may extend beyond the raster, the outside is filled with nodata.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import MaskFlags, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from eoseg.errors import InputError, require_files
from eoseg.geo.atomic import atomic_path, disk_full, write_failed

try:  # GDAL errors raised by rasterio while reading blocks
    from rasterio._err import CPLE_BaseError
except ImportError:  # pragma: no cover - layout of older rasterio
    CPLE_BaseError = RasterioError

READ_ERRORS = (RasterioError, CPLE_BaseError)
Source = DatasetReader | WarpedVRT


# Chips and sources of images without georeference (JPEGs, J2K tiles) keep their pixel grid: the
# identity transform is written on purpose, so GDAL's note about it is noise (from writer threads too).
warnings.filterwarnings(
    "ignore", message="The given matrix is equal to Affine.identity", category=NotGeoreferencedWarning
)


COMPRESS_LEVELS = {"deflate": 1, "zstd": 1}
"""Level of each compression eoseg writes with a level of its own: the COGs (``predict.compress``, with the
horizontal predictor) and the chips and competition rasters of :func:`write_geotiff`; another GDAL compression
(``lzw``) is written at GDAL's level. DEFLATE 1 (GDAL uses libdeflate) takes about 35 % less CPU than GDAL's
default 6 for files about 5 % larger (``benchmarks/predict.py`` scene), and every DEFLATE reader reads any
level; ZSTD 1: see ``eoseg.geo.cog.DEFAULT_COMPRESS``."""
_LEVEL_OPTION = {"COG": {"deflate": "level", "zstd": "level"}, "GTiff": {"deflate": "zlevel", "zstd": "zstd_level"}}
"""The creation option that sets the level, per GDAL driver (the COG driver has one name for both)."""


def compression_options(compress: str, driver: str) -> dict[str, object]:
    """GDAL creation options of ``driver`` (``GTiff`` or ``COG``) for ``compress`` at its
    :data:`COMPRESS_LEVELS` level (``none``: uncompressed, also for the COG driver, whose default is LZW)."""
    compress = compress.lower()
    options: dict[str, object] = {"compress": compress}
    if compress in COMPRESS_LEVELS:
        options[_LEVEL_OPTION[driver][compress]] = COMPRESS_LEVELS[compress]
    return options


@dataclass(frozen=True)
class RasterInfo:
    """What the pipeline needs to know about one raster file."""

    path: Path
    count: int
    dtype: str
    nodata: float | None
    crs: CRS | None
    transform: Affine
    width: int
    height: int

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size (x, y) in CRS units."""
        return abs(self.transform.a), abs(self.transform.e)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in CRS units."""
        return _bounds(self.transform, self.width, self.height)

    def same_grid(self, other: RasterInfo) -> bool:
        """Whether ``other`` has this raster's CRS, transform and size (no alignment needed)."""
        return (
            self.crs == other.crs
            and self.width == other.width
            and self.height == other.height
            and self.transform.almost_equals(other.transform, precision=1e-9 * max(self.res))
        )


def _bounds(transform: Affine, width: int, height: int) -> tuple[float, float, float, float]:
    xs, ys = zip(*(transform @ (c, r) for c in (0, width) for r in (0, height)), strict=True)
    return min(xs), min(ys), max(xs), max(ys)


UNGRIDDED_SUFFIXES = (".jpg", ".jpeg", ".png", ".j2k", ".jp2")
"""Picture formats that hold no georeference by design (the competitions' JPEG, PNG and JPEG 2000 files):
:func:`open_raster` silences GDAL's "no geotransform" note for them, and keeps it for GeoTIFF scenes."""


def open_raster(path: str | os.PathLike[str]) -> DatasetReader:
    """Open a raster for reading; a missing or unreadable file is an :class:`InputError` naming it.

    A JPEG, PNG or JPEG 2000 file (:data:`UNGRIDDED_SUFFIXES`) opens without the NotGeoreferencedWarning
    that a GeoTIFF without georeference still gives.
    """
    path = Path(path)
    require_files([path], "raster file")
    try:
        with no_grid_warning(path.suffix.lower() in UNGRIDDED_SUFFIXES):
            return rasterio.open(path)
    except READ_ERRORS as exc:
        raise InputError(
            f"{path}: not a readable raster ({_first_line(exc)}); give a GDAL raster (GeoTIFF, ...)"
        ) from exc


def raster_info(path: str | os.PathLike[str]) -> RasterInfo:
    """Band count, dtype, nodata, CRS, transform and size of a raster file."""
    with open_raster(path) as src:
        return info_of(src, Path(path))


def info_of(src: Source, path: Path | None = None) -> RasterInfo:
    """The :class:`RasterInfo` of an open dataset; mixed band dtypes are promoted to one."""
    dtype = np.result_type(*src.dtypes).name
    return RasterInfo(
        path=Path(path if path is not None else src.name),
        count=src.count,
        dtype=dtype,
        nodata=src.nodata,
        crs=src.crs,
        transform=src.transform,
        width=src.width,
        height=src.height,
    )


def check_overlap(reference: RasterInfo, other: RasterInfo, what: str) -> None:
    """Raise an :class:`InputError` when ``other`` does not overlap ``reference`` (after reprojection)."""
    if other.crs is None or reference.crs is None:
        if not reference.same_grid(other):
            raise InputError(
                f"{other.path}: {what} has no CRS and a grid different from {reference.path.name}; "
                "give both rasters a CRS or put them on the same grid"
            )
        return
    left, bottom, right, top = transform_bounds(other.crs, reference.crs, *other.bounds)
    ref_left, ref_bottom, ref_right, ref_top = reference.bounds
    if left >= ref_right or right <= ref_left or bottom >= ref_top or top <= ref_bottom:
        raise InputError(
            f"{other.path}: {what} does not overlap {reference.path.name}; "
            "the images and targets of one sample must cover the same area"
        )


def align_to(src: DatasetReader, reference: RasterInfo, resampling: str, nodata: float | None) -> Source:
    """``src`` on the reference grid: itself when the grids match, else a WarpedVRT (reprojected on the fly).

    Pixels of the reference grid that ``src`` does not cover read as ``nodata``.
    """
    info = info_of(src, Path(src.name))
    if reference.same_grid(info):
        return src
    check_overlap(reference, info, "raster")
    return WarpedVRT(
        src,
        crs=reference.crs,
        transform=reference.transform,
        width=reference.width,
        height=reference.height,
        resampling=Resampling[resampling],
        src_nodata=src.nodata,
        nodata=nodata,
    )


def read_window(
    src: Source,
    window: Window,
    out_shape: tuple[int, int],
    resampling: str = "nearest",
    fill: float | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Read ``window`` (native pixels, may extend beyond the raster) resampled to ``out_shape`` (H, W).

    Returns ``(bands, H, W)`` in the source dtype. Output pixels not fully inside the raster are ``fill``
    (the nodata value): the inside part is read clipped and placed into a filled array, which is faster
    than a boundless read. ``out``: a C-contiguous ``(bands, H, W)`` array of the source dtype to read into
    and return (a caller reading many windows reuses one: no allocation and no fresh pages per window).
    """
    height, width = out_shape
    dtype = np.result_type(*src.dtypes)
    if out is not None and (out.shape != (src.count, height, width) or out.dtype != dtype):
        raise ValueError(f"out must be {dtype} {(src.count, height, width)}, got {out.dtype} {out.shape}")
    rows = _inside(window.row_off, window.height, height, src.height)
    cols = _inside(window.col_off, window.width, width, src.width)
    inside = rows is not None and cols is not None and rows[:2] == (0, height) and cols[:2] == (0, width)
    if not inside:
        if out is None:
            out = np.empty((src.count, height, width), dtype)
        out[...] = 0 if fill is None else fill
    if rows is None or cols is None:
        return out
    (k0, k1, r0, r1), (j0, j1, c0, c1) = rows, cols
    clipped = Window(c0, r0, c1 - c0, r1 - r0)
    try:
        if inside:  # the whole output straight from GDAL (into ``out`` when given)
            if out is not None:
                return src.read(window=clipped, out=out, resampling=Resampling[resampling])
            return src.read(window=clipped, out_shape=(src.count, height, width), resampling=Resampling[resampling])
        data = src.read(window=clipped, out_shape=(src.count, k1 - k0, j1 - j0), resampling=Resampling[resampling])
    except READ_ERRORS as exc:
        raise InputError(
            f"{source_path(src)}: reading window {window_repr(window)} failed ({_first_line(exc)}); "
            "the file may be truncated or corrupt: re-download or re-export it"
        ) from exc
    out[:, k0:k1, j0:j1] = data
    return out


def _inside(offset: float, length: float, out_len: int, size: int) -> tuple[int, int, float, float] | None:
    """Output pixel range [k0, k1) fully inside [0, size) and its native extent [a, b)."""
    step = length / out_len
    k0 = max(0, math.ceil(-offset / step - 1e-9))
    k1 = min(out_len, math.floor((size - offset) / step + 1e-9))
    if k1 <= k0:
        return None
    return k0, k1, offset + k0 * step, offset + k1 * step


def valid_mask(array: np.ndarray, nodata: float | None) -> np.ndarray:
    """``bool(H, W)``: True where no band of ``array (C, H, W)`` equals ``nodata`` and all are finite."""
    if array.ndim == 2:
        array = array[None]
    if np.issubdtype(array.dtype, np.integer):
        if nodata is None or not np.isfinite(nodata):
            return np.ones(array.shape[1:], dtype=bool)
        limits = np.iinfo(array.dtype)
        if nodata != int(nodata) or not limits.min <= nodata <= limits.max:
            return np.ones(array.shape[1:], dtype=bool)  # no value of the dtype equals it
        # compared in the array's own dtype: against a Python float numpy would widen every value to float64
        return ~np.any(array == array.dtype.type(int(nodata)), axis=0)
    valid = np.all(np.isfinite(array), axis=0)
    if nodata is not None and np.isfinite(nodata):
        valid &= ~np.any(array == nodata, axis=0)
    return valid


def default_nodata(dtype: str) -> float:
    """Nodata used when a raster declares none: NaN for floats, 0 for integers."""
    return float("nan") if np.issubdtype(np.dtype(dtype), np.floating) else 0


def effective_nodata(info: RasterInfo, override: float | None = None) -> float:
    """The nodata eoseg uses for an image: the configured override, else the file's, else :func:`default_nodata`.

    Preparing chips and predicting scenes both use this rule, so a pixel that was invalid in training is
    invalid at prediction time too.
    """
    if override is not None:
        return override
    return info.nodata if info.nodata is not None else default_nodata(info.dtype)


def write_geotiff(
    path: str | os.PathLike[str],
    array: np.ndarray,
    crs: CRS | None,
    transform: Affine,
    nodata: float | None,
    compress: str = "deflate",
) -> Path:
    """Write ``array (C, H, W)`` as a georeferenced GeoTIFF, atomically; cheap compression
    (:func:`compression_options`: its :data:`COMPRESS_LEVELS` level)."""
    count, height, width = array.shape
    profile: dict[str, object] = {
        "driver": "GTiff",
        "count": count,
        "height": height,
        "width": width,
        "dtype": array.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "interleave": "pixel" if count <= 4 else "band",
    }
    if height % 16 == 0 and width % 16 == 0 and min(height, width) >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    profile.update(compression_options(compress, "GTiff"))
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(array)
        check_written(tmp, path, array)
    return Path(path)


def check_written(
    tmp: str | os.PathLike[str], target: str | os.PathLike[str], expected: np.ndarray | None = None
) -> None:
    """Re-open a raster just written to ``tmp`` and check it before it is renamed onto ``target``.

    GDAL may only log a failed write (libtiff prints "No space left on device" and the file is closed as
    if complete: it ends early, or a later write leaves a hole of zeros). What is checked:

    - with ``expected``: every pixel is read back and compared with it;
    - a COG whose structural metadata declares block leaders and trailers (GDAL's COG driver writes them:
      ``BLOCK_LEADER=SIZE_AS_UINT4``, ``BLOCK_TRAILER=LAST_4_BYTES_REPEATED``): :func:`check_cog_tiles`, every
      tile of every directory (full resolution, each overview, their masks) is where its directory says,
      whole, and is the tile GDAL meant to write there; and the tile that ends the file decodes;
    - any other raster: every block (and the mask's) is read, i.e. decoded.

    An :class:`InputError` names ``target`` and the cause (e.g. disk full).
    """
    detail = ""
    try:
        with rasterio.open(tmp) as src:
            if expected is not None:
                back = src.read()
                same = back.shape == expected.shape and np.array_equal(
                    back, expected, equal_nan=bool(np.issubdtype(expected.dtype, np.floating))
                )
                detail = "" if same else "the data read back differs from what was written"
            elif not _declares_tile_checks(tmp):
                masked = MaskFlags.per_dataset in src.mask_flag_enums[0]
                for _, window in src.block_windows(1):
                    src.read(window=window)
                    if masked:
                        src.read_masks(1, window=window)
            else:
                directories = (1 + len(src.overviews(1))) * (2 if MaskFlags.per_dataset in src.mask_flag_enums[0]
                                                             else 1)
                problem = check_cog_tiles(tmp, directories)
                detail = f"the file read back is incomplete: {problem}" if problem else ""
    except READ_ERRORS as exc:
        detail = f"the file read back is incomplete: {_first_line(exc)}"
    if detail:
        raise write_failed(target, "disk full: No space left on device" if disk_full(Path(target).parent) else detail)


_TILE_CHECKS = (b"BLOCK_LEADER=SIZE_AS_UINT4", b"BLOCK_TRAILER=LAST_4_BYTES_REPEATED")


def _declares_tile_checks(path: str | os.PathLike[str]) -> bool:
    """Whether the GeoTIFF's structural metadata (GDAL's "ghost" area after the TIFF header, COG driver)
    declares a size before and the last 4 bytes after every tile."""
    with open(path, "rb") as f:
        head = f.read(1024)
    start = head.find(b"GDAL_STRUCTURAL_METADATA_SIZE=")
    if start < 0:
        return False
    try:
        size = int(head[start + 30 : start + 36])
    except ValueError:
        return False
    metadata = head[start : head.find(b"\n", start) + 1 + size]
    return all(token in metadata for token in _TILE_CHECKS)


def _tiles(ifd: DatasetReader) -> Iterator[tuple[int, Window]]:
    """``(band, window)`` of every tile of a TIFF directory: every band's, or band 1's when pixel-interleaved."""
    (bh, bw) = ifd.block_shapes[0]
    bands = [1] if ifd.tags(ns="IMAGE_STRUCTURE").get("INTERLEAVE") == "PIXEL" else list(ifd.indexes)
    for row in range(0, ifd.height, bh):
        for col in range(0, ifd.width, bw):
            for band in bands:
                yield band, Window(col, row, min(bw, ifd.width - col), min(bh, ifd.height - row))


def check_cog_tiles(path: str | os.PathLike[str], directories: int) -> str | None:
    """What is wrong with the tiles of the COG at ``path`` (its first ``directories`` TIFF directories,
    read with GDAL's ``GTIFF_DIR:n:`` syntax and its ``BLOCK_OFFSET_x_y`` / ``BLOCK_SIZE_x_y`` items), or None.

    Each tile of each band (one per tile when pixel-interleaved) must have been written (a non-zero offset
    and byte count), end inside the file, be preceded by its byte count as 4 bytes (``BLOCK_LEADER``) and
    followed by a repeat of its last 4 bytes (``BLOCK_TRAILER``): a file that ends early, a hole of zeros or
    bytes of another tile fail. The tile that ends the file (the last written) is decoded. Not checked: that
    the other tiles' compressed bytes decode (a byte changed inside a tile after GDAL wrote it).
    """
    last: tuple[int, str, Window] | None = None  # (end offset, directory, window) of the tile that ends the file
    fd = os.open(path, os.O_RDONLY)
    try:
        end_of_file = os.fstat(fd).st_size
        for number in range(1, directories + 1):
            name = f"GTIFF_DIR:{number}:{path}"
            with no_grid_warning(), rasterio.open(name) as ifd:
                for band, window in _tiles(ifd):
                    i, j = window.col_off // ifd.block_shapes[0][1], window.row_off // ifd.block_shapes[0][0]
                    offset = int(ifd.get_tag_item(f"BLOCK_OFFSET_{i}_{j}", "TIFF", bidx=band) or 0)
                    size = int(ifd.get_tag_item(f"BLOCK_SIZE_{i}_{j}", "TIFF", bidx=band) or 0)
                    where = f"tile {i},{j} of band {band} of TIFF directory {number}"
                    if offset < 4 or size < 4:
                        return f"{where} was not written"
                    if offset + size + 4 > end_of_file:
                        return f"the file ends before {where} (at byte {end_of_file:,})"
                    leader, tail = os.pread(fd, 4, offset - 4), os.pread(fd, 8, offset + size - 4)
                    if int.from_bytes(leader, "little") != size or tail[:4] != tail[4:]:
                        return f"{where} is not what was written there (a hole or another tile's bytes)"
                    if last is None or offset + size > last[0]:
                        last = (offset + size, name, window)
    finally:
        os.close(fd)
    if last is not None:
        with no_grid_warning(), rasterio.open(last[1]) as ifd:
            ifd.read(window=last[2])
    return None


def source_path(src: Source) -> str:
    """The file behind an open dataset or WarpedVRT, for messages."""
    return str(getattr(src, "src_dataset", src).name)


def window_repr(window: Window) -> str:
    """``row,col+HxW`` in native pixels."""
    return f"{window.row_off:g},{window.col_off:g}+{window.height:g}x{window.width:g}"


def _first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message; for rasterio's "Read failed. See previous exception for details."
    (a user never sees that exception) the first line of GDAL's error at the end of the chain instead, e.g.
    "TIFFFillStrip:Read error at scanline 288; got 4772 bytes, expected 5412"."""
    if "previous exception" in str(exc):
        while exc.__cause__ is not None:
            exc = exc.__cause__
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def resize_array(array: np.ndarray, shape: tuple[int, int], resampling: str = "nearest") -> np.ndarray:
    """``array (C, H, W)`` resampled by GDAL to ``shape`` (height, width), same dtype (images without a grid)."""
    count, height, width = array.shape
    if (height, width) == tuple(shape):
        return array.copy()
    profile = {"driver": "GTiff", "count": count, "height": height, "width": width, "dtype": array.dtype.name,
               "interleave": "band", "photometric": "minisblack"}  # no band is read as alpha
    with no_grid_warning(), rasterio.io.MemoryFile() as memory:  # a bare pixel array has no grid
        with memory.open(**profile) as dst:
            dst.write(array)
        with memory.open() as src:
            return src.read(out_shape=(count, *shape), resampling=Resampling[resampling])


_WARNING_FILTERS = threading.RLock()
"""Held while the process's warning filters are changed: ``warnings.catch_warnings`` is not thread-safe (each
one restores the filter list it saw on entry), so two writer threads silencing the warning at once could
unsilence each other: a COG check in one printed GDAL's "Dataset has no geotransform" note for a TIFF
directory of the other's output. :func:`no_grid_warning` is the only filter change eoseg makes where predict's
reader and writer threads (or prepare's chip writers) may run; a ``catch_warnings`` around code that starts
such threads (the CLI's warning printer, training's Lightning filters) must enclose them whole, and a warning
that does not apply is not raised rather than filtered (``check_scene(georeferenced=False)``)."""


@contextlib.contextmanager
def no_grid_warning(quiet: bool = True) -> Iterator[None]:
    """Silence GDAL's note that a file has no georeference, where that is expected (JPEG, J2K tiles, the TIFF
    directories of a COG, temporaries georeferenced later); thread-safe (one thread at a time inside). With
    ``quiet=False`` it does nothing: the note reaches the user."""
    if not quiet:
        yield
        return
    with _WARNING_FILTERS, warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield

"""Polygons from class rasters, streamed by row bands without seams, and areas in square metres.

:func:`polygonize` reads the raster in bands of rows and traces each band with
``rasterio.features.shapes`` in pixel coordinates (exact integers). A polygon that touches the border
between two bands is held back and unioned with the pieces of the same class on the other side, so a
building cut by a band border comes out as one polygon, holes included. Coordinates are mapped to the
raster's CRS once, at the end.

Memory: one band of rows of the raster (``band_rows × width`` values plus a boolean mask; by default
about :data:`BAND_PIXELS` pixels, fewer rows the wider the raster: :func:`band_rows_for`), the polygons
that touch the current band border, and the output polygons themselves (the GeoDataFrame that is
returned, which grows with the number and detail of the objects, not with the raster size).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence

import geopandas as gpd
import numpy as np
import pyproj
import shapely
from affine import Affine
from rasterio import features
from rasterio.crs import CRS
from rasterio.windows import Window, subdivide
from shapely.geometry import shape

from eoseg.errors import InputError
from eoseg.geo.raster import open_raster

DEFAULT_BAND_ROWS = 1024
BAND_PIXELS = 4096 * DEFAULT_BAND_ROWS
"""Pixels per row band when tracing polygons (``band_rows`` = this / the raster's width, at most
:data:`DEFAULT_BAND_ROWS`)."""
_SHAPES_DTYPES = {"int16", "int32", "uint8", "uint16", "float32"}


def row_windows(height: int, width: int, rows: int) -> Iterator[Window]:
    """Full-width windows of ``rows`` rows (the last one shorter) covering a ``height × width`` grid."""
    if rows < 1:
        raise ValueError(f"rows must be positive, got {rows}")
    for row_off in range(0, height, rows):
        yield Window(0, row_off, width, min(rows, height - row_off))


def block_windows(height: int, width: int, block: int) -> list[Window]:
    """Square windows of ``block`` pixels (shorter at the right and bottom edges) covering a ``height × width``
    grid, row of blocks by row of blocks, left to right (``rasterio.windows.subdivide``'s order)."""
    if block < 1:
        raise ValueError(f"block must be a positive number of pixels, got {block}")
    return subdivide(Window(0, 0, width, height), block, block)


def band_rows_for(width: int) -> int:
    """Rows per band for a raster ``width`` pixels wide: :data:`BAND_PIXELS` pixels, 1 to 1,024 rows."""
    return max(1, min(DEFAULT_BAND_ROWS, BAND_PIXELS // max(width, 1)))


def apply_affine(geoms, transform: Affine):
    """Apply an affine transform to a geometry or an array of geometries (e.g. pixel -> map)."""
    a, b, c, d, e, f = transform[:6]

    def _map(xy: np.ndarray) -> np.ndarray:
        x, y = xy[:, 0], xy[:, 1]
        return np.column_stack([a * x + b * y + c, d * x + e * y + f])

    return shapely.transform(geoms, _map)


def _projection(crs: object | None) -> pyproj.CRS | None:
    """A pyproj CRS from a rasterio or pyproj CRS (or any user input); None stays None."""
    return None if crs is None else pyproj.CRS.from_user_input(crs)


def _linear_factor(crs: pyproj.CRS | None) -> float:
    """Metres per CRS unit of a projected CRS (1 when there is no CRS: units are taken as metres)."""
    if crs is None or not crs.axis_info:
        return 1.0
    return float(crs.axis_info[0].unit_conversion_factor)


def polygon_areas_m2(geoms: Sequence[shapely.Geometry] | np.ndarray, crs: object | None) -> np.ndarray:
    """Areas in m² of geometries in ``crs``: geodesic (WGS84 ellipsoid) for a geographic CRS."""
    geoms = np.asarray(geoms, dtype=object)
    crs = _projection(crs)
    if crs is not None and crs.is_geographic:
        geod = pyproj.Geod(ellps="WGS84")
        return np.array([abs(geod.geometry_area_perimeter(g)[0]) for g in geoms], dtype=np.float64)
    return shapely.area(geoms) * _linear_factor(crs) ** 2


def pixel_area_m2(transform: Affine, crs: object | None, row: float = 0.0, col: float = 0.0) -> float:
    """Area of one pixel in m²; in a geographic CRS, of the pixel at ``(row, col)`` (it varies with latitude)."""
    crs = _projection(crs)
    if crs is not None and crs.is_geographic:
        pixel = shapely.box(col, row, col + 1, row + 1)
        return float(polygon_areas_m2([apply_affine(pixel, transform)], crs)[0])
    return abs(transform.a * transform.e - transform.b * transform.d) * _linear_factor(crs) ** 2


def _foreground(data: np.ndarray, background: Sequence[float], nodata: float | None) -> np.ndarray:
    keep = np.ones(data.shape, dtype=bool)
    for value in background:  # a few values: faster than np.isin
        keep &= data != value
    if nodata is not None:
        keep &= ~(np.isnan(data) if np.isnan(nodata) else data == nodata)
    return keep


def _trace_bands(
    read: Callable[[Window], np.ndarray],
    height: int,
    width: int,
    band_rows: int | None,
    background: Sequence[float],
    nodata: float | None,
    connectivity: int,
) -> tuple[list[shapely.Geometry], list[float]]:
    """Polygons in pixel coordinates and their values, merged across band borders (``band_rows`` None:
    :func:`band_rows_for` the width)."""
    done_geoms: list[shapely.Geometry] = []
    done_values: list[float] = []
    pending: list[tuple[shapely.Geometry, float]] = []  # polygons touching the top of the current band
    for window in row_windows(height, width, band_rows or band_rows_for(width)):
        top, bottom = int(window.row_off), int(window.row_off + window.height)
        last = bottom == height
        data = read(window)
        keep = _foreground(data, background, nodata)
        if str(data.dtype) not in _SHAPES_DTYPES:
            data = data.astype(np.float32 if data.dtype.kind == "f" else np.int32)
        to_merge: dict[float, list[shapely.Geometry]] = defaultdict(list)
        for geom, value in pending:
            to_merge[value].append(geom)
        pieces: list[tuple[shapely.Geometry, float]] = []
        traced = features.shapes(data, mask=keep, connectivity=connectivity, transform=Affine.translation(0, top))
        for geojson, value in traced:
            geom = shape(geojson)
            if value in to_merge and geom.bounds[1] == top:
                to_merge[value].append(geom)
            else:
                pieces.append((geom, value))
        for value, geoms in to_merge.items():
            pieces += [(part, value) for part in shapely.get_parts(shapely.union_all(geoms))]
        pending = []
        for geom, value in pieces:
            if not last and geom.bounds[3] == bottom:
                pending.append((geom, value))
            else:
                done_geoms.append(geom)
                done_values.append(value)
    return done_geoms, done_values


def polygonize_array(
    array: np.ndarray,
    transform: Affine = Affine.identity(),
    crs: CRS | str | None = None,
    *,
    nodata: float | None = None,
    background: Sequence[float] = (0,),
    band_rows: int | None = None,
    connectivity: int = 4,
) -> gpd.GeoDataFrame:
    """Polygons of an in-memory class array; see :func:`polygonize`."""
    array = np.asarray(array)
    crs = CRS.from_user_input(crs) if crs is not None else None
    geoms, values = _trace_bands(
        lambda w: array[w.row_off : w.row_off + w.height],
        *array.shape,
        band_rows,
        background,
        nodata,
        connectivity,
    )
    return _frame(geoms, values, array.dtype, transform, crs)


def polygonize(
    path: str | os.PathLike[str],
    band: int = 1,
    *,
    background: Sequence[float] = (0,),
    band_rows: int | None = None,
    connectivity: int = 4,
) -> gpd.GeoDataFrame:
    """Polygons of every connected region of equal value in band ``band`` of a class raster.

    Background values and nodata are skipped. Returns a GeoDataFrame in the raster's CRS with columns
    ``class`` (the pixel value), ``area_m2`` and ``geometry``; holes are kept. Streams by row bands of
    ``band_rows`` rows (default :func:`band_rows_for` the raster's width; the polygons do not depend on it).
    """
    with open_raster(path) as src:
        if not 1 <= band <= src.count:
            raise InputError(f"{path}: band {band} does not exist (the raster has {src.count})")
        geoms, values = _trace_bands(
            lambda w: src.read(band, window=w),
            src.height,
            src.width,
            band_rows,
            background,
            src.nodata,
            connectivity,
        )
        return _frame(geoms, values, np.dtype(src.dtypes[band - 1]), src.transform, src.crs)


def _frame(
    geoms: list[shapely.Geometry], values: list[float], dtype: np.dtype, transform: Affine, crs: CRS | None
) -> gpd.GeoDataFrame:
    mapped = apply_affine(np.asarray(geoms, dtype=object), transform) if geoms else np.empty(0, dtype=object)
    classes = np.asarray(values, dtype=np.float64)
    if dtype.kind in "iub":
        classes = classes.astype(np.int64)
    frame = gpd.GeoDataFrame({"class": classes}, geometry=gpd.GeoSeries(mapped, crs=crs), crs=crs)
    frame["area_m2"] = polygon_areas_m2(frame.geometry.to_numpy(), crs)
    return frame[["class", "area_m2", "geometry"]]


def valid_footprint(path: str | os.PathLike[str], *, band_rows: int | None = None) -> shapely.Geometry:
    """The region of a raster's valid pixels as one (multi)polygon in its CRS (empty when none is valid).

    Validity is GDAL's dataset mask (nodata value, internal mask band or alpha), traced by row bands like
    :func:`polygonize`; a raster without nodata gives its whole rectangle.
    """
    with open_raster(path) as src:
        geoms, _ = _trace_bands(
            lambda w: (src.dataset_mask(window=w) > 0).astype(np.uint8),
            src.height, src.width, band_rows, (0,), None, 4,
        )
        transform = src.transform
    if not geoms:
        return shapely.Polygon()
    return shapely.union_all(apply_affine(np.asarray(geoms, dtype=object), transform))

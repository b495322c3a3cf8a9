"""Zonal means: the mean of every band of a raster inside each polygon, streamed by square blocks.

Each block burns the ids of the polygons that intersect it (``rasterio.features.rasterize``,
pixel-centre rule, so a polygon traced from the same grid covers exactly its pixels) and sums the
raster values per id with ``np.bincount``. Where polygons overlap, the one listed last owns a pixel.
Every pixel is decided alone, so the sums do not depend on the block size.
Memory: one block of the raster (float32 values of every band, :data:`ZONAL_BLOCK` pixels square), GDAL's
block cache (32 MB, :data:`~eoseg.geo.cog.GDAL_ENV`) and the per-polygon sums; it does not grow with the
scene's width or height.
"""

from __future__ import annotations

import os

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from rasterio import features
from rasterio.windows import bounds as window_bounds

from eoseg.geo.cog import GDAL_ENV
from eoseg.geo.polygonize import block_windows
from eoseg.geo.products import read_probabilities
from eoseg.geo.raster import open_raster

ZONAL_BLOCK = 1024
"""Block side of :func:`zonal_means` (4 bands of float32: 16 MB per block)."""


def zonal_means(
    polygons: gpd.GeoSeries | gpd.GeoDataFrame,
    raster: str | os.PathLike[str],
    *,
    normalize: bool = False,
    block: int = ZONAL_BLOCK,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean probability per polygon and band ``(n, C)`` and the pixel count per polygon ``(n,)``.

    Polygons are reprojected to the raster's CRS when both have one. Values are read as probabilities
    (uint8 / 255); nodata pixels are left out. ``normalize`` divides each pixel by the sum of its bands
    first (class probabilities that should sum to one). Polygons without a valid pixel get NaN.
    ``block``: side of the square blocks read at a time (memory, not the result, depends on it).
    """
    geoseries = polygons.geometry if isinstance(polygons, gpd.GeoDataFrame) else polygons
    with rasterio.Env(**GDAL_ENV), open_raster(raster) as src:  # a bounded GDAL block cache
        if geoseries.crs is not None and src.crs is not None and geoseries.crs != src.crs:
            geoseries = geoseries.to_crs(src.crs)
        geoms = geoseries.to_numpy()
        n = len(geoms)
        sums = np.zeros((n + 1, src.count), np.float64)
        counts = np.zeros(n + 1, np.int64)
        tree = shapely.STRtree(geoms)
        for window in block_windows(src.height, src.width, block):
            hits = tree.query(shapely.box(*window_bounds(window, src.transform)), predicate="intersects")
            if not hits.size:
                continue
            hits.sort()
            shape = (int(window.height), int(window.width))
            ids = features.rasterize(
                zip(geoms[hits], hits + 1, strict=True),
                out_shape=shape,
                transform=src.window_transform(window),
                fill=0,
                dtype=np.int32,
            )
            values = read_probabilities(src, window)
            if normalize:
                total = values.sum(axis=0, keepdims=True)
                empty = np.where(np.isnan(total), np.nan, 0.0).astype(values.dtype)  # nodata stays nodata
                values = np.divide(values, total, out=np.broadcast_to(empty, values.shape).copy(), where=total > 0)
            valid = (ids > 0) & np.all(np.isfinite(values), axis=0)
            idx = ids[valid]
            counts += np.bincount(idx, minlength=n + 1)
            for b in range(src.count):
                sums[:, b] += np.bincount(idx, weights=values[b][valid], minlength=n + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums[1:] / counts[1:, None]
    return means, counts[1:]

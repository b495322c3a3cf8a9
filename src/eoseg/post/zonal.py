"""Zonal means: the mean of every band of a raster inside each polygon, streamed by row bands.

Each band of rows burns the ids of the polygons that intersect it (``rasterio.features.rasterize``,
pixel-centre rule, so a polygon traced from the same grid covers exactly its pixels) and sums the
raster values per id with ``np.bincount``. Where polygons overlap, the one listed last owns a pixel.
Memory: one band of rows of the raster plus the per-polygon sums.
"""

from __future__ import annotations

import os

import geopandas as gpd
import numpy as np
import shapely
from rasterio import features
from rasterio.windows import bounds as window_bounds

from eoseg.geo.polygonize import DEFAULT_BAND_ROWS, row_windows
from eoseg.geo.products import read_probabilities
from eoseg.geo.raster import open_raster


def zonal_means(
    polygons: gpd.GeoSeries | gpd.GeoDataFrame,
    raster: str | os.PathLike[str],
    *,
    normalize: bool = False,
    band_rows: int = DEFAULT_BAND_ROWS,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean probability per polygon and band ``(n, C)`` and the pixel count per polygon ``(n,)``.

    Polygons are reprojected to the raster's CRS when both have one. Values are read as probabilities
    (uint8 / 255); nodata pixels are left out. ``normalize`` divides each pixel by the sum of its bands
    first (class probabilities that should sum to one). Polygons without a valid pixel get NaN.
    """
    geoseries = polygons.geometry if isinstance(polygons, gpd.GeoDataFrame) else polygons
    with open_raster(raster) as src:
        if geoseries.crs is not None and src.crs is not None and geoseries.crs != src.crs:
            geoseries = geoseries.to_crs(src.crs)
        geoms = geoseries.to_numpy()
        n = len(geoms)
        sums = np.zeros((n + 1, src.count), np.float64)
        counts = np.zeros(n + 1, np.int64)
        tree = shapely.STRtree(geoms)
        for window in row_windows(src.height, src.width, band_rows):
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

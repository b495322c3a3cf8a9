"""Truth labels on a prediction's grid, window by window: a raster, or polygons rasterized there.

Truth polygons are reprojected to the prediction's CRS and burnt with the pixel-centre rule (class 1,
or the class in an attribute). A truth raster must share the prediction's grid; with ``resample=True``
it is warped onto it on the fly (nearest neighbour), otherwise a different grid is an error.
For object metrics, :func:`clip_truth` keeps only the truth inside a prediction's valid extent.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from shapely.geometry.base import BaseGeometry

from eoseg.errors import InputError
from eoseg.geo.products import IGNORE, VECTOR_SUFFIXES
from eoseg.geo.raster import RasterInfo, align_to, info_of, open_raster, valid_mask
from eoseg.geo.rasterize import LabelLayer, rasterize_labels
from eoseg.geo.vector import burn_values, load_labels


def is_vector(path: str | os.PathLike[str]) -> bool:
    """Whether a path names a vector file (by suffix)."""
    return Path(path).suffix.lower() in VECTOR_SUFFIXES


class TruthOnGrid:
    """Reads truth for windows of the prediction grid ``grid``; use as a context manager."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        grid: RasterInfo,
        *,
        attribute: str | None = None,
        resample: bool = False,
        label_crs: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.grid = grid
        self.layer: LabelLayer | None = None
        self._src = self._view = None
        if is_vector(self.path):
            frame = load_labels(self.path, grid.crs, grid.bounds, label_crs, option="--truth-crs", allow_empty=True)
            frame, values = burn_values(frame, 1, attribute, None, self.path)
            self.layer = LabelLayer(frame.geometry.to_numpy(), values) if len(frame) else LabelLayer.empty()
            self.count = 1
            return
        self._src = open_raster(self.path)
        info = info_of(self._src, self.path)
        if not grid.same_grid(info) and not resample:
            self._src.close()
            raise InputError(
                f"{self.path}: truth raster is not on the grid of {grid.path.name} "
                f"({info.width}x{info.height}, {info.crs}) vs ({grid.width}x{grid.height}, {grid.crs}); "
                "pass --resample to warp it onto the prediction grid (nearest), or give truth on that grid"
            )
        self._view = align_to(self._src, grid, "nearest", info.nodata)
        self.count = info.count
        self.nodata = info.nodata

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Truth ``(C, h, w)`` and its validity ``(h, w)`` for a window of the prediction grid."""
        shape = (int(window.height), int(window.width))
        transform = window_transform(window, self.grid.transform)
        if self.layer is not None:
            return rasterize_labels(self.layer, transform, shape), np.ones(shape, dtype=bool)
        data = self._view.read(window=window)
        return data, valid_mask(data, self.nodata)

    def close(self) -> None:
        if self._view is not None and self._view is not self._src:
            self._view.close()
        if self._src is not None:
            self._src.close()

    def __enter__(self) -> TruthOnGrid:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def truth_on_grid(
    truth: str | os.PathLike[str],
    prediction: str | os.PathLike[str],
    *,
    attribute: str | None = None,
    resample: bool = False,
    label_crs: str | None = None,
) -> np.ndarray:
    """The whole truth (polygons burnt, or a raster) on a prediction raster's grid as an ``(H, W)`` class array.

    Invalid truth pixels are 255. Holds one full band in memory (used for error-map PNGs).
    """
    from eoseg.geo.raster import raster_info

    grid = raster_info(prediction)
    with TruthOnGrid(truth, grid, attribute=attribute, resample=resample, label_crs=label_crs) as reader:
        labels, valid = reader.read(Window(0, 0, grid.width, grid.height))
    band = labels[0].astype(np.uint8, copy=True)
    band[~valid] = IGNORE
    return band


@dataclass(frozen=True)
class ClippedTruth:
    """Truth polygons clipped to a prediction's valid extent, and what the clipping did."""

    polygons: list[BaseGeometry]
    left_out: int
    """features wholly outside the extent (not scored)"""
    cut: int
    """features cut by the extent's edge (their part inside is scored)"""


def clip_truth(truth: Sequence[BaseGeometry], extent: BaseGeometry) -> ClippedTruth:
    """Truth as the SpaceNet tiles have it: polygons clipped to the image's valid ``extent``.

    A feature wholly outside is left out; a feature cut by the edge keeps its part inside (SpaceNet's
    truth is clipped to each tile, and the area rule — truth under 20 px is not scored — then applies
    to the clipped part, in :mod:`eoseg.metrics.objects`). Only polygonal parts of an intersection count.
    """
    kept: list[BaseGeometry] = []
    left_out = cut = 0
    shapely.prepare(extent)  # many containment tests against one geometry
    for geom in truth:
        if geom is None or geom.is_empty or extent.is_empty or not extent.intersects(geom):
            left_out += 1
            continue
        if extent.contains(geom):
            kept.append(geom)
            continue
        inside = shapely.union_all([p for p in shapely.get_parts(shapely.intersection(geom, extent))
                                    if p.geom_type in ("Polygon", "MultiPolygon") and p.area > 0])
        if inside.is_empty:
            left_out += 1
        else:
            kept.append(inside)
            cut += 1
    return ClippedTruth(kept, left_out, cut)

"""Burn vector labels onto chip grids: class channel plus optional solaris-style extra channels.

A :class:`LabelLayer` holds the polygons of one scene with a spatial index, so burning a chip only touches
the polygons that intersect it (scenes have tens of thousands of footprints).

Extra channels, each 0/1, follow solaris ``df_to_px_mask`` (``footprint_mask``, ``boundary_mask``,
``contact_mask``) with two deliberate differences, both named below:

- ``boundary``: a band of ``inner`` pixels inside each footprint plus a band of ``outer`` pixels outside
  it (solaris: ``boundary_type`` inner *or* outer). Widths are FULL widths in chip pixels: a pixel is in
  the inner band when a pixel of another building or of the background lies within ``inner`` pixels of it
  in a square (chessboard) neighbourhood, and in the outer band when it is background with a building
  pixel within ``outer`` pixels. (solaris erodes / dilates the footprint by ``square(boundary_width)``,
  which gives a band of only ``boundary_width // 2`` pixels, one-sided for even widths.) Bands are found
  per building, so the wall shared by two touching buildings is inner boundary of both (solaris works on
  the merged footprint and has no boundary there).
- ``contact``: exactly solaris' rule. Every footprint is buffered by ``spacing / 2`` (a round, Euclidean
  neighbourhood), the areas covered by two or more buffered footprints are burnt (pixel centres inside),
  and footprint pixels are removed: the gaps between buildings closer than ``spacing``. ``spacing`` is in
  chip pixels (``unit="px"``, solaris' default) or in map units (``unit="m"``, solaris' ``meters=True``;
  the caller converts metres to the CRS unit).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from affine import Affine
from rasterio import features
from scipy import ndimage

EXTRA_CHANNELS = ("boundary", "contact")


@dataclass
class LabelLayer:
    """Polygons (in the scene CRS) and their class values, with a spatial index."""

    geometries: np.ndarray
    values: np.ndarray

    cache_size: int = 50_000

    def __post_init__(self) -> None:
        self.tree = shapely.STRtree(self.geometries)
        self._shapes: dict[int, dict] = {}

    @classmethod
    def empty(cls) -> LabelLayer:
        return cls(np.array([], dtype=object), np.array([], dtype=np.int64))

    def __len__(self) -> int:
        return len(self.geometries)

    def shapes(self, indices: np.ndarray) -> list[dict]:
        """GeoJSON mappings of some polygons (what rasterio burns), converted in C and cached.

        Overlapping chips burn the same polygons, so the cache saves work; it is emptied when it holds
        ``cache_size`` polygons, which bounds memory whatever the number of labels.
        """
        missing = [int(i) for i in indices if int(i) not in self._shapes]
        if missing:
            if len(self._shapes) + len(missing) > self.cache_size:
                self._shapes.clear()
            texts = shapely.to_geojson(self.geometries[missing])
            self._shapes.update(zip(missing, map(json.loads, texts), strict=True))
        return [self._shapes[int(i)] for i in indices]

    def query(self, bounds: tuple[float, float, float, float]) -> np.ndarray:
        """Indices (sorted, so later features still win) of polygons intersecting ``bounds``."""
        if not len(self):
            return np.array([], dtype=np.int64)
        return np.sort(self.tree.query(shapely.box(*bounds), predicate="intersects"))


def chip_bounds(transform: Affine, shape: tuple[int, int], pad: int = 0) -> tuple[float, float, float, float]:
    """(minx, miny, maxx, maxy) of a grid of ``shape`` pixels, grown by ``pad`` pixels on each side."""
    height, width = shape
    xs, ys = zip(*(transform @ (c, r) for c in (-pad, width + pad) for r in (-pad, height + pad)), strict=True)
    return min(xs), min(ys), max(xs), max(ys)


def pixel_size(transform: Affine) -> float:
    """Side of one (square) pixel of ``transform`` in map units."""
    return float(abs(transform.determinant) ** 0.5)


def rasterize_labels(
    layer: LabelLayer,
    transform: Affine,
    shape: tuple[int, int],
    all_touched: bool = False,
    extra_channels: Sequence[str] = (),
    inner: int = 2,
    outer: int = 0,
    spacing: float = 2.0,
    spacing_unit: str = "px",
) -> np.ndarray:
    """``uint8 (1 + len(extra_channels), H, W)``: band 1 = class value (0 background), then the extras.

    ``inner`` / ``outer``: full widths in pixels of the ``boundary`` bands inside / outside each
    footprint; ``spacing``: the ``contact`` distance, in pixels (``spacing_unit="px"``) or map units
    (``"m"``). See the module docstring for the exact rules.
    """
    unknown = [c for c in extra_channels if c not in EXTRA_CHANNELS]
    if unknown:
        raise ValueError(f"unknown extra channel {unknown[0]!r}; valid: {', '.join(EXTRA_CHANNELS)}")
    height, wide = shape
    out = np.zeros((1 + len(extra_channels), height, wide), dtype=np.uint8)
    radius = spacing / 2 * (pixel_size(transform) if spacing_unit == "px" else 1.0)  # map units
    band = max(inner, outer) + 1 if "boundary" in extra_channels else 0
    reach = radius / pixel_size(transform) if "contact" in extra_channels else 0.0
    pad = max(band, int(np.ceil(reach)) + 1) if extra_channels else 0
    hits = layer.query(chip_bounds(transform, shape, pad))
    if not len(hits):
        return out
    geoms = layer.shapes(hits)
    out[0] = features.rasterize(
        zip(geoms, layer.values[hits].tolist(), strict=True),
        out_shape=shape,
        transform=transform,
        fill=0,
        all_touched=all_touched,
        dtype=np.uint8,
    )
    for i, name in enumerate(extra_channels, start=1):
        if name == "boundary":
            padded = (height + 2 * band, wide + 2 * band)
            ids = features.rasterize(
                zip(geoms, np.arange(1, len(hits) + 1), strict=True),
                out_shape=padded,
                transform=transform @ Affine.translation(-band, -band),
                fill=0,
                all_touched=all_touched,
                dtype=np.int32,
            )
            out[i] = boundary_bands(ids, inner, outer)[band : band + height, band : band + wide]
        else:
            out[i] = contact_mask(layer.geometries[hits], radius, transform, shape)
            out[i][out[0] > 0] = 0  # footprints excluded
    return out


def boundary_bands(ids: np.ndarray, inner: int, outer: int) -> np.ndarray:
    """uint8 0/1: the inner band (``inner`` px) and outer band (``outer`` px) of an instance-id raster."""
    result = np.zeros(ids.shape, dtype=bool)
    if inner > 0:
        size = 2 * inner + 1
        largest = ndimage.maximum_filter(ids, size=size, mode="nearest")
        smallest = ndimage.minimum_filter(ids, size=size, mode="nearest")
        result |= (ids > 0) & (smallest != largest)
    if outer > 0:
        result |= (ids == 0) & (ndimage.maximum_filter(ids, size=2 * outer + 1, mode="nearest") > 0)
    return result.astype(np.uint8)


def contact_mask(geometries: np.ndarray, radius: float, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    """uint8 0/1: pixels whose centre lies within ``radius`` (map units) of two or more ``geometries``."""
    out = np.zeros(shape, dtype=np.uint8)
    if len(geometries) < 2:
        return out
    grown = shapely.buffer(geometries, radius)
    left, right = shapely.STRtree(grown).query(grown, predicate="intersects")
    pairs = left < right
    if not pairs.any():
        return out
    overlaps = shapely.intersection(grown[left[pairs]], grown[right[pairs]])
    overlaps = overlaps[~shapely.is_empty(overlaps)]
    if not len(overlaps):
        return out
    return features.rasterize(
        ((g, 1) for g in overlaps),
        out_shape=shape,
        transform=transform,
        fill=0,
        dtype=np.uint8,
    )

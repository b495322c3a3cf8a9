"""Burn vector labels onto chip grids: class channel plus optional solaris-style extra channels.

A :class:`LabelLayer` holds the polygons of one scene with a spatial index, so burning a chip only touches
the polygons that intersect it (scenes have tens of thousands of footprints).

Extra channels, each 0/1 (``width`` = ``boundary_width`` pixels):
- ``boundary``: building pixels within ``width`` pixels of a pixel that belongs to another building or
  to the background (the inner edge of every footprint, also between touching buildings);
- ``contact``: pixels within ``width`` pixels of two or more different buildings (the gaps and shared
  walls between neighbouring buildings, which a model must keep apart).
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


def rasterize_labels(
    layer: LabelLayer,
    transform: Affine,
    shape: tuple[int, int],
    all_touched: bool = False,
    extra_channels: Sequence[str] = (),
    width: int = 2,
) -> np.ndarray:
    """``uint8 (1 + len(extra_channels), H, W)``: band 1 = class value (0 background), then the extras."""
    height, wide = shape
    out = np.zeros((1 + len(extra_channels), height, wide), dtype=np.uint8)
    pad = width if extra_channels else 0
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
    if extra_channels:
        padded = (height + 2 * pad, wide + 2 * pad)
        ids = features.rasterize(
            zip(geoms, np.arange(1, len(hits) + 1), strict=True),
            out_shape=padded,
            transform=transform @ Affine.translation(-pad, -pad),
            fill=0,
            all_touched=all_touched,
            dtype=np.int32,
        )
        masks = instance_edges(ids, width, extra_channels)
        for i, mask in enumerate(masks, start=1):
            out[i] = mask[pad : pad + height, pad : pad + wide]
    return out


def instance_edges(ids: np.ndarray, width: int, channels: Sequence[str]) -> list[np.ndarray]:
    """Boundary / contact masks (uint8) from an instance-id raster (0 = background)."""
    size = 2 * width + 1
    largest = ndimage.maximum_filter(ids, size=size, mode="nearest")
    results = []
    for name in channels:
        if name == "boundary":
            smallest = ndimage.minimum_filter(ids, size=size, mode="nearest")
            results.append(((ids > 0) & (smallest != largest)).astype(np.uint8))
        elif name == "contact":
            no_zero = np.where(ids > 0, ids, np.iinfo(np.int32).max)
            smallest_building = ndimage.minimum_filter(no_zero, size=size, mode="nearest")
            results.append(((largest > 0) & (smallest_building < largest)).astype(np.uint8))
        else:
            raise ValueError(f"unknown extra channel {name!r}; valid: {', '.join(EXTRA_CHANNELS)}")
    return results

"""xView2 submission masks from a scene prediction: localised buildings, one damage class each.

The localisation mask is traced into buildings (``min_area`` m² drops specks); every building takes the
damage class with the highest mean (per-pixel normalised) probability inside it (:meth:`Postprocessor.vote_polygons`,
as the sky-eye solution did); both masks are burnt back on the prediction grid: localisation 0/1,
damage 0 (no building) or 1 no-damage, 2 minor, 3 major, 4 destroyed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import geopandas as gpd
import numpy as np
from rasterio.features import rasterize

from eoseg.geo.raster import raster_info
from eoseg.post.postprocess import Postprocessor
from eoseg.post.vectorize import vectorize

DAMAGE_VALUES = (1, 2, 3, 4)


def xview2_masks(
    mask: str | os.PathLike[str],
    damage_prob: str | os.PathLike[str],
    min_area: float | Sequence[float] = 0.0,
) -> tuple[np.ndarray, np.ndarray, gpd.GeoDataFrame]:
    """``(localisation uint8 0/1, damage uint8 0..4, buildings with a damage column)`` on the mask's grid."""
    info = raster_info(mask)
    buildings = vectorize(mask, min_area=min_area)
    buildings = buildings[buildings["class"] > 0].reset_index(drop=True)
    voted = Postprocessor.vote_polygons(buildings, damage_prob, DAMAGE_VALUES, normalize=True, column="damage")
    shape = (info.height, info.width)
    if not len(voted):
        empty = np.zeros(shape, np.uint8)
        return empty, empty.copy(), voted
    localisation = rasterize(((g, 1) for g in voted.geometry), out_shape=shape, transform=info.transform,
                             fill=0, dtype="uint8")
    classes = voted["damage"].fillna(DAMAGE_VALUES[0]).astype(int)  # a building with no valid pixel: no-damage
    damage = rasterize(zip(voted.geometry, classes, strict=True), out_shape=shape, transform=info.transform,
                       fill=0, dtype="uint8")
    return localisation, damage, voted

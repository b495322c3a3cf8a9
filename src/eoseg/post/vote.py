"""Per-polygon class vote: each polygon takes the class with the highest mean probability inside it.

This is the xView2 damage step: buildings come from the localisation mask, and every building gets
one damage class from the damage probability raster instead of a patchwork of pixel classes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import geopandas as gpd
import numpy as np

from eoseg.geo.polygonize import DEFAULT_BAND_ROWS
from eoseg.post.zonal import zonal_means


def vote_polygons(
    polygons: gpd.GeoDataFrame,
    prob_raster: str | os.PathLike[str],
    classes: Sequence[int | str] | None = None,
    *,
    normalize: bool = True,
    column: str = "class",
    band_rows: int = DEFAULT_BAND_ROWS,
) -> gpd.GeoDataFrame:
    """A copy of ``polygons`` with ``column`` = the winning class and ``<column>_prob`` = its mean probability.

    ``classes`` labels the raster bands (default: band index 0..C-1). ``normalize`` makes each pixel's
    probabilities sum to one first (as the xView2 solution did). Polygons that cover no valid pixel get
    no class (None / NaN).
    """
    means, counts = zonal_means(polygons, prob_raster, normalize=normalize, band_rows=band_rows)
    labels = np.asarray(list(classes) if classes is not None else range(means.shape[1]), dtype=object)
    if labels.size != means.shape[1]:
        raise ValueError(f"{prob_raster}: {means.shape[1]} band(s) but {labels.size} class labels given")
    out = polygons.copy()
    covered = counts > 0
    winner = np.argmax(np.nan_to_num(means, nan=-1.0), axis=1)
    out[column] = np.where(covered, labels[winner], None)
    if all(isinstance(v, (int, np.integer)) for v in labels):
        out[column] = out[column].astype("Int64")
    out[f"{column}_prob"] = np.where(covered, means[np.arange(len(means)), winner], np.nan)
    return out

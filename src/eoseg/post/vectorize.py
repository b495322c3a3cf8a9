"""``vectorize``: polygons of a class mask with class, area in m² and mean probability attributes.

Memory: polygons are traced by row bands of about :data:`~eoseg.geo.polygonize.BAND_PIXELS` pixels (fewer
rows the wider the mask: 1,024 rows at 4,096 columns, 64 at 65,536), so a band does not grow with the
scene's width; zonal means read square blocks. What remains is the polygons themselves and those pending
on a band border.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely

from eoseg.errors import ConfigError, InputError
from eoseg.formats.spacenet import spacenet_image_id, write_spacenet_csv
from eoseg.geo.cog import GDAL_ENV
from eoseg.geo.polygonize import polygon_areas_m2, polygonize
from eoseg.geo.products import check_same_grid, check_vector_path, check_writable, scene_name, write_vector
from eoseg.geo.raster import raster_info
from eoseg.post.zonal import zonal_means


def vectorize(
    mask: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    prob: str | os.PathLike[str] | None = None,
    simplify: float = 0.0,
    min_area: float | Sequence[float] = 0.0,
    band: int = 1,
    prob_band: int | None = None,
    band_rows: int | None = None,
) -> gpd.GeoDataFrame:
    """Polygons of band ``band`` of a class mask (0 and nodata skipped), in the raster's CRS, holes kept.

    Columns: ``class``, ``area_m2`` (after simplification), ``mean_prob`` when ``prob`` is given (the
    mean, inside the traced polygon, of the probability band of that class: band ``prob_band`` when
    given, else the only band of a one-band raster, else band ``class + 1``). ``min_area`` (m², one value
    or one per class value) drops small polygons; ``simplify`` is a tolerance in CRS units (topology
    preserved). With ``out`` the polygons are also written (format by suffix), atomically. ``band_rows``:
    rows traced at a time (default :func:`~eoseg.geo.polygonize.band_rows_for` the mask's width; the polygons do not
    depend on it).
    """
    if out is not None:  # before tracing: a format the polygons cannot go to is refused at once
        check_vector_path(out, raster_info(mask).crs, inputs=[mask] if prob is None else [mask, prob])
    if prob is not None:
        check_same_grid([mask, prob], "mask and probability rasters", same_bands=False)
    if simplify < 0:
        raise ConfigError(f"--simplify: tolerance must be >= 0, got {simplify}")
    with rasterio.Env(**GDAL_ENV):  # a bounded GDAL block cache (its default grows with the machine)
        frame = polygonize(mask, band, band_rows=band_rows)
    limits = np.atleast_1d(np.asarray(min_area, dtype=np.float64))
    if limits.size > 1 and len(frame) and frame["class"].max() >= limits.size:
        raise ConfigError(f"--min-area: {limits.size} values but the mask has class {frame['class'].max()}")
    limit = limits[frame["class"].to_numpy(dtype=np.int64)] if limits.size > 1 else limits[0]
    frame = frame[frame["area_m2"].to_numpy() >= limit].reset_index(drop=True)
    if prob is not None:
        means, _ = zonal_means(frame, prob)
        if prob_band is not None:
            if not 1 <= prob_band <= means.shape[1]:
                raise ConfigError(f"{prob}: has {means.shape[1]} band(s), no band {prob_band}")
            frame["mean_prob"] = means[:, prob_band - 1]
        elif means.shape[1] == 1:
            frame["mean_prob"] = means[:, 0]
        else:
            cls = frame["class"].to_numpy(dtype=np.int64)
            if len(cls) and cls.max() >= means.shape[1]:
                raise ConfigError(f"{prob}: has {means.shape[1]} bands but the mask has class {cls.max()}")
            frame["mean_prob"] = means[np.arange(len(frame)), cls]
    if simplify > 0:
        frame = frame.set_geometry(frame.geometry.simplify(simplify, preserve_topology=True))
        frame["area_m2"] = polygon_areas_m2(frame.geometry.to_numpy(), frame.crs)
    if out is not None:
        write_vector(frame, Path(out))
    return frame


def scene_polygons(
    mask: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    prob: str | os.PathLike[str] | None = None,
    simplify: float = 0.0,
    multilabel: bool = False,
) -> Path:
    """``<name>.polygons.gpkg`` of a final prediction mask (``eoseg predict`` with ``predict.polygons``).

    One class band (binary, multiclass): as :func:`vectorize`. A multilabel mask (one 0/1 band per
    label): every band is traced, ``class`` = band number (label k + 1), ``mean_prob`` from that label's
    probability band. ``simplify`` is ``post.simplify``; minimum areas were applied to the mask already.
    """
    if not multilabel:
        vectorize(mask, out, prob=prob, simplify=simplify)
        return Path(out)
    check_vector_path(out, raster_info(mask).crs, inputs=[mask] if prob is None else [mask, prob])
    frames = []
    for band in range(1, raster_info(mask).count + 1):
        frame = vectorize(mask, prob=prob, simplify=simplify, band=band, prob_band=band if prob else None)
        frame["class"] = band
        frames.append(frame)
    write_vector(gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=frames[0].crs),
                 Path(out))
    return Path(out)


def spacenet_submission(
    masks: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    probs: Sequence[str | os.PathLike[str]] | None = None,
    simplify: float = 0.0,
    min_area: float | Sequence[float] = 0.0,
) -> gpd.GeoDataFrame:
    """A SpaceNet submission CSV (``ImageId, BuildingId, PolygonWKT_Pix, Confidence``) of several masks.

    The image id is the SpaceNet id in the mask's scene name (``RGB-PanSharpen_AOI_2_Vegas_img12.mask.tif`` ->
    ``AOI_2_Vegas_img12``; else the scene name),
    polygons are in the mask's pixel coordinates, the confidence is the polygon's mean probability (1 without
    ``probs``); an image without buildings gets the ``POLYGON EMPTY`` row.
    """
    if probs is not None and len(probs) != len(masks):
        raise InputError(f"--prob: {len(probs)} probability raster(s) for {len(masks)} mask(s); give one per mask")
    check_writable(out)
    frames, transforms = [], {}
    for i, mask in enumerate(masks):
        image_id = spacenet_image_id(scene_name(mask))
        frame = vectorize(mask, prob=probs[i] if probs is not None else None, simplify=simplify, min_area=min_area)
        confidence = frame["mean_prob"] if "mean_prob" in frame.columns else np.ones(len(frame))
        transforms[image_id] = raster_info(mask).transform
        if not len(frame):
            frame = gpd.GeoDataFrame({"class": [0]}, geometry=[shapely.Polygon()], crs=frame.crs)
            confidence = [0.0]
        frames.append(gpd.GeoDataFrame({"image_id": image_id, "building_id": np.arange(len(frame)),
                                        "confidence": np.asarray(confidence, dtype=float)},
                                       geometry=frame.geometry.to_numpy(), crs=frame.crs))
    table = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry")
    write_spacenet_csv(out, table, "geo", transforms)
    return table

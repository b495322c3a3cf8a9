"""Reading and writing for post-processing: probability windows, grid checks, output checks, vectors."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
from rasterio.windows import Window

from eoseg.errors import InputError
from eoseg.geo.atomic import atomic_path
from eoseg.geo.raster import RasterInfo, Source, raster_info, valid_mask

VECTOR_SUFFIXES = {".gpkg", ".parquet", ".geoparquet", ".geojson", ".json", ".shp", ".fgb"}


def read_probabilities(src: Source, window: Window | None = None) -> np.ndarray:
    """``float32 (C, h, w)`` probabilities in [0, 1] (uint8 rasters are divided by 255); NaN where nodata."""
    data = src.read(window=window)
    valid = valid_mask(data, src.nodata)
    scale = 255.0 if data.dtype == np.uint8 else 1.0
    out = data.astype(np.float32) / np.float32(scale)
    out[:, ~valid] = np.nan
    return out


def check_same_grid(
    paths: Sequence[str | os.PathLike[str]], what: str = "rasters", same_bands: bool = True
) -> list[RasterInfo]:
    """Infos of ``paths``; an :class:`InputError` names the first raster whose grid differs from the first."""
    infos = [raster_info(p) for p in paths]
    first = infos[0]
    for info in infos[1:]:
        if not first.same_grid(info):
            raise InputError(
                f"{info.path}: not on the grid of {first.path.name} ({_grid(info)} vs {_grid(first)}); "
                f"{what} must share CRS, transform and size: warp it first (gdalwarp) or predict on one grid"
            )
        if same_bands and info.count != first.count:
            raise InputError(
                f"{info.path}: has {info.count} band(s) but {first.path.name} has {first.count}; "
                f"{what} must have the same bands"
            )
    return infos


def _grid(info: RasterInfo) -> str:
    crs = info.crs.to_string() if info.crs else "no CRS"
    return f"{info.width}x{info.height} px, {crs}, origin ({info.transform.c:g}, {info.transform.f:g}), res {info.res}"


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Raise an :class:`InputError` when ``path`` cannot be written (folder not writable, a file in the way)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a file name for the output")
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(f"{path}: cannot write the output: {ancestor} is a file, not a folder; choose another --out")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(
            f"{path}: output folder {ancestor} is not writable; choose another --out or fix its permissions"
        )
    return path


def write_vector(frame: gpd.GeoDataFrame, path: str | os.PathLike[str]) -> Path:
    """Write polygons atomically; the format follows the suffix (.gpkg, .parquet, .geojson, .shp, .fgb).

    A Shapefile is several files: they are written into a temporary folder and moved beside each other.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VECTOR_SUFFIXES:
        raise InputError(f"{path}: unknown vector format {suffix!r}; use one of {', '.join(sorted(VECTOR_SUFFIXES))}")
    check_writable(path)
    if suffix in {".parquet", ".geoparquet"}:
        with atomic_path(path) as tmp:
            frame.to_parquet(tmp)
        return path
    if suffix != ".shp":
        with atomic_path(path) as tmp:
            frame.to_file(tmp, layer=path.stem, engine="pyogrio")
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", dir=path.parent))
    try:
        frame.to_file(staging / path.name, engine="pyogrio")
        for part in sorted(staging.iterdir(), key=lambda p: p.suffix.lower() == ".shp"):  # .shp last
            os.replace(part, path.parent / part.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path

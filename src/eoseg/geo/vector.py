"""Vector labels: read GeoJSON / GeoPackage / Shapefile / GeoParquet, reproject, repair, pick burn values."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from rasterio.crs import CRS

from eoseg.errors import ConfigError, InputError, require_files

PARQUET_SUFFIXES = {".parquet", ".geoparquet", ".pq"}


class LabelWarning(UserWarning):
    """A label file is usable but probably not what the user meant (e.g. nothing overlaps the scene)."""


def read_vector(path: str | os.PathLike[str], columns: list[str] | None = None) -> gpd.GeoDataFrame:
    """Read a vector file with geopandas (pyogrio, or pyarrow for GeoParquet); errors name the file."""
    path = Path(path)
    require_files([path], "label file")
    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            return gpd.read_parquet(path, columns=None if columns is None else [*columns, "geometry"])
        return gpd.read_file(path, engine="pyogrio", columns=columns)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, ValueError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(
            f"{path}: not a readable vector file ({first}); give GeoJSON, GPKG, SHP or GeoParquet"
        ) from exc


def read_attribute_values(path: str | os.PathLike[str], attribute: str) -> set[str]:
    """Distinct values (as strings) of one attribute, read without geometries."""
    path = Path(path)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        frame = pd.read_parquet(path, columns=[attribute]) if attribute in _parquet_columns(path) else None
    else:
        info = pyogrio.read_info(path)
        frame = (
            pyogrio.read_dataframe(path, columns=[attribute], read_geometry=False)
            if attribute in list(info["fields"])
            else None
        )
    if frame is None:
        raise InputError(f"{path}: label file has no attribute {attribute!r}; check burn_attribute")
    return {str(v) for v in frame[attribute].dropna().unique()}


def _parquet_columns(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return list(pq.read_schema(path).names)


def load_labels(
    path: str | os.PathLike[str],
    scene_crs: CRS | None,
    scene_bounds: tuple[float, float, float, float],
    label_crs: str | None = None,
    option: str = "label_crs",
    allow_empty: bool = False,
) -> gpd.GeoDataFrame:
    """Read labels, reproject them to the scene CRS and repair invalid geometries.

    A file without features is an error unless ``allow_empty`` (truth of a scene without objects, which
    scores as "no objects"); a file without CRS is an error unless ``label_crs`` is given
    (``option`` names the config key in the message). When no feature overlaps ``scene_bounds`` a
    :class:`LabelWarning` is issued and an empty frame is returned.
    """
    path = Path(path)
    frame = read_vector(path)
    if len(frame) == 0 and allow_empty:
        return frame.iloc[:0]
    if len(frame) == 0:
        raise InputError(f"{path}: label file has no features; add features or remove it from the scene's targets")
    check_polygonal(frame, path, scene_crs)
    if frame.crs is None:
        if label_crs is None:
            raise InputError(f"{path}: label file has no CRS; pass a CRS with {option}=EPSG:4326 (or the right one)")
        frame = frame.set_crs(label_crs)
    elif not lon_lat_fit(frame):  # a GeoJSON without CRS is read as WGS84 (RFC 7946): its own CRS was never given
        if label_crs is None:
            minx, miny, maxx, maxy = frame.total_bounds
            scene = f" (the scene's is {_crs_name(scene_crs)})" if scene_crs is not None else ""
            raise InputError(
                f"{path}: coordinates (x {minx:.10g} to {maxx:.10g}, y {miny:.10g} to {maxy:.10g}) are not longitude/"
                f"latitude, but the file has no CRS of its own, so it is read as WGS84 (the GeoJSON default); give "
                f"the CRS of its coordinates with {option}=EPSG:CODE{scene}"
            )
        frame = frame.set_crs(label_crs, allow_override=True)
    if scene_crs is not None:
        frame = frame.to_crs(scene_crs)
    frame = repair_polygons(frame)
    overlapping = frame.sindex.query(shapely.box(*scene_bounds), predicate="intersects")
    if len(overlapping) == 0:
        message = f"{path}: no label feature overlaps the scene; its chips get empty targets"
        warnings.warn(message, LabelWarning, stacklevel=2)
    return frame.iloc[np.sort(overlapping)].reset_index(drop=True)


def lon_lat_fit(frame: gpd.GeoDataFrame) -> bool:
    """False when the frame's CRS is geographic but its coordinates cannot be longitude/latitude."""
    if frame.crs is None or not frame.crs.is_geographic or frame.empty:
        return True
    minx, miny, maxx, maxy = frame.total_bounds
    return not (minx < -180 or maxx > 360 or miny < -90 or maxy > 90)  # NaN bounds compare False: fit


def _crs_name(crs: object) -> str:
    code = CRS.from_user_input(crs).to_epsg()
    return f"EPSG:{code}" if code else "in the scene file"


POINT_LINE_TYPES = {0: "point", 4: "point", 1: "line", 2: "line", 5: "line"}  # shapely type ids


def check_polygonal(frame: gpd.GeoDataFrame, path: Path, scene_crs: object = None) -> None:
    """Labels must be polygons: only points or lines is an error, some of them a warning (they are dropped)."""
    types = shapely.get_type_id(frame.geometry.values)
    kinds = [POINT_LINE_TYPES[t] for t in types if t in POINT_LINE_TYPES]
    if not kinds:
        return
    points, lines = kinds.count("point"), kinds.count("line")
    counts = " and ".join(f"{n} {kind} feature{'s' if n > 1 else ''}" for n, kind in ((points, "point"),
                                                                                     (lines, "line")) if n)
    name = _crs_name(scene_crs) if scene_crs is not None else None
    to_crs = f".to_crs('{name}')" if name and name.startswith("EPSG:") else ""
    how = (f"buffer them into polygons first, e.g. geopandas.read_file('{path}'){to_crs}.buffer(2.0)"
           f".to_file('buffered.gpkg') for {'2 m' if to_crs else '2 units of its CRS'} around each, and give that "
           "file instead")
    polygons = int(np.isin(types, [3, 6]).sum())
    if polygons == 0:
        raise InputError(f"{path}: {counts} and no polygon; labels must be polygons: {how}")
    warnings.warn(f"{path}: {counts} ignored (labels must be polygons); to label them, buffer them into polygons "
                  "(geopandas GeoSeries.buffer)", LabelWarning, stacklevel=3)


def repair_polygons(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Make invalid geometries valid (shapely.make_valid) and keep their polygonal parts only."""
    geoms = frame.geometry.values
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    invalid = ~missing & ~shapely.is_valid(geoms)
    if invalid.any():
        geoms = geoms.copy()
        geoms[invalid] = shapely.make_valid(geoms[invalid])
    parts = shapely.get_parts(geoms, return_index=True)
    polygonal = shapely.get_type_id(parts[0]) == 3
    polygons = parts[0][polygonal]
    rows = parts[1][polygonal]
    if not len(polygons):
        return frame.iloc[:0]
    out = frame.iloc[rows].copy()
    out = out.set_geometry(gpd.GeoSeries(polygons, crs=frame.crs, index=out.index))
    return out.reset_index(drop=True)


def burn_values(
    frame: gpd.GeoDataFrame,
    burn_value: int,
    attribute: str | None,
    class_map: dict[str, int] | None,
    path: str | os.PathLike[str],
) -> tuple[gpd.GeoDataFrame, np.ndarray]:
    """The features to burn and their class values: a constant, or an attribute mapped by ``class_map``.

    Features whose attribute value the class map does not list are dropped.
    """
    if attribute is None:
        return frame, np.full(len(frame), burn_value, dtype=np.int64)
    if attribute not in frame.columns:
        columns = ", ".join(c for c in frame.columns if c != frame.geometry.name)
        raise InputError(f"{path}: label file has no attribute {attribute!r}; attributes: {columns or 'none'}")
    raw = frame[attribute]
    if class_map is not None:
        mapped = raw.astype(str).map(class_map)
        keep = mapped.notna().to_numpy()
        return frame[keep].reset_index(drop=True), mapped[keep].to_numpy(dtype=np.int64)
    numeric = pd.to_numeric(raw, errors="coerce")
    if numeric.isna().any() or not np.all(numeric == np.round(numeric)):
        raise ConfigError(f"{path}: attribute {attribute!r} has non-integer values; map them to classes with class_map")
    return frame, numeric.to_numpy(dtype=np.int64)


def check_class_map(paths: list[Path], attribute: str, class_map: dict[str, int], option: str) -> None:
    """Raise when ``class_map`` names a value that none of the label files contains."""
    present: set[str] = set()
    for path in paths:
        present |= read_attribute_values(path, attribute)
    absent = sorted(set(class_map) - present)
    if absent:
        files = paths[0].name if len(paths) == 1 else f"{len(paths)} label files"
        raise ConfigError(
            f"{option}: names value(s) {absent} absent from attribute {attribute!r} in {files}; "
            f"values present: {sorted(present)[:20]}"
        )

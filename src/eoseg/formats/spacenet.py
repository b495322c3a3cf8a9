"""SpaceNet building CSVs: one row per building, polygons as WKT in pixel and/or map coordinates.

Truth layout: ``ImageId, BuildingId, PolygonWKT_Pix, PolygonWKT_Geo``; submission layout:
``ImageId, BuildingId, PolygonWKT_Pix, Confidence``. An image without buildings has one row with
``POLYGON EMPTY`` (BuildingId -1); those rows are kept as empty geometries so the image is known.
Pixel coordinates are (column, row) with the origin at the top-left corner of the image.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import geopandas as gpd
import pandas as pd
import shapely
from affine import Affine

from eoseg.config.schema import SceneSpec
from eoseg.errors import InputError
from eoseg.geo.atomic import atomic_path
from eoseg.geo.polygonize import apply_affine

PIX, GEO = "PolygonWKT_Pix", "PolygonWKT_Geo"
SPACENET_IMAGE_FOLDERS = ("RGB-PanSharpen", "PS-RGB", "PS-MS", "MUL-PanSharpen", "PAN", "MUL")
AOI_PATTERN = r"^(AOI_\d+_[A-Za-z]+)"
"""Default AOI of an image id: SpaceNet's ``AOI_<n>_<City>`` prefix (else the id up to its last ``_``)."""


SPACENET_ID = re.compile(r"(AOI_\d+_[A-Za-z]+_img\d+)$")
"""A SpaceNet image id at the end of a file name (``RGB-PanSharpen_AOI_2_Vegas_img12`` -> ``AOI_2_Vegas_img12``)."""


def spacenet_image_id(name: str) -> str:
    """The SpaceNet image id in a file or scene name (without prefixes such as ``RGB-PanSharpen_``), else the name."""
    found = SPACENET_ID.search(name)
    return found.group(1) if found else name


def aoi_of(image_id: str, pattern: str = AOI_PATTERN) -> str:
    """The AOI of an image id: the first group of ``pattern``, else the id up to its last ``_``."""
    found = re.match(pattern, image_id)
    if found:
        return found.group(1) if found.groups() else found.group(0)
    return image_id.rsplit("_", 1)[0] if "_" in image_id else image_id


def read_spacenet_csv(
    path: str | os.PathLike[str], coords: Literal["pixel", "geo"] = "pixel", crs: object | None = None
) -> gpd.GeoDataFrame:
    """Read a SpaceNet CSV into a GeoDataFrame (columns image_id, building_id, [confidence], geometry).

    ``coords`` picks the WKT column; ``crs`` is set on the frame for map coordinates.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: SpaceNet CSV not found; check the path")
    table = pd.read_csv(path)
    column = PIX if coords == "pixel" else GEO
    missing = [c for c in ("ImageId", column) if c not in table.columns]
    if missing:
        raise InputError(
            f"{path}: not a SpaceNet CSV with {coords} coordinates: missing column(s) {missing} "
            f"(found {list(table.columns)})"
        )
    try:
        geometry = shapely.from_wkt(table[column].fillna("POLYGON EMPTY").astype(str).to_numpy())
    except shapely.errors.GEOSException as exc:
        raise InputError(f"{path}: column {column} holds invalid WKT ({exc})") from exc
    frame = pd.DataFrame({"image_id": table["ImageId"].astype(str)})
    frame["building_id"] = table["BuildingId"] if "BuildingId" in table.columns else range(len(table))
    if "Confidence" in table.columns:
        frame["confidence"] = table["Confidence"].astype(float)
    return gpd.GeoDataFrame(frame, geometry=geometry, crs=crs if coords == "geo" else None)


def write_spacenet_csv(
    path: str | os.PathLike[str],
    frame: gpd.GeoDataFrame,
    coords: Literal["pixel", "geo"] = "pixel",
    transforms: Affine | Mapping[str, Affine] | None = None,
) -> Path:
    """Write polygons (``image_id``, ``geometry``, optional ``building_id``/``confidence``) as a SpaceNet CSV.

    ``coords`` says which coordinates ``geometry`` holds; ``transforms`` (one affine, or one per image id)
    maps pixel to map coordinates and fills the other column. With a ``confidence`` column the
    submission layout is written, else the truth layout (the Geo column needs transforms for pixel input).
    """
    if "image_id" not in frame.columns:
        raise ValueError("write_spacenet_csv needs an image_id column")
    if coords == "geo" and transforms is None:
        raise ValueError("geo coordinates need transforms to compute PolygonWKT_Pix")

    def transform_of(image_id: str) -> Affine:
        return transforms if isinstance(transforms, Affine) else transforms[image_id]

    pix, geo = [], []
    for image_id, geom in zip(frame["image_id"], frame.geometry, strict=True):
        if coords == "pixel":
            pix.append(geom)
            geo.append(apply_affine(geom, transform_of(image_id)) if transforms is not None else None)
        else:
            geo.append(geom)
            pix.append(apply_affine(geom, ~transform_of(image_id)))
    empty = [g is None or g.is_empty for g in pix]
    ids = frame["building_id"] if "building_id" in frame.columns else range(len(frame))
    table = pd.DataFrame(
        {
            "ImageId": frame["image_id"].astype(str).to_numpy(),
            "BuildingId": [-1 if e else int(i) for e, i in zip(empty, ids, strict=True)],
            PIX: [_wkt(g) for g in pix],
        }
    )
    if "confidence" in frame.columns:
        table["Confidence"] = frame["confidence"].to_numpy()
    elif transforms is not None:
        table[GEO] = [_wkt(g) for g in geo]
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return Path(path)


def _wkt(geom: shapely.Geometry | None) -> str:
    if geom is None or geom.is_empty:
        return "POLYGON EMPTY"
    return shapely.to_wkt(geom, rounding_precision=-1)


def spacenet_scenes(folder: Path, targets: list[str]) -> list[SceneSpec]:
    """Scenes of a SpaceNet building folder (``data.format.name=spacenet``), read in place.

    One scene per ``<AOI>/<RGB-PanSharpen|PS-RGB|...>/<prefix>_AOI_<n>_<City>_img<k>.tif``; its label (for
    every target) is the GeoJSON under a ``geojson*`` folder whose name ends in ``_<image id>.geojson``;
    the region (folds, per-AOI scores) is the AOI of the image id.
    """
    images = sorted(p for name in SPACENET_IMAGE_FOLDERS for p in folder.glob(f"**/{name}/*.tif"))
    if not images:
        raise InputError(f"{folder}: no SpaceNet images found (expected */RGB-PanSharpen/*.tif or */PS-RGB/*.tif)")
    labels = {p.stem: p for p in folder.glob("**/geojson*/**/*.geojson")}
    scenes = []
    for image in images:
        image_id = spacenet_image_id(image.stem)
        label = next((p for stem, p in labels.items() if stem.endswith(f"_{image_id}")), None)
        if label is None:
            raise InputError(f"{image}: no buildings GeoJSON ending in _{image_id}.geojson under a geojson* folder")
        scenes.append(SceneSpec(id=image_id, images={"image": image}, targets=dict.fromkeys(targets, label),
                                region=aoi_of(image_id)))
    return scenes

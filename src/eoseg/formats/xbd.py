"""xBD / xView2 label JSON: building polygons with their damage subtype.

A file has ``metadata`` and ``features.xy`` (pixel coordinates) / ``features.lng_lat`` (WGS84), each a
list of ``{"properties": {"feature_type", "subtype", "uid"}, "wkt": ...}``. Damage classes follow
the xView2 submission: 1 no-damage, 2 minor, 3 major, 4 destroyed; 0 means no damage label
(pre-disaster image, or ``un-classified`` unless ``unclassified`` gives it a class).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Literal

import geopandas as gpd
import shapely

from eoseg.config.schema import SceneSpec
from eoseg.errors import InputError

DAMAGE_CLASSES = {"no-damage": 1, "minor-damage": 2, "major-damage": 3, "destroyed": 4}


def read_xbd_json(
    path: str | os.PathLike[str], coords: Literal["xy", "lng_lat"] = "xy", unclassified: int = 0
) -> gpd.GeoDataFrame:
    """Buildings of one xBD label file: columns uid, feature_type, subtype, damage, geometry.

    ``coords="lng_lat"`` gives EPSG:4326 geometries; ``"xy"`` pixel (column, row) geometries without CRS.
    The file's metadata is kept in ``frame.attrs["metadata"]``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: xBD label file not found; check the path")
    try:
        doc = json.loads(path.read_text())
        features = doc["features"][coords]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not an xBD label JSON with features.{coords} ({exc})") from exc
    rows = []
    for feature in features:
        props = feature.get("properties", {})
        subtype = props.get("subtype")
        rows.append(
            {
                "uid": props.get("uid"),
                "feature_type": props.get("feature_type"),
                "subtype": subtype,
                "damage": DAMAGE_CLASSES.get(subtype, unclassified if subtype == "un-classified" else 0),
                "geometry": shapely.from_wkt(feature["wkt"]),
            }
        )
    columns = ["uid", "feature_type", "subtype", "damage", "geometry"]
    frame = gpd.GeoDataFrame(
        rows, columns=columns, geometry="geometry", crs="EPSG:4326" if coords == "lng_lat" else None
    )
    frame["damage"] = frame["damage"].astype("int64")
    frame.attrs["metadata"] = doc.get("metadata", {})
    return frame


XBD_IMAGE = re.compile(r"^(?P<id>(?P<disaster>.+)_\d+)_(?P<when>pre|post)_disaster\.(?:png|tif|tiff)$")


def xbd_scenes(folder: Path, targets: list[str]) -> list[SceneSpec]:
    """Scenes of an xBD folder (``data.format.name=xbd``), read in place.

    One scene per ``<split>/images/<disaster>_<id>_{pre,post}_disaster.{png,tif}`` pair, images ``pre`` and
    ``post``; every target reads ``<split>/labels/<disaster>_<id>_post_disaster.json``; region = disaster.
    """
    pairs: dict[str, dict[str, Path]] = {}
    disasters: dict[str, str] = {}
    for path in sorted(folder.glob("**/images/*")):
        found = XBD_IMAGE.match(path.name)
        if found:
            pairs.setdefault(found["id"], {})[found["when"]] = path
            disasters[found["id"]] = found["disaster"]
    if not pairs:
        raise InputError(f"{folder}: no xBD images found (expected */images/<disaster>_<id>_pre_disaster.png)")
    scenes = []
    for image_id, pair in sorted(pairs.items()):
        if set(pair) != {"pre", "post"}:
            missing = ({"pre", "post"} - set(pair)).pop()
            raise InputError(f"{next(iter(pair.values()))}: the {missing}-disaster image of {image_id} is missing")
        label = pair["post"].parent.parent / "labels" / f"{image_id}_post_disaster.json"
        if targets and not label.is_file():
            raise InputError(f"{label}: label JSON of {image_id} not found beside its images")
        scenes.append(SceneSpec(id=image_id, images={"pre": pair["pre"], "post": pair["post"]},
                                targets=dict.fromkeys(targets, label), region=disasters[image_id]))
    return scenes

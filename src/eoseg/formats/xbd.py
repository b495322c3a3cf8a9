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
import numpy as np
import shapely

from eoseg.config.schema import SceneSpec
from eoseg.errors import InputError
from eoseg.geo.atomic import atomic_path

DAMAGE_CLASSES = {"no-damage": 1, "minor-damage": 2, "major-damage": 3, "destroyed": 4}
SUBTYPES = (*DAMAGE_CLASSES, "un-classified")


def is_xbd_json(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an xBD label file (a ``.json`` whose ``features`` is an object with ``xy``)."""
    path = Path(path)
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(doc, dict) and isinstance(doc.get("features"), dict) and "xy" in doc["features"]


def xbd_labels(path: str | os.PathLike[str], crs: object | None) -> gpd.GeoDataFrame:
    """Buildings of an xBD label file placed on a scene: ``features.xy`` (pixels) for an image without CRS
    (PNG: its pixel grid), else ``features.lng_lat`` reprojected to ``crs`` (GeoTIFF pairs)."""
    if crs is None:
        return read_xbd_json(path, "xy")
    return read_xbd_json(path, "lng_lat").to_crs(crs)


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
        if subtype is not None and subtype not in SUBTYPES:
            raise InputError(
                f"{path}: feature {props.get('uid', '?')} has unknown subtype {subtype!r}; xBD subtypes are "
                f"{', '.join(SUBTYPES)} (fix the label file)"
            )
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


# ------------------------------------------------------------------------------ xView2 submission PNGs

XVIEW2_NAME = re.compile(
    r"^(?P<split>[a-z]+)_(?P<kind>localization|damage)_(?P<id>.+)_(?P<role>prediction|target)\.png$"
)
XVIEW2_PAIR = (re.compile(r"^test_(?:pre|post)_(?P<id>.+)$"), re.compile(r"^(?P<id>.+)_(?:pre|post)_disaster$"))


def xview2_image_id(name: str) -> str:
    """The xView2 id of an image: ``test_post_00012`` -> ``00012``, ``a_00000001_post_disaster`` -> ``a_00000001``."""
    for pattern in XVIEW2_PAIR:
        found = pattern.match(name)
        if found:
            return found["id"]
    return name


def xview2_png_name(kind: Literal["localization", "damage"], image_id: str, role: str = "prediction",
                    split: str = "test") -> str:
    """``test_localization_<id>_prediction.png`` and its siblings (the official file names)."""
    return f"{split}_{kind}_{image_id}_{role}.png"


def write_xview2_png(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Write a uint8 single-channel xView2 PNG (values 0..4) atomically."""
    from PIL import Image

    array = np.asarray(array)
    if array.ndim != 2 or array.dtype != np.uint8 or array.max(initial=0) > 4:
        raise ValueError(f"{path}: an xView2 PNG is a 2-D uint8 array with values 0..4")
    with atomic_path(path) as tmp:
        Image.fromarray(array, mode="L").save(tmp, format="PNG")
    return Path(path)


def read_xview2_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an xView2 PNG, checked like the official scorer: one 8-bit channel, values 0..4."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as image:
            array = np.asarray(image)
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(f"{path}: not a readable PNG ({exc}); xView2 files are 8-bit single-channel PNGs") from exc
    if array.ndim != 2 or array.dtype != np.uint8:
        raise InputError(f"{path}: xView2 PNGs are single-channel uint8, got shape {array.shape} {array.dtype}")
    if array.max(initial=0) > 4:
        raise InputError(f"{path}: holds value {int(array.max())}; xView2 PNGs hold 0..4 only")
    return array


def xview2_pairs(folder: str | os.PathLike[str], role: str) -> dict[str, dict[str, Path]]:
    """``{image id: {"localization": png, "damage": png}}`` of the ``*_<role>.png`` files in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder; give the folder of xView2 {role} PNGs")
    found: dict[str, dict[str, Path]] = {}
    for path in sorted(folder.glob(f"*_{role}.png")):
        match = XVIEW2_NAME.match(path.name)
        if match:
            found.setdefault(match["id"], {})[match["kind"]] = path
    for image_id, files in found.items():
        if set(files) != {"localization", "damage"}:
            missing = ({"localization", "damage"} - set(files)).pop()
            raise InputError(f"{folder}: image {image_id} has no {missing} {role} PNG "
                             f"({xview2_png_name(missing, image_id, role)})")
    return found

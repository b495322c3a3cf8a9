"""Overhead Geopose: RGB + AGL height + VFLOW JSON per tile, and the submission files.

The layout DrivenData published::

    metadata.csv              id, city, gsd (metres per pixel), one row per tile (train and test)
    train/<id>_RGB.j2k        oblique RGB (JPEG 2000; a GeoTIFF ``<id>_RGB.tif`` is read as well)
    train/<id>_AGL.tif        height above ground, uint16 centimetres, 65535 = no LiDAR
    train/<id>_VFLOW.json     {"scale": pixels per cm, "angle": radians}
    test/<id>_RGB.j2k

The flow of a pixel is ``AGL · scale · (sin θ, cos θ)`` = (x along columns, y down the rows), the
convention eoseg's direction vectors use. A submission holds ``<id>_AGL.tif`` (uint16 cm) and
``<id>_VFLOW.json`` per test tile. Heights are declared in one unit (``cm`` as published, or ``m``)
and converted to metres once, when read: the model, its losses and the metric work in metres.

The ground sample distance of a tile (``gsd`` in metadata.csv, metres per pixel) reaches the model as an
image of its own, ``gsd``: a constant plane on the RGB's grid (:func:`write_gsd_plane`), written by
prepare beside the targets and by ``predict --format geopose`` for each test tile.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import rasterio

from eoseg.config.schema import SceneSpec
from eoseg.errors import InputError
from eoseg.geo.atomic import atomic_path, write_text_atomic
from eoseg.geo.raster import no_grid_warning, open_raster, raster_info, write_geotiff

AGL_MISSING = 65535
GSD_IMAGE = "gsd"
"""Image name of the ground-sample-distance plane (``data.bands.gsd``, ``data.inputs`` channel ``gsd``)."""
RGB_SUFFIXES = (".j2k", ".jp2", ".tif", ".tiff", ".png")
METADATA_COLUMNS = ("id", "city")
Unit = Literal["cm", "m"]
TO_METRES = {"cm": 0.01, "m": 1.0}


@dataclass(frozen=True)
class Vflow:
    """A tile's flow: ``scale`` in pixels per centimetre of height, ``angle`` in radians."""

    scale: float
    angle: float

    @property
    def direction(self) -> tuple[float, float]:
        """Unit vector (x along columns, y down the rows) = (sin θ, cos θ)."""
        return math.sin(self.angle), math.cos(self.angle)


def read_vflow(path: str | os.PathLike[str]) -> Vflow:
    """Read a ``*_VFLOW.json``; InputError names the file and the missing or non-numeric key."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: VFLOW file not found; every tile needs <id>_VFLOW.json beside its AGL")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f'{path}: not a JSON file ({exc}); expected {{"scale": px/cm, "angle": radians}}') from exc
    values = {}
    for key in ("scale", "angle"):
        value = doc.get(key) if isinstance(doc, dict) else None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise InputError(
                f"{path}: no numeric {key!r} (found {sorted(doc) if isinstance(doc, dict) else type(doc).__name__}); "
                'a VFLOW file is {"scale": pixels per cm, "angle": radians}'
            )
        values[key] = float(value)
    return Vflow(values["scale"], values["angle"])


def write_vflow(path: str | os.PathLike[str], vflow: Vflow) -> Path:
    """Write ``{"scale": px/cm, "angle": radians}`` atomically (angle wrapped to [0, 2π))."""
    return write_text_atomic(path, json.dumps({"scale": vflow.scale, "angle": vflow.angle % (2 * math.pi)}))


def read_agl(path: str | os.PathLike[str], unit: Unit = "cm") -> np.ndarray:
    """Height above ground in metres ``float64 (H, W)``, NaN where the file says 65535 (or its nodata)."""
    with no_grid_warning(), open_raster(path) as src:
        data = src.read(1)
        nodata = src.nodata
    heights = data.astype(np.float64)
    missing = data == AGL_MISSING if np.issubdtype(data.dtype, np.integer) else ~np.isfinite(heights)
    if nodata is not None and np.isfinite(nodata):
        missing |= data == nodata
    heights *= TO_METRES[unit]
    heights[missing] = np.nan
    return heights


def write_agl(path: str | os.PathLike[str], metres: np.ndarray, unit: Unit = "cm") -> Path:
    """Write heights (metres, NaN = unknown) as the submission's AGL: uint16 in ``unit``, 65535 = unknown."""
    values = np.nan_to_num(np.asarray(metres, np.float64) / TO_METRES[unit], nan=AGL_MISSING)
    array = np.where(np.isfinite(metres), np.clip(np.rint(values), 0, AGL_MISSING - 1), AGL_MISSING).astype(np.uint16)
    profile = {
        "driver": "GTiff",
        "count": 1,
        "height": array.shape[0],
        "width": array.shape[1],
        "dtype": "uint16",
        "nodata": AGL_MISSING,
        "compress": "deflate",
    }
    with no_grid_warning(), atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(array, 1)
    return Path(path)


def tile_id(path: str | os.PathLike[str]) -> str:
    """``JAX_abc_RGB.j2k`` -> ``JAX_abc``."""
    return Path(path).name.split(".")[0].removesuffix("_RGB")


def city_of(tile: str) -> str:
    """The city prefix of a tile id (``JAX_abc`` -> ``JAX``), as the official evaluator groups them."""
    return tile.split("_")[0]


def read_metadata(path: str | os.PathLike[str]) -> pd.DataFrame:
    """``metadata.csv`` indexed by id, with columns city (and gsd when present)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: metadata CSV not found; give the competition's metadata.csv (id, city, gsd)")
    try:
        table = pd.read_csv(path, dtype={"id": str, "city": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable CSV ({exc}); expected columns id, city, gsd") from exc
    missing = [c for c in METADATA_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; metadata.csv has columns id, city, gsd")
    return table.set_index("id")


def tile_gsd(meta: pd.DataFrame, tile: str, metadata_csv: Path) -> float:
    """The ground sample distance (m/px) of ``tile`` in ``metadata.csv``; InputError when absent or not > 0."""
    if "gsd" not in meta.columns:
        raise InputError(f"{metadata_csv}: no gsd column; the model takes each tile's ground sample distance "
                         "(metres per pixel) from it, as the competition's metadata.csv has (id, city, gsd)")
    if tile not in meta.index:
        raise InputError(f"{metadata_csv}: no row for tile {tile!r}; add it (id, city, gsd)")
    value = pd.to_numeric(pd.Series([meta.at[tile, "gsd"]]), errors="coerce").iloc[0]
    if not (np.isfinite(value) and value > 0):
        raise InputError(f"{metadata_csv}: tile {tile!r} has gsd {meta.at[tile, 'gsd']!r}; give its ground "
                         "sample distance in metres per pixel (a number > 0)")
    return float(value)


def write_gsd_plane(path: str | os.PathLike[str], gsd: float, like: str | os.PathLike[str]) -> Path:
    """A float32 raster on the grid of the image ``like`` whose every pixel is ``gsd`` (the model's gsd input)."""
    with no_grid_warning(), open_raster(like) as src:
        shape, crs, transform = (src.height, src.width), src.crs, src.transform
    with no_grid_warning():
        return write_geotiff(path, np.full((1, *shape), gsd, np.float32), crs, transform, None)


def find_metadata(tile: str | os.PathLike[str]) -> Path:
    """``metadata.csv`` of a test tile in the competition's layout: beside its folder (``test/``), or in it."""
    folder = Path(tile).resolve().parent
    for candidate in (folder.parent / "metadata.csv", folder / "metadata.csv"):
        if candidate.is_file():
            return candidate
    raise InputError(
        f"{tile}: no metadata.csv in {folder.parent} or {folder}; the model takes each tile's ground sample "
        "distance (gsd) from it: keep the competition's layout (metadata.csv beside test/)"
    )


def _rgb_files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.iterdir()):
        if path.name.split(".")[0].endswith("_RGB") and path.suffix.lower() in RGB_SUFFIXES:
            yield path


def geopose_scenes(
    metadata_csv: str | os.PathLike[str], unit: Unit, out_dir: str | os.PathLike[str], gsd: bool = False
) -> list[SceneSpec]:
    """Scenes of ``metadata.csv`` + ``train/``: per tile the RGB and, in ``out_dir``, its targets.

    Targets (float32, NaN = unknown, on the RGB's grid): ``<id>.height.tif`` (metres),
    ``<id>.magnitude.tif`` (flow length in pixels = AGL · scale) and ``<id>.flow.tif`` (2 bands, the
    direction (sin θ, cos θ)). With ``gsd`` each tile gets a second image ``gsd``, ``<id>.gsd.tif``
    (:func:`write_gsd_plane`). The city is the scene's region (folds by city). Every tile is checked
    (its AGL grid, its VFLOW keys, its row and gsd in the metadata) before anything is written.
    """
    metadata_csv, out_dir = Path(metadata_csv), Path(out_dir)
    meta = read_metadata(metadata_csv)
    folder = metadata_csv.parent / "train"
    if not folder.is_dir():
        raise InputError(f"{folder}: training folder not found; metadata.csv needs train/ beside it")
    tiles = []
    for rgb in _rgb_files(folder):
        tile = tile_id(rgb)
        if tile not in meta.index:
            raise InputError(f"{rgb}: tile {tile!r} has no row in {metadata_csv}; add it (id, city, gsd)")
        agl = folder / f"{tile}_AGL.tif"
        if not agl.is_file():
            raise InputError(f"{rgb}: no {agl.name} beside it; every training tile needs its AGL raster")
        with no_grid_warning():
            rgb_info, agl_info = raster_info(rgb), raster_info(agl)
        if (agl_info.height, agl_info.width) != (rgb_info.height, rgb_info.width) or (
            rgb_info.crs is not None and agl_info.crs is not None and not rgb_info.same_grid(agl_info)
        ):
            raise InputError(
                f"{agl}: grid {agl_info.width}x{agl_info.height} px differs from {rgb.name} "
                f"({rgb_info.width}x{rgb_info.height} px); the AGL must be on the RGB's pixel grid"
            )
        tiles.append((tile, rgb, agl, read_vflow(folder / f"{tile}_VFLOW.json"),
                      tile_gsd(meta, tile, metadata_csv) if gsd else None))
    if not tiles:
        raise InputError(f"{folder}: no <id>_RGB.j2k (or .tif) files; put the training tiles there")
    scenes = []
    for tile, rgb, agl, vflow, gsd_value in tiles:
        with no_grid_warning(), open_raster(rgb) as src:
            crs, transform = src.crs, src.transform
        height = read_agl(agl, unit)
        magnitude = height / TO_METRES["cm"] * vflow.scale  # pixels: AGL in cm times px/cm
        direction = np.broadcast_to(np.asarray(vflow.direction, np.float32)[:, None, None], (2, *height.shape))
        paths = {}
        for name, array in (("height", height[None]), ("magnitude", magnitude[None]), ("flow", direction)):
            paths[name] = out_dir / f"{tile}.{name}.tif"
            with no_grid_warning():
                write_geotiff(paths[name], np.ascontiguousarray(array, np.float32), crs, transform, float("nan"))
        images = {"image": rgb}
        if gsd_value is not None:
            images[GSD_IMAGE] = write_gsd_plane(out_dir / f"{tile}.{GSD_IMAGE}.tif", gsd_value, rgb)
        region = str(meta.at[tile, "city"])
        scenes.append(SceneSpec(id=tile, region=region, images=images, targets=paths))
    return scenes

"""Quicklook PNGs of a scene: the image with its predicted mask and polygons, and an error map.

Large scenes are read at a reduced size (rasterio uses the overviews when the file has them), so a
quicklook of a whole city costs about as much as reading a ``max_size`` picture.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import cv2
import geopandas as gpd
import numpy as np
import rasterio
from affine import Affine
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from rasterio.enums import Resampling
from shapely.geometry.base import BaseGeometry

from eoseg.errors import InputError
from eoseg.geo.atomic import atomic_path
from eoseg.geo.products import IGNORE
from eoseg.report.render import IGNORE_RGB, display_rgb, encode_png, figure_png, overlay_classes

POLYGON_RGB = (255, 235, 59)
"""Outline colour of vector polygons (yellow)."""
ERROR_CLASSES = {  # name: colour (RGB)
    "true positive": (46, 184, 92),
    "false positive": (228, 40, 40),
    "false negative": (50, 120, 230),
    "wrong class": (255, 150, 0),
    "true negative": (28, 28, 28),
    "ignored": IGNORE_RGB,
}
LEGEND_HEIGHT = 48
"""Pixels below the error map that hold its legend."""
LEGEND_MIN_WIDTH = 640
"""The error map PNG is at least this wide so the legend fits."""

Polygons = str | Path | gpd.GeoDataFrame | gpd.GeoSeries | Iterable[BaseGeometry]


def quicklook_png(
    image_path: str | Path,
    mask_path: str | Path | None,
    out_png: str | Path,
    polygons: Polygons | None = None,
    max_size: int = 1024,
) -> Path:
    """Write a PNG of the image (at most ``max_size`` pixels on its long side) with the mask and polygons.

    The image shows its first three bands (or its one band as grey), stretched 2-98 % unless it is uint8.
    Mask classes (0 = background, 255 = nodata) are tinted in the report's class colours; ``polygons``
    (a vector file, a GeoDataFrame/GeoSeries, or shapely geometries in the image CRS) are outlined in yellow.
    """
    image_path = Path(image_path)
    with _open(image_path) as src:
        shape = reduced_shape(src.height, src.width, max_size)
        indexes = [1, 2, 3] if src.count >= 3 else [1]
        bands = src.read(indexes, out_shape=(len(indexes), *shape), resampling=Resampling.average, masked=True)
        valid = ~np.ma.getmaskarray(bands).any(axis=0)
        picture = display_rgb(np.ma.getdata(bands), valid)
        to_pixels = ~(src.transform @ Affine.scale(src.width / shape[1], src.height / shape[0]))
        crs = src.crs
        full_shape = (src.height, src.width)
    if mask_path is not None:
        mask = _read_reduced(Path(mask_path), full_shape, shape, image_path)
        n_classes = max(2, int(mask[mask != IGNORE].max(initial=0)) + 1)
        picture = overlay_classes(picture, mask, n_classes, alpha=0.45)
    if polygons is not None:
        _outline(picture, _geometries(polygons, crs), to_pixels)
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        tmp.write_bytes(encode_png(picture))
    return out_png


def error_map_png(
    pred_path: str | Path,
    truth_path_or_array: str | Path | np.ndarray,
    out_png: str | Path,
    max_size: int = 1024,
) -> Path:
    """Write a PNG that colours each pixel of a predicted mask by its outcome against the truth, with a legend.

    Both are class-index rasters (0 = background, 255 = ignore/nodata) on the same grid; the truth may
    be an array of the prediction's full size. Outcomes: true positive (right foreground class), false
    positive, false negative, wrong class (foreground of another class), true negative, ignored. The map
    is at most ``max_size`` pixels on its long side; below it a legend strip of ``LEGEND_HEIGHT`` pixels
    gives each outcome's share; the PNG is at least ``LEGEND_MIN_WIDTH`` wide.
    """
    pred_path = Path(pred_path)
    with _open(pred_path) as src:
        full_shape = (src.height, src.width)
        shape = reduced_shape(src.height, src.width, max_size)
        pred = src.read(1, out_shape=shape, resampling=Resampling.nearest)
        pred_nodata = src.nodata
    if isinstance(truth_path_or_array, np.ndarray):
        truth = truth_path_or_array
        if truth.shape != full_shape:
            raise InputError(f"truth array is {truth.shape[0]}x{truth.shape[1]} pixels but {pred_path} is "
                             f"{full_shape[0]}x{full_shape[1]}; rasterize the truth on the prediction's grid")
        truth = _nearest_reduce(truth, shape)
    else:
        truth = _read_reduced(Path(truth_path_or_array), full_shape, shape, pred_path)
    outcome = error_classes(pred, truth, pred_nodata)
    colours = np.array(list(ERROR_CLASSES.values()), np.uint8)
    shares = {name: float((outcome == i).mean()) for i, name in enumerate(ERROR_CLASSES)}
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        tmp.write_bytes(_with_legend(colours[outcome], shares))
    return out_png


def error_classes(pred: np.ndarray, truth: np.ndarray, pred_nodata: float | None = IGNORE) -> np.ndarray:
    """Per-pixel outcome index into ``ERROR_CLASSES`` (0 TP, 1 FP, 2 FN, 3 wrong class, 4 TN, 5 ignored)."""
    pred = pred.astype(np.int64)
    truth = truth.astype(np.int64)
    ignored = (truth == IGNORE) | (pred == IGNORE)
    if pred_nodata is not None and np.isfinite(pred_nodata):
        ignored |= pred == int(pred_nodata)
    outcome = np.full(pred.shape, 4, np.uint8)
    outcome[(pred > 0) & (pred == truth)] = 0
    outcome[(pred > 0) & (truth == 0)] = 1
    outcome[(pred == 0) & (truth > 0)] = 2
    outcome[(pred > 0) & (truth > 0) & (pred != truth)] = 3
    outcome[ignored] = 5
    return outcome


def reduced_shape(height: int, width: int, max_size: int) -> tuple[int, int]:
    """(rows, cols) of a picture of a ``height`` x ``width`` raster whose long side is at most ``max_size``."""
    if max_size < 1:
        raise InputError(f"max_size={max_size}: the quicklook size must be at least 1 pixel")
    factor = max(1.0, max(height, width) / max_size)
    return max(1, math.floor(height / factor)), max(1, math.floor(width / factor))


# ----------------------------------------------------------------------------------------------- helpers


def _open(path: Path) -> rasterio.DatasetReader:
    if not path.is_file():
        raise InputError(f"{path}: raster not found; give the path of an existing GeoTIFF")
    try:
        return rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"{path}: not a readable raster ({exc}); give a GeoTIFF") from exc


def _read_reduced(path: Path, full_shape: tuple[int, int], shape: tuple[int, int], reference: Path) -> np.ndarray:
    """Band 1 of a label raster on the grid of ``reference``, read at ``shape`` (nearest); nodata -> 255."""
    with _open(path) as src:
        if (src.height, src.width) != full_shape:
            raise InputError(f"{path} is {src.height}x{src.width} pixels but {reference} is "
                             f"{full_shape[0]}x{full_shape[1]}; both must be on the same grid")
        labels = src.read(1, out_shape=shape, resampling=Resampling.nearest)
        nodata = src.nodata
    labels = labels.astype(np.int64)
    if nodata is not None and np.isfinite(nodata):
        labels[labels == int(nodata)] = IGNORE
    return labels


def _nearest_reduce(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour reduction of a (H, W) array to ``shape`` (the pixel whose centre is nearest)."""
    if array.shape == shape:
        return array
    return cv2.resize(array.astype(np.int32), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def _geometries(polygons: Polygons, crs: rasterio.crs.CRS | None) -> list[BaseGeometry]:
    """Shapely geometries in the image CRS from a vector file, a GeoDataFrame/GeoSeries or an iterable."""
    if isinstance(polygons, str | Path):
        path = Path(polygons)
        if not path.exists():
            raise InputError(f"{path}: polygon file not found; give a GeoPackage, GeoJSON or Shapefile")
        polygons = gpd.read_file(path)
    if isinstance(polygons, gpd.GeoDataFrame | gpd.GeoSeries):
        if polygons.crs is not None and crs is not None and polygons.crs != crs:
            polygons = polygons.to_crs(crs)
        return [g for g in polygons.geometry if g is not None and not g.is_empty]
    return [g for g in polygons if g is not None and not g.is_empty]


def _outline(picture: np.ndarray, geometries: list[BaseGeometry], to_pixels: Affine) -> None:
    """Draw polygon rings (exteriors and holes) onto ``picture`` in place."""
    rings = []
    for geometry in geometries:
        for part in getattr(geometry, "geoms", [geometry]):
            if part.geom_type != "Polygon":
                continue
            for ring in [part.exterior, *part.interiors]:
                cols, rows = to_pixels @ tuple(np.asarray(ring.coords).T[:2])
                # cv2 puts pixel centres on integers, rasterio on halves; 4 fractional bits (shift=4)
                rings.append(np.round((np.stack([cols, rows], axis=1) - 0.5) * 16).astype(np.int32))
    cv2.polylines(picture, rings, isClosed=True, color=POLYGON_RGB, thickness=1, lineType=cv2.LINE_AA, shift=4)


def _with_legend(rgb: np.ndarray, shares: dict[str, float]) -> bytes:
    """The map at its exact pixel size with a legend strip below it (outcomes that occur), by matplotlib."""
    h, w = rgb.shape[:2]
    width = max(w, LEGEND_MIN_WIDTH)
    dpi = 100
    fig = Figure(figsize=(width / dpi, (h + LEGEND_HEIGHT) / dpi), dpi=dpi, facecolor="white")
    fig.figimage(rgb, xo=0, yo=LEGEND_HEIGHT, origin="upper")
    always = ("true positive", "false positive", "false negative", "true negative")
    handles = [Patch(facecolor=np.array(ERROR_CLASSES[name]) / 255, edgecolor="black", linewidth=0.5,
                     label=f"{name} {share:.1%}") for name, share in shares.items() if name in always or share > 0]
    fig.legend(handles=handles, loc="lower center", ncols=3, fontsize=7.5, frameon=False,
               bbox_to_anchor=(0.5, 0.0), handlelength=1.2, columnspacing=1.0, borderaxespad=0.2)
    return figure_png(fig, dpi=dpi)

"""``evaluate``: pixel and object metrics of predictions against truth, over many scenes.

Pairs are taken in order (prediction i against truth i). Pixel metrics need a predicted mask raster;
truth is a raster on the same grid (or warped with ``resample=True``) or polygons rasterized on the
prediction grid. Object metrics (SpaceNet rule) are computed when either side is polygons (the raster
side is polygonized) or when asked; two SpaceNet CSVs are compared image by image (ImageId).
Everything streams by row bands except the polygons themselves.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from eoseg.errors import ConfigError, InputError, require_files
from eoseg.formats.spacenet import read_spacenet_csv
from eoseg.geo.atomic import write_text_atomic
from eoseg.geo.polygonize import band_rows_for, polygonize, row_windows, valid_footprint
from eoseg.geo.products import IGNORE, check_writable, mask_classes, scene_name
from eoseg.geo.raster import open_raster, raster_info, valid_mask
from eoseg.geo.vector import read_vector, repair_polygons
from eoseg.metrics.objects import AOI_PATTERN, ImagePolygons, SpaceNetRules, object_metrics
from eoseg.metrics.pixel import PixelMetrics
from eoseg.metrics.truth import TruthOnGrid, clip_truth, is_vector

PathLike = str | os.PathLike[str]


def _is_csv(path: PathLike) -> bool:
    return Path(path).suffix.lower() == ".csv"


def _class_names(path: PathLike, count: int) -> list[str]:
    """Class names from the raster's ``classes`` tag (a class mask eoseg predicted: the model's classes) or
    band descriptions (a multilabel stack), else class_<i>, or background/foreground for a 0/1 mask."""
    with open_raster(path) as src:
        tagged = mask_classes(src)
        descriptions = [d for d in src.descriptions if d]
    if tagged:
        return tagged
    if count > 1 and len(descriptions) == count:
        return descriptions
    return [f"class_{i}" for i in range(count)] if count > 1 else ["background", "foreground"]


def pixel_metrics(
    pairs: Sequence[tuple[PathLike, PathLike]],
    *,
    classes: Sequence[str] | None = None,
    ignore_index: int = IGNORE,
    resample: bool = False,
    truth_attribute: str | None = None,
    label_crs: str | None = None,
    band_rows: int | None = None,
) -> tuple[dict, dict[str, dict]]:
    """Pixel metrics pooled over all ``(pred raster, truth)`` pairs, and the micro scores per scene.

    Single-band predictions are class masks (0 background); multi-band predictions are multilabel 0/1
    stacks scored per band against a truth raster with the same bands. Pixels that are nodata in the
    prediction or truth, or ``ignore_index`` in the truth, are left out. Without ``classes``, class
    names come from the first prediction (``classes`` tag), and new class values found extend the list.
    Reads row bands of ``band_rows`` rows (default :func:`~eoseg.geo.polygonize.band_rows_for` the width,
    so a band does not grow with the scene's width; the counts do not depend on it).
    """
    first = raster_info(pairs[0][0])
    kind = "multilabel" if first.count > 1 else "class"
    names = list(classes) if classes is not None else _class_names(pairs[0][0], first.count)
    fixed = classes is not None
    total = PixelMetrics(names, kind)
    per_scene: dict[str, dict] = {}
    for pred_path, truth_path in pairs:
        grid = raster_info(pred_path)
        if grid.count != first.count:
            raise InputError(f"{pred_path}: has {grid.count} band(s) but {first.path.name} has {first.count}")
        scene = PixelMetrics(total.classes, kind)
        with (
            open_raster(pred_path) as src,
            TruthOnGrid(truth_path, grid, attribute=truth_attribute, resample=resample, label_crs=label_crs) as truth,
        ):
            if truth.count != grid.count and kind == "multilabel":
                raise InputError(
                    f"{truth_path}: truth has {truth.count} band(s) but the multilabel prediction "
                    f"{Path(pred_path).name} has {grid.count}; give one truth band per class"
                )
            for window in row_windows(grid.height, grid.width, band_rows or band_rows_for(grid.width)):
                pred = src.read(window=window)
                labels, truth_valid = truth.read(window)
                valid = valid_mask(pred, src.nodata) & truth_valid
                if kind == "class":
                    pred, labels = pred[0], labels[0]
                    valid &= labels != ignore_index
                    if not fixed:
                        top = int(max(np.max(pred, where=valid, initial=0), np.max(labels, where=valid, initial=0)))
                        total.grow(top + 1)
                        scene.grow(top + 1)
                scene.update(pred, labels, valid)
        total.grow(len(scene.classes))
        scene.grow(len(total.classes))
        total.matrix += scene.matrix
        per_scene[scene_name(pred_path)] = scene.compute()["micro"]
    return total.compute(), per_scene


CONFIDENCE_COLUMNS = ("confidence", "mean_prob")
"""Columns of a polygon file read as the proposal confidence (the first present); vectorize writes mean_prob."""


def _polygons(path: PathLike, crs: object | None) -> tuple[gpd.GeoSeries, list[float] | None, float | None]:
    """Polygons of a vector file or of the foreground of a mask raster (in ``crs`` when given), their
    confidences and the area of one pixel in CRS units (known for rasters only)."""
    pixel_area = None
    if is_vector(path):
        frame = repair_polygons(read_vector(path))
    else:
        frame = polygonize(path)
        info = raster_info(path)
        pixel_area = abs(info.transform.a * info.transform.e - info.transform.b * info.transform.d)
    column = next((c for c in CONFIDENCE_COLUMNS if c in frame.columns), None)
    confidence = frame[column].astype(float).tolist() if column else None
    series = frame.geometry
    if crs is not None and series.crs is not None and series.crs != crs:
        series = series.to_crs(crs)
    return series, confidence, pixel_area


def _csv_images(pred_path: PathLike, truth_path: PathLike, coords: str) -> dict[str, ImagePolygons]:
    """Images of two SpaceNet CSVs; in map coordinates the pixel area comes from the truth's Pix/Geo pairs."""
    pred = read_spacenet_csv(pred_path, coords)
    truth = read_spacenet_csv(truth_path, coords)
    areas: dict[str, float] = {}
    if coords == "geo":
        try:
            pix = read_spacenet_csv(truth_path, "pixel").geometry.area.to_numpy()
        except InputError:
            pix = None
        if pix is not None:
            ratio = truth.geometry.area.to_numpy() / np.where(pix > 0, pix, np.nan)
            areas = {k: float(np.nanmedian(v)) for k, v in pd.Series(ratio).groupby(truth["image_id"].to_numpy())
                     if np.isfinite(v).any()}
    images = {}
    for image_id in sorted(set(pred["image_id"]) | set(truth["image_id"])):
        p, t = pred[pred["image_id"] == image_id], truth[truth["image_id"] == image_id]
        images[image_id] = ImagePolygons(
            list(p.geometry), list(t.geometry),
            p["confidence"].tolist() if "confidence" in p.columns else None,
            1.0 if coords == "pixel" else areas.get(image_id),
        )
    return images


def object_scores(
    pairs: Sequence[tuple[PathLike, PathLike]],
    rules: SpaceNetRules = SpaceNetRules(),  # noqa: B008 (frozen dataclass)
    *,
    coords: str = "pixel",
    pixel_size: float | None = None,
    aoi_pattern: str = AOI_PATTERN,
) -> dict:
    """SpaceNet object metrics per image, per AOI and overall (see :mod:`eoseg.metrics.objects`).

    SpaceNet CSVs are compared image by image in ``coords`` (``pixel`` or ``geo``); other polygons and
    mask rasters are in map coordinates, with the pixel size of the prediction raster, else ``pixel_size``.
    Against a raster prediction the truth is clipped to the prediction's valid extent (:func:`clip_truth`);
    ``truth_outside_extent`` then counts the features left out and those cut at the edge.
    """
    images: dict[str, ImagePolygons] = {}
    extent: dict[str, dict[str, int]] = {}
    for pred_path, truth_path in pairs:
        if _is_csv(pred_path) != _is_csv(truth_path):
            raise InputError(
                f"{pred_path} vs {truth_path}: a SpaceNet CSV can only be compared with another SpaceNet CSV"
            )
        if _is_csv(pred_path):
            images.update(_csv_images(pred_path, truth_path, coords))
            continue
        pred, confidence, pixel_area = _polygons(pred_path, None)
        truth, _, _ = _polygons(truth_path, pred.crs)
        truth_polygons = list(truth)
        if not is_vector(pred_path):  # a raster prediction: score only the truth inside its valid extent
            clipped = clip_truth(truth_polygons, valid_footprint(pred_path))
            truth_polygons = clipped.polygons
            extent[scene_name(pred_path)] = {"left_out": clipped.left_out, "cut": clipped.cut}
        if pixel_area is None and pixel_size is not None:
            pixel_area = pixel_size * pixel_size
        images[scene_name(pred_path)] = ImagePolygons(list(pred), truth_polygons, confidence, pixel_area)
    result = object_metrics(images, rules, aoi_pattern)
    if extent:
        result["truth_outside_extent"] = {
            "left_out": sum(e["left_out"] for e in extent.values()), "cut": sum(e["cut"] for e in extent.values()),
            "images": extent,
        }
    return result


def evaluate(
    preds: Sequence[PathLike],
    truths: Sequence[PathLike],
    *,
    out: PathLike | None = None,
    classes: Sequence[str] | None = None,
    ignore_index: int = IGNORE,
    resample: bool = False,
    truth_attribute: str | None = None,
    label_crs: str | None = None,
    objects: bool | None = None,
    rules: SpaceNetRules = SpaceNetRules(),  # noqa: B008
    coords: str = "pixel",
    pixel_size: float | None = None,
    aoi_pattern: str = AOI_PATTERN,
    band_rows: int | None = None,
) -> dict:
    """Metrics of predictions against truth: ``{"pixel": ..., "pixel_scenes": ..., "objects": ...}``.

    Pixel metrics when every prediction is a raster; object metrics when ``objects`` is true, or (by
    default) when a prediction or truth is polygons. With ``out``, the result is also written as JSON.
    """
    if len(preds) != len(truths):
        raise InputError(
            f"evaluate: {len(preds)} prediction(s) but {len(truths)} truth file(s); give one truth per prediction"
        )
    if not preds:
        raise InputError("evaluate: give at least one prediction and its truth")
    if not 0.0 <= rules.iou_threshold < 1.0:
        raise ConfigError(f"--iou: {rules.iou_threshold:g} is out of range; a match needs an IoU above it, so it "
                          "must be in [0, 1)")
    for option, area in (("--min-truth-area", rules.min_truth_area), ("--min-pred-area", rules.min_pred_area)):
        if area < 0:
            raise ConfigError(f"{option}: {area:g} is out of range; an area in pixels must be >= 0")
    require_files([*preds, *truths])
    if out is not None:
        check_writable(out, inputs=[*preds, *truths])
    pairs = list(zip(preds, truths, strict=True))
    result: dict = {"pairs": [{"prediction": str(p), "truth": str(t)} for p, t in pairs]}
    rasters = [not is_vector(p) and not _is_csv(p) for p in preds]
    if all(rasters):
        result["pixel"], result["pixel_scenes"] = pixel_metrics(
            pairs,
            classes=classes,
            ignore_index=ignore_index,
            resample=resample,
            truth_attribute=truth_attribute,
            label_crs=label_crs,
            band_rows=band_rows,
        )
    any_vector = any(is_vector(p) or _is_csv(p) for p in [*preds, *truths])
    if objects or (objects is None and any_vector):
        result["objects"] = object_scores(
            pairs, rules, coords=coords, pixel_size=pixel_size, aoi_pattern=aoi_pattern)
    if out is not None:
        write_text_atomic(out, json.dumps(result, indent=2))
    return result

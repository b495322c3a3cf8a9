"""Overhead Geopose metric: per-city R² of height above ground (AGL) and of the flow vectors (VFLOW).

For each city, sums over all its images: ``R² = 1 - SSE / (Σ(y - ȳ)² + 1e-4)`` with
``ȳ = Σy / (n + 1e-4)``, as the official scorer does; VFLOW pools both vector components. A city
score is the mean of its AGL and VFLOW R²; the final score is the mean over cities. A city marked
missing (a prediction file absent or not finite) scores 0. Missing truth (NaN) is left out. As in the
official evaluator's NaN-aware sums, a prediction pixel that is nodata (NaN) still counts in the truth's
mean and variance but adds no error. :func:`score_geopose` scores a submission folder.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from eoseg.errors import InputError
from eoseg.formats.geopose import TO_METRES, Unit, city_of, read_agl, read_vflow


def flow_vectors(agl: np.ndarray, scale: float, angle: float) -> np.ndarray:
    """Flow field ``(2, H, W)`` = AGL · scale · (sin θ, cos θ) (the official VFLOW construction)."""
    return np.stack([agl * scale * np.sin(angle), agl * scale * np.cos(angle)])


class _R2Sums:
    def __init__(self) -> None:
        self.n = 0
        self.sse = 0.0
        self.sum = 0.0
        self.sumsq = 0.0

    def add(self, pred: np.ndarray, truth: np.ndarray) -> None:
        pred = np.asarray(pred, np.float64)
        truth = np.asarray(truth, np.float64)
        known = np.isfinite(truth)
        both = known & np.isfinite(pred)
        t = truth[known]
        self.n += t.size
        self.sse += float(np.sum((pred[both] - truth[both]) ** 2))
        self.sum += float(t.sum())
        self.sumsq += float(np.sum(t**2))

    def r2(self) -> float:
        mean = self.sum / (self.n + 1e-4)
        denom = self.sumsq - 2 * mean * self.sum + self.n * mean**2
        return 1.0 - self.sse / (denom + 1e-4)


class GeoposeR2:
    """Accumulates per-city sums; :meth:`compute` gives per-city and final scores."""

    def __init__(self) -> None:
        self.agl: dict[str, _R2Sums] = defaultdict(_R2Sums)
        self.vflow: dict[str, _R2Sums] = defaultdict(_R2Sums)
        self.missing: set[str] = set()

    def update(
        self,
        city: str,
        agl_pred: np.ndarray,
        agl_truth: np.ndarray,
        vflow_pred: np.ndarray,
        vflow_truth: np.ndarray,
    ) -> None:
        """Add one image: AGL ``(H, W)`` and flow ``(2, H, W)`` in the same units (NaN = missing truth)."""
        if agl_pred.shape != agl_truth.shape or vflow_pred.shape != vflow_truth.shape:
            raise ValueError(f"{city}: prediction and truth shapes differ")
        self.agl[city].add(agl_pred, agl_truth)
        self.vflow[city].add(vflow_pred, vflow_truth)

    def mark_missing(self, city: str) -> None:
        """A prediction of this city is missing or not finite: the city scores 0."""
        self.missing.add(city)

    def compute(self) -> dict:
        """``{"cities": {city: {r2_agl, r2_vflow, score}}, "score": mean of city scores}``."""
        cities = {}
        for city in sorted(set(self.agl) | self.missing):
            if city in self.missing:
                cities[city] = {"r2_agl": 0.0, "r2_vflow": 0.0, "score": 0.0}
                continue
            r2_agl, r2_vflow = self.agl[city].r2(), self.vflow[city].r2()
            cities[city] = {"r2_agl": r2_agl, "r2_vflow": r2_vflow, "score": (r2_agl + r2_vflow) / 2}
        score = float(np.mean([c["score"] for c in cities.values()])) if cities else 0.0
        return {"cities": cities, "score": score}


def score_geopose(pred_dir: str | os.PathLike[str], truth_dir: str | os.PathLike[str], unit: Unit = "cm") -> dict:
    """Score a submission folder against a truth folder like the official evaluator (module docstring).

    Tiles are the truth's ``<id>_VFLOW.json`` files (with ``<id>_AGL.tif`` beside them), grouped into
    cities by the id's prefix. Heights are read in ``unit`` and scored in metres; flow vectors are
    ``AGL · scale · (sin θ, cos θ)`` with the scale in px/m. A prediction file that is missing, or a
    VFLOW whose scale or angle is not finite, gives its city 0.
    """
    pred_dir, truth_dir = Path(pred_dir), Path(truth_dir)
    for folder, what in ((pred_dir, "submission"), (truth_dir, "truth")):
        if not folder.is_dir():
            raise InputError(f"{folder}: {what} folder not found; give the folder of <id>_AGL.tif and <id>_VFLOW.json")
    tiles = sorted(p.name.removesuffix("_VFLOW.json") for p in truth_dir.glob("*_VFLOW.json"))
    if not tiles:
        raise InputError(f"{truth_dir}: no <id>_VFLOW.json files; give the truth folder of the scored tiles")
    r2 = GeoposeR2()
    per_m = 1.0 / TO_METRES["cm"]  # VFLOW scales are px/cm
    scored = 0
    for tile in tiles:
        city = city_of(tile)
        agl_pred, vflow_pred = pred_dir / f"{tile}_AGL.tif", pred_dir / f"{tile}_VFLOW.json"
        if not (agl_pred.is_file() and vflow_pred.is_file()):
            r2.mark_missing(city)
            continue
        pred = read_vflow(vflow_pred)
        if not (math.isfinite(pred.scale) and math.isfinite(pred.angle)):
            r2.mark_missing(city)
            continue
        truth = read_vflow(truth_dir / f"{tile}_VFLOW.json")
        height_truth = read_agl(truth_dir / f"{tile}_AGL.tif", unit)
        height_pred = read_agl(agl_pred, unit)
        if height_pred.shape != height_truth.shape:
            raise InputError(
                f"{agl_pred}: {height_pred.shape[1]}x{height_pred.shape[0]} px but the truth is "
                f"{height_truth.shape[1]}x{height_truth.shape[0]}; predict the tile on its own grid"
            )
        r2.update(
            city,
            height_pred,
            height_truth,
            flow_vectors(height_pred, pred.scale * per_m, pred.angle),
            flow_vectors(height_truth, truth.scale * per_m, truth.angle),
        )
        scored += 1
    return {**r2.compute(), "tiles": len(tiles), "scored": scored}

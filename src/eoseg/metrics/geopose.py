"""Overhead Geopose metric: per-city R² of height above ground (AGL) and of the flow vectors (VFLOW).

For each city, sums over all its images: ``R² = 1 - SSE / (Σ(y - ȳ)² + 1e-4)`` with
``ȳ = Σy / (n + 1e-4)``, as the official scorer does; VFLOW pools both vector components. A city
score is the mean of its AGL and VFLOW R²; the final score is the mean over cities. A city marked
missing (a prediction file absent or not finite) scores 0. Missing truth (NaN) is left out.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np


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
        keep = np.isfinite(truth) & np.isfinite(pred)
        p, t = pred[keep], truth[keep]
        self.n += t.size
        self.sse += float(np.sum((p - t) ** 2))
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

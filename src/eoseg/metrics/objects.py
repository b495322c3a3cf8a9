"""Object metrics for buildings, following the official SpaceNet rules exactly.

The SpaceNet building scorer (SpaceNet 2-4; reproduced by solaris ``Evaluator.eval_iou``):

1. truth polygons with an area below ``min_truth_area`` (20 px) are dropped; proposals with an area of
   at most ``min_pred_area`` (20 px) are dropped (both configurable, in pixels);
2. proposals are visited in descending confidence when a confidence is given, else in file order;
3. each proposal takes the not yet matched truth polygon with the highest IoU; it is a true positive
   when that IoU is strictly greater than 0.5 (the truth is then used up), else a false positive;
4. truth polygons left unmatched are false negatives; F1 from the counts summed per image, per AOI
   (the prefix of the image id) and overall.

Areas are in pixels: polygons in map coordinates are measured with ``pixel_area`` (CRS units² per
pixel); without it the area rule cannot be applied and the result says so (``area_filter``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import shapely
from shapely import STRtree
from shapely.geometry.base import BaseGeometry

from eoseg.formats.spacenet import AOI_PATTERN, aoi_of
from eoseg.metrics.pixel import scores_from_counts


@dataclass(frozen=True)
class SpaceNetRules:
    """The SpaceNet scoring rules; the defaults are the official ones."""

    iou_threshold: float = 0.5  # a match needs IoU strictly greater than this
    min_truth_area: float = 20.0  # truth polygons with area < this (pixels) are dropped
    min_pred_area: float = 20.0  # proposals with area <= this (pixels) are dropped


@dataclass(frozen=True)
class ObjectCounts:
    """TP/FP/FN of matched polygons, with precision, recall and F1 (0 when undefined)."""

    tp: int
    fp: int
    fn: int

    def __add__(self, other: ObjectCounts) -> ObjectCounts:
        return ObjectCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    def as_dict(self) -> dict[str, float | int]:
        scores = scores_from_counts(self.tp, self.fp, self.fn)
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": float(scores["precision"]),
            "recall": float(scores["recall"]),
            "f1": float(scores["f1"]),
        }


def _polygons(geoms: Iterable[BaseGeometry | None]) -> tuple[np.ndarray, np.ndarray]:
    """Non-empty geometries repaired with ``make_valid`` (self-touching rings), and their input indices."""
    geoms = list(geoms)
    keep = [i for i, g in enumerate(geoms) if g is not None and not g.is_empty]
    array = np.asarray([geoms[i] for i in keep], dtype=object)
    return (shapely.make_valid(array) if array.size else array), np.asarray(keep, dtype=np.int64)


def _order(count: int, confidence: Sequence[float] | None, index: np.ndarray) -> np.ndarray:
    """Visiting order of proposals: descending confidence (stable), else file order."""
    if confidence is None:
        return np.arange(count)
    values = np.asarray(confidence, dtype=np.float64)[index]
    return np.argsort(-values, kind="stable")


def _match(
    pred: np.ndarray, truth: np.ndarray, order: np.ndarray, iou_threshold: float
) -> list[tuple[int, int, float]]:
    """Official matching on repaired arrays: ``(pred, truth, iou)`` positions of the true positives."""
    if not pred.size or not truth.size:
        return []
    pi, ti = STRtree(truth).query(pred, predicate="intersects")
    inter = shapely.area(shapely.intersection(pred[pi], truth[ti]))
    union = shapely.area(pred)[pi] + shapely.area(truth)[ti] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    candidates: dict[int, list[tuple[float, int]]] = {}
    for p, t, v in zip(pi.tolist(), ti.tolist(), iou.tolist(), strict=True):
        candidates.setdefault(p, []).append((v, t))
    used: set[int] = set()
    matches = []
    for p in order.tolist():
        free = [(v, t) for v, t in candidates.get(p, []) if t not in used]
        if not free:
            continue
        best, t = max(free, key=lambda c: (c[0], -c[1]))
        if best > iou_threshold:
            used.add(t)
            matches.append((p, t, best))
    return matches


def _filtered(
    geoms: Iterable[BaseGeometry | None], minimum: float, strict: bool, pixel_area: float | None
) -> tuple[np.ndarray, np.ndarray]:
    polygons, index = _polygons(geoms)
    if pixel_area is None or not polygons.size or minimum <= 0:
        return polygons, index
    area = shapely.area(polygons) / pixel_area
    keep = area > minimum if strict else area >= minimum
    return polygons[keep], index[keep]


def match_polygons(
    pred: Sequence[BaseGeometry | None],
    truth: Sequence[BaseGeometry | None],
    rules: SpaceNetRules = SpaceNetRules(),  # noqa: B008 (frozen dataclass)
    confidence: Sequence[float] | None = None,
    pixel_area: float | None = 1.0,
) -> list[tuple[int, int, float]]:
    """True-positive pairs ``(pred index, truth index, iou)`` under the SpaceNet rules (indices into the inputs).

    ``pixel_area``: area of one pixel in the polygons' units (1 for pixel coordinates); ``None`` skips the
    area rules.
    """
    p, p_index = _filtered(pred, rules.min_pred_area, True, pixel_area)
    t, t_index = _filtered(truth, rules.min_truth_area, False, pixel_area)
    order = _order(len(p), confidence, p_index)
    return [(int(p_index[a]), int(t_index[b]), v) for a, b, v in _match(p, t, order, rules.iou_threshold)]


def object_counts(
    pred: Sequence[BaseGeometry | None],
    truth: Sequence[BaseGeometry | None],
    rules: SpaceNetRules = SpaceNetRules(),  # noqa: B008
    confidence: Sequence[float] | None = None,
    pixel_area: float | None = 1.0,
) -> ObjectCounts:
    """TP/FP/FN of one image under the SpaceNet rules (see :func:`match_polygons`)."""
    p, p_index = _filtered(pred, rules.min_pred_area, True, pixel_area)
    t, _ = _filtered(truth, rules.min_truth_area, False, pixel_area)
    tp = len(_match(p, t, _order(len(p), confidence, p_index), rules.iou_threshold))
    return ObjectCounts(tp=tp, fp=len(p) - tp, fn=len(t) - tp)


@dataclass
class ImagePolygons:
    """One image's proposals (with optional confidences) and truth, and its pixel area (None: unknown)."""

    pred: Sequence[BaseGeometry | None]
    truth: Sequence[BaseGeometry | None]
    confidence: Sequence[float] | None = None
    pixel_area: float | None = 1.0


def object_metrics(
    images: Mapping[str, ImagePolygons | tuple[Sequence[BaseGeometry], Sequence[BaseGeometry]]],
    rules: SpaceNetRules = SpaceNetRules(),  # noqa: B008
    aoi_pattern: str = AOI_PATTERN,
) -> dict:
    """SpaceNet metrics per image, per AOI and overall (counts summed); ``(pred, truth)`` tuples are pixel polygons."""
    per_image: dict[str, ObjectCounts] = {}
    unknown_area = []
    for name, item in images.items():
        item = item if isinstance(item, ImagePolygons) else ImagePolygons(*item)
        if item.pixel_area is None:
            unknown_area.append(name)
        per_image[name] = object_counts(item.pred, item.truth, rules, item.confidence, item.pixel_area)
    per_aoi: dict[str, ObjectCounts] = {}
    for name, counts in per_image.items():
        aoi = aoi_of(name, aoi_pattern)
        per_aoi[aoi] = per_aoi.get(aoi, ObjectCounts(0, 0, 0)) + counts
    total = sum(per_image.values(), ObjectCounts(0, 0, 0))
    area_filter = "on" if not unknown_area else (
        f"off for {len(unknown_area)} image(s) whose pixel size is unknown (pass pixel_size / --pixel-size)")
    return {
        **asdict(rules),
        "rule": "SpaceNet: IoU > iou_threshold, proposals in descending confidence",
        "area_filter": area_filter,
        "per_scene": {name: counts.as_dict() for name, counts in per_image.items()},
        "per_aoi": {name: counts.as_dict() for name, counts in per_aoi.items()},
        "overall": total.as_dict(),
    }

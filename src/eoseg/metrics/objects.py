"""Object metrics for buildings, the SpaceNet rule.

A predicted polygon is a true positive when its IoU with a truth polygon not matched yet is at least
0.5. Candidate pairs come from an STRtree query; pairs are matched greedily by decreasing IoU, so each
truth and each prediction is used at most once. A second prediction on an already matched building is
a false positive.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely import STRtree
from shapely.geometry.base import BaseGeometry

from eoseg.metrics.pixel import scores_from_counts


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


def _polygons(geoms: Iterable[BaseGeometry]) -> np.ndarray:
    """Non-empty geometries as a numpy array, repaired with ``make_valid`` (self-touching rings)."""
    array = np.asarray([g for g in geoms if g is not None and not g.is_empty], dtype=object)
    return shapely.make_valid(array) if array.size else array


def match_polygons(
    pred: Sequence[BaseGeometry], truth: Sequence[BaseGeometry], iou_threshold: float = 0.5
) -> list[tuple[int, int, float]]:
    """Matched ``(pred_index, truth_index, iou)`` pairs with IoU >= ``iou_threshold``, greedy by IoU.

    Indices refer to the non-empty geometries of each input, in order.
    """
    return _match(_polygons(pred), _polygons(truth), iou_threshold)


def _match(pred_arr: np.ndarray, truth_arr: np.ndarray, iou_threshold: float) -> list[tuple[int, int, float]]:
    """:func:`match_polygons` on already repaired polygon arrays."""
    if not pred_arr.size or not truth_arr.size:
        return []
    pi, ti = STRtree(truth_arr).query(pred_arr, predicate="intersects")
    inter = shapely.area(shapely.intersection(pred_arr[pi], truth_arr[ti]))
    union = shapely.area(pred_arr)[pi] + shapely.area(truth_arr)[ti] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    candidates = np.flatnonzero(iou >= iou_threshold)
    order = candidates[np.argsort(-iou[candidates], kind="stable")]
    used_pred: set[int] = set()
    used_truth: set[int] = set()
    matches = []
    for c in order:
        p, t = int(pi[c]), int(ti[c])
        if p in used_pred or t in used_truth:
            continue
        used_pred.add(p)
        used_truth.add(t)
        matches.append((p, t, float(iou[c])))
    return matches


def object_counts(
    pred: Sequence[BaseGeometry], truth: Sequence[BaseGeometry], iou_threshold: float = 0.5
) -> ObjectCounts:
    """TP/FP/FN of one scene under the SpaceNet rule."""
    pred_arr, truth_arr = _polygons(pred), _polygons(truth)
    tp = len(_match(pred_arr, truth_arr, iou_threshold))
    return ObjectCounts(tp=tp, fp=len(pred_arr) - tp, fn=len(truth_arr) - tp)


def object_metrics(
    scenes: Mapping[str, tuple[Sequence[BaseGeometry], Sequence[BaseGeometry]]], iou_threshold: float = 0.5
) -> dict:
    """Per scene ``{scene: (pred, truth)}`` and overall (counts summed over scenes) object metrics."""
    per_scene = {name: object_counts(p, t, iou_threshold) for name, (p, t) in scenes.items()}
    total = sum(per_scene.values(), ObjectCounts(0, 0, 0))
    return {
        "iou_threshold": iou_threshold,
        "per_scene": {name: counts.as_dict() for name, counts in per_scene.items()},
        "overall": total.as_dict(),
    }

"""Pixel metrics from accumulated confusion counts: IoU, F1, precision, recall and Dice per class.

Counts are summed over all pixels of all scenes before any ratio is taken (micro over pixels), so a
small scene weighs as much as its pixels. Ignored and nodata pixels never enter the counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion_matrix(
    pred: np.ndarray, truth: np.ndarray, num_classes: int, valid: np.ndarray | None = None
) -> np.ndarray:
    """Confusion counts ``cm[truth, pred]`` (int64, K×K) over the pixels where ``valid`` is true.

    Pixels whose truth or prediction is outside ``0..K-1`` (ignore values, nodata) are left out.
    """
    pred = np.asarray(pred).ravel()
    truth = np.asarray(truth).ravel()
    if pred.shape != truth.shape:
        raise ValueError(f"prediction and truth differ in size: {pred.size} vs {truth.size}")
    keep = (pred >= 0) & (pred < num_classes) & (truth >= 0) & (truth < num_classes)
    if valid is not None:
        keep &= np.asarray(valid, dtype=bool).ravel()
    index = truth[keep].astype(np.int64) * num_classes + pred[keep].astype(np.int64)
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _ratio(num: np.ndarray | float, den: np.ndarray | float) -> np.ndarray:
    """``num / den`` with 0 where the denominator is 0."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def scores_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> dict[str, np.ndarray]:
    """IoU, F1, Dice, precision and recall from TP/FP/FN counts (arrays or scalars); 0 when undefined."""
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * np.asarray(tp), 2 * np.asarray(tp) + fp + fn)
    return {"iou": _ratio(tp, tp + fp + fn), "f1": f1, "dice": f1, "precision": precision, "recall": recall}


class PixelMetrics:
    """Accumulates confusion counts over scenes and reports metrics per class and micro-averaged.

    ``kind="class"``: masks hold class indices ``0..K-1`` (0 = background); one K×K confusion matrix.
    ``kind="multilabel"``: masks are ``(K, H, W)`` 0/1 stacks; each class is its own binary problem.
    The micro average pools TP/FP/FN over the foreground classes (all classes but background for
    class masks; every class for multilabel), so for a binary task it equals the building-class score.
    """

    def __init__(self, classes: Sequence[str], kind: str = "class") -> None:
        if kind not in ("class", "multilabel"):
            raise ValueError(f"kind must be 'class' or 'multilabel', not {kind!r}")
        self.classes = list(classes)
        self.kind = kind
        k = len(self.classes)
        self.matrix = np.zeros((k, k), np.int64) if kind == "class" else np.zeros((k, 2, 2), np.int64)

    def grow(self, num_classes: int) -> None:
        """Make room for class indices up to ``num_classes - 1`` (new classes are named ``class_<k>``)."""
        k = len(self.classes)
        if self.kind != "class" or num_classes <= k:
            return
        self.classes += [f"class_{i}" for i in range(k, num_classes)]
        self.matrix = np.pad(self.matrix, ((0, num_classes - k), (0, num_classes - k)))

    def update(self, pred: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Add one scene (or window): ``valid`` (H, W) marks pixels that count."""
        if self.kind == "class":
            self.matrix += confusion_matrix(pred, truth, len(self.classes), valid)
            return
        if pred.shape != truth.shape or pred.shape[0] != len(self.classes):
            raise ValueError(f"multilabel masks must be (K={len(self.classes)}, H, W); got {pred.shape}, {truth.shape}")
        for k in range(len(self.classes)):
            self.matrix[k] += confusion_matrix(pred[k], truth[k], 2, valid)

    def counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-class TP, FP, FN."""
        if self.kind == "class":
            tp = np.diag(self.matrix)
            return tp, self.matrix.sum(axis=0) - tp, self.matrix.sum(axis=1) - tp
        return self.matrix[:, 1, 1], self.matrix[:, 0, 1], self.matrix[:, 1, 0]

    def compute(self) -> dict:
        """``{"per_class": {name: {iou, f1, dice, precision, recall, tp, fp, fn}}, "micro": {...},
        "macro": {...}, "pixels": n}``; macro is the unweighted mean over the foreground classes."""
        tp, fp, fn = self.counts()
        per_class = scores_from_counts(tp, fp, fn)
        result: dict = {"per_class": {}}
        for k, name in enumerate(self.classes):
            entry = {metric: float(values[k]) for metric, values in per_class.items()}
            entry.update(tp=int(tp[k]), fp=int(fp[k]), fn=int(fn[k]))
            result["per_class"][name] = entry
        fg = slice(1, None) if self.kind == "class" and len(self.classes) > 1 else slice(None)
        micro = scores_from_counts(tp[fg].sum(), fp[fg].sum(), fn[fg].sum())
        result["micro"] = {metric: float(value) for metric, value in micro.items()}
        result["micro"].update(tp=int(tp[fg].sum()), fp=int(fp[fg].sum()), fn=int(fn[fg].sum()))
        result["macro"] = {metric: float(np.mean(values[fg])) for metric, values in per_class.items()}
        result["pixels"] = int(self.matrix.sum() if self.kind == "class" else self.matrix[0].sum())
        return result

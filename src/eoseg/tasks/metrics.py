"""Validation metrics with torchmetrics; ignored and nodata pixels never count.

- :class:`ClassMetrics`: IoU, F1, precision, recall and Dice per class and overall, for class indices
  (multiclass, with ``ignore_index``) or 0/1 label maps (multilabel, -1 = ignore); plus the confusion matrix.
- :class:`RegressionMetrics`: RMSE, MAE and R² over labelled pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import F1Score, JaccardIndex, MetricCollection, Precision, R2Score, Recall
from torchmetrics.classification import MulticlassConfusionMatrix
from torchmetrics.regression import MeanAbsoluteError, MeanSquaredError
from torchmetrics.segmentation import DiceScore

from eoseg.geo.products import IGNORE

MULTILABEL_IGNORE = -1


def class_names(classes: Sequence[str], count: int, prefix: str = "class") -> list[str]:
    """Names for ``count`` output classes: ``data.classes`` itself, without its first (background) entry
    when it has one more, else ``<prefix>_<k>``."""
    if len(classes) == count:
        return list(classes)
    if len(classes) == count + 1:
        return list(classes[1:])
    return [f"{prefix}_{k}" for k in range(count)]


class ClassMetrics(nn.Module):
    """Pixel classification metrics per class and overall.

    ``mode="multiclass"``: ``preds``/``target`` are class indices ``(B, H, W)``, ``target == ignore_index``
    is skipped. ``mode="multilabel"``: ``(B, K, H, W)`` 0/1 maps, ``target == -1`` is skipped. ``overall``
    is the class whose values are reported without suffix (binary tasks: the object class); ``None``
    reports the mean over classes (macro).
    """

    def __init__(self, names: Sequence[str], mode: str = "multiclass", ignore_index: int = IGNORE,
                 overall: int | None = None) -> None:
        super().__init__()
        self.names, self.mode, self.overall = list(names), mode, overall
        k = len(self.names)
        self.ignore_index = ignore_index if mode == "multiclass" else MULTILABEL_IGNORE
        common = {"task": mode, "average": "none", "ignore_index": self.ignore_index}
        common.update({"num_classes": k} if mode == "multiclass" else {"num_labels": k})
        self.scores = MetricCollection({
            "iou": JaccardIndex(**common),
            "f1": F1Score(**common),
            "precision": Precision(**common),
            "recall": Recall(**common),
        })
        self.dice = DiceScore(num_classes=k, average="none", aggregation_level="global", input_format="one-hot")
        self.confusion = MulticlassConfusionMatrix(k, ignore_index=ignore_index) if mode == "multiclass" else None

    def update(self, preds: Tensor, target: Tensor) -> None:
        self.scores.update(preds, target)
        if self.mode == "multiclass":
            k = len(self.names)
            keep = (target != self.ignore_index).unsqueeze(1)
            p = F.one_hot(preds.long(), k).movedim(-1, 1)
            t = F.one_hot(target.long().clamp(0, k - 1), k).movedim(-1, 1)
            self.dice.update(p * keep, t * keep)
        else:
            keep = target != MULTILABEL_IGNORE
            self.dice.update(preds.long() * keep, target.long() * keep)
        if self.confusion is not None:
            self.confusion.update(preds, target)

    def compute(self) -> dict[str, float]:
        """``{"iou": overall, "iou/<class>": per class, ...}`` for iou, f1, precision, recall, dice."""
        values = {**self.scores.compute(), "dice": self.dice.compute()}
        out: dict[str, float] = {}
        for metric, per_class in values.items():
            per_class = per_class.float().reshape(-1)
            out[metric] = float(per_class.mean() if self.overall is None else per_class[self.overall])
            out.update({f"{metric}/{name}": float(v) for name, v in zip(self.names, per_class, strict=True)})
        return out

    def confusion_matrix(self) -> Tensor | None:
        """``(K, K)`` counts (rows: truth, columns: prediction) for class indices, else None."""
        return self.confusion.compute() if self.confusion is not None else None

    def reset(self) -> None:
        self.scores.reset()
        self.dice.reset()
        if self.confusion is not None:
            self.confusion.reset()


class RegressionMetrics(nn.Module):
    """RMSE, MAE and R² over pixels whose target is finite (NaN = ignore)."""

    def __init__(self) -> None:
        super().__init__()
        self.scores = MetricCollection({
            "rmse": MeanSquaredError(squared=False),
            "mae": MeanAbsoluteError(),
            "r2": R2Score(),
        })

    def update(self, preds: Tensor, target: Tensor) -> None:
        keep = torch.isfinite(target)
        if keep.any():
            self.scores.update(preds[keep].float(), target[keep].float())

    def compute(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.scores.compute().items()}

    def confusion_matrix(self) -> None:
        return None

    def reset(self) -> None:
        self.scores.reset()

"""Kaggle Understanding Clouds metric: mean Dice over (image, class) masks, 1 when both are empty."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np
from rasterio.enums import Resampling

from eoseg.errors import InputError
from eoseg.formats.clouds import IMAGE_SHAPE, LABELS, SUBMISSION_SHAPE, read_clouds_csv
from eoseg.formats.rle import rle_decode
from eoseg.geo.products import IGNORE
from eoseg.geo.raster import no_grid_warning, open_raster, resize_array


def dice_empty_one(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice ``2|X∩Y| / (|X|+|Y|)`` of two binary masks; 1 when both are empty, 0 when only one is."""
    p, t = np.asarray(pred, bool), np.asarray(truth, bool)
    if p.shape != t.shape:
        raise ValueError(f"mask shapes differ: {p.shape} vs {t.shape}")
    total = int(p.sum()) + int(t.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.sum(p & t)) / total


def mean_dice(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> float:
    """Mean of :func:`dice_empty_one` over ``(pred, truth)`` mask pairs (one per image and class)."""
    scores = [dice_empty_one(p, t) for p, t in pairs]
    if not scores:
        raise ValueError("mean_dice needs at least one (prediction, truth) pair")
    return float(np.mean(scores))


def score_clouds_csv(
    pred_csv: str | os.PathLike[str],
    truth_csv: str | os.PathLike[str],
    truth_shape: tuple[int, int] = IMAGE_SHAPE,
    pred_shape: tuple[int, int] = SUBMISSION_SHAPE,
) -> dict:
    """Kaggle's score of a submission CSV: mean Dice (empty = 1) over every (image, label) row of the truth.

    The truth is decoded on ``truth_shape`` (``train.csv``: 1400 x 2100) and, when it differs from the
    submission's ``pred_shape`` (350 x 525), area-averaged onto it (a pixel is on when half of it is).
    The images of the submission are scored (all four labels each; a missing row counts as empty), so
    out-of-fold predictions can be scored against the whole ``train.csv``; ``unscored`` counts the truth
    images that the submission lacks. A submission image that the truth does not have is an error.
    """
    preds = read_clouds_csv(pred_csv, pred_shape)
    truths = read_clouds_csv(truth_csv, truth_shape)
    extra = sorted(set(preds) - set(truths))
    if extra:
        raise InputError(
            f"{pred_csv}: image(s) {extra[:3]} are not in the truth {truth_csv}; score against the matching truth CSV"
        )
    per_label: dict[str, list[float]] = {label: [] for label in LABELS}
    for image, predicted in preds.items():
        labels = truths[image]
        for label in LABELS:
            truth = rle_decode(labels.get(label, ""), truth_shape)
            if truth_shape != pred_shape:
                truth = (resize_array(truth[None] * np.uint8(255), pred_shape, "average")[0] >= 128).astype(np.uint8)
            pred = rle_decode(predicted.get(label, ""), pred_shape)
            per_label[label].append(dice_empty_one(pred, truth))
    return {**_summary(per_label, len(preds)), "unscored": len(set(truths) - set(preds))}


def score_clouds_rasters(
    preds: Sequence[str | os.PathLike[str]], truths: Sequence[str | os.PathLike[str]]
) -> dict:
    """Mean Dice (empty = 1) of 4-band 0/1 mask rasters against truth rasters (resized to the prediction)."""
    if len(preds) != len(truths) or not preds:
        raise InputError(f"evaluate: {len(preds)} prediction raster(s) but {len(truths)} truth raster(s)")
    per_label: dict[str, list[float]] = {label: [] for label in LABELS}
    for pred_path, truth_path in zip(preds, truths, strict=True):
        with no_grid_warning(), open_raster(pred_path) as src:
            pred = src.read()
        with no_grid_warning(), open_raster(truth_path) as src:
            truth = src.read(out_shape=pred.shape, resampling=Resampling.nearest)
        if pred.shape[0] != len(LABELS) or truth.shape[0] != len(LABELS):
            raise InputError(
                f"{pred_path}: clouds masks have {len(LABELS)} bands ({', '.join(LABELS)}); "
                f"got {pred.shape[0]} and {truth.shape[0]} in {truth_path}"
            )
        on_pred, on_truth = (pred > 0) & (pred != IGNORE), (truth > 0) & (truth != IGNORE)
        for k, label in enumerate(LABELS):
            per_label[label].append(dice_empty_one(on_pred[k], on_truth[k]))
    return _summary(per_label, len(preds))


def _summary(per_label: dict[str, list[float]], images: int) -> dict:
    scores = [s for values in per_label.values() for s in values]
    return {
        "dice": float(np.mean(scores)) if scores else float("nan"),
        "images": images,
        "per_class": {label: float(np.mean(v)) if v else float("nan") for label, v in per_label.items()},
    }

"""Kaggle Understanding Clouds metric: mean Dice over (image, class) masks, 1 when both are empty."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


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

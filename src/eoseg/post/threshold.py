"""Probabilities to masks: per-class thresholds, minimum-area removal and image-level gating.

Masks come in two layouts: a class mask ``(H, W)`` of class indices (binary: 0/1; multiclass: argmax)
and a multilabel stack ``(K, H, W)`` of 0/1 channels (overlapping classes, e.g. clouds). Thresholds
and minimum areas are given per channel of the probability raster; a single value applies to all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy import ndimage

from eoseg.config.schema import PostSpec
from eoseg.errors import ConfigError

MaskKind = Literal["binary", "multiclass", "multilabel"]
_FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)


def per_channel(value: float | Sequence[float], channels: int, option: str) -> np.ndarray:
    """Broadcast one value or check a list of ``channels`` values (``option`` names the config key)."""
    values = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if values.size == 1:
        return np.full(channels, values[0])
    if values.size != channels:
        raise ConfigError(f"{option}: has {values.size} values but the probability raster has {channels} channel(s)")
    return values


def channel_classes(kind: MaskKind, channels: int) -> np.ndarray:
    """Mask value (class mask) or channel index (multilabel) that each probability channel decides."""
    if kind == "binary":
        return np.array([1] if channels == 1 else [0, 1])
    return np.arange(channels)


def apply_thresholds(prob: np.ndarray, threshold: float | Sequence[float], kind: MaskKind) -> np.ndarray:
    """Masks from probabilities ``(C, H, W)``: uint8 ``(H, W)`` class mask, or ``(C, H, W)`` for multilabel.

    A pixel is on when its probability is above the threshold. ``binary``: one channel (or the second
    of a 2-channel softmax) against its threshold. ``multiclass``: the argmax class, set to background
    (0) when its probability is not above that class's threshold. NaN (nodata) pixels give 0.
    """
    channels = prob.shape[0]
    t = per_channel(threshold, channels, "post.threshold")
    with np.errstate(invalid="ignore"):
        if kind == "multilabel":
            return (prob > t[:, None, None]).astype(np.uint8)
        if kind == "binary":
            c = channels - 1
            return (prob[c] > t[c]).astype(np.uint8)
        filled = np.nan_to_num(prob, nan=-1.0)
        best = filled.argmax(axis=0)
        top = np.take_along_axis(filled, best[None], axis=0)[0]
        return np.where(top > t[best], best, 0).astype(np.uint8)


def remove_small(mask: np.ndarray, min_pixels: float | Sequence[float], kind: MaskKind) -> np.ndarray:
    """Remove 4-connected objects smaller than ``min_pixels`` (per channel) from a class or multilabel mask."""
    out = mask.copy()
    if kind == "multilabel":
        limits = per_channel(min_pixels, mask.shape[0], "post.min_area")
        for c, limit in enumerate(limits):
            out[c][_small_objects(mask[c] > 0, limit)] = 0
        return out
    limits = np.atleast_1d(np.asarray(min_pixels, dtype=np.float64))
    for value in np.unique(mask[mask > 0]):
        if kind == "binary" or limits.size == 1:
            limit = limits[-1]
        elif value < limits.size:
            limit = limits[value]
        else:
            raise ConfigError(f"post.min_area: has {limits.size} values but the mask has class {value}")
        out[_small_objects(mask == value, limit)] = 0
    return out


def _small_objects(on: np.ndarray, limit: float) -> np.ndarray:
    """Pixels of the 4-connected components of ``on`` with fewer than ``limit`` pixels."""
    if limit <= 0 or not on.any():
        return np.zeros_like(on)
    labels, _ = ndimage.label(on, structure=_FOUR_CONNECTED)
    sizes = np.bincount(labels.ravel())
    small = sizes < limit
    small[0] = False
    return small[labels]


def gate(
    mask: np.ndarray, image_prob: Sequence[float], threshold: float | Sequence[float], kind: MaskKind
) -> np.ndarray:
    """Empty the classes whose image-level probability is at or below the threshold (clouds recipe).

    ``image_prob`` has one value per probability channel (binary: one value for the positive class).
    """
    probs = np.asarray(image_prob, dtype=np.float64)
    t = per_channel(threshold, probs.size, "post.gate.threshold")
    out = mask.copy()
    classes = channel_classes(kind, probs.size)
    for value, p, limit in zip(classes, probs, t, strict=True):
        if p <= limit:
            if kind == "multilabel":
                out[value] = 0
            elif value > 0:
                out[out == value] = 0
    return out


def postprocess(
    prob: np.ndarray,
    post: PostSpec,
    kind: MaskKind,
    pixel_area_m2: float = 1.0,
    image_prob: Sequence[float] | None = None,
) -> np.ndarray:
    """Thresholds, then gating (when ``post.gate`` is set and ``image_prob`` given), then minimum area.

    ``post.min_area`` is in m²; ``pixel_area_m2`` converts it to pixels.
    """
    mask = apply_thresholds(prob, post.threshold, kind)
    if post.gate is not None and image_prob is not None:
        mask = gate(mask, image_prob, post.gate.threshold, kind)
    min_pixels = np.atleast_1d(np.asarray(post.min_area, dtype=np.float64)) / pixel_area_m2
    if np.any(min_pixels > 0):
        mask = remove_small(mask, min_pixels, kind)
    return mask

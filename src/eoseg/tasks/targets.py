"""Per-head training targets from target chips (numpy, one sample at a time, run in DataLoader workers).

A target chip arrives as ``float32 (bands, H, W)`` with NaN where it is not labelled (ignore, nodata, or an
invalid input pixel). Band 1 of a vector target is the class index; further bands are extra 0/1 channels
(boundary, contact). The functions below give the forms :mod:`eoseg.losses` expects (docs/design.md,
"Losses"): class indices with ``ignore_index``, float channels with NaN, image-level labels and vectors.
"""

from __future__ import annotations

import numpy as np

from eoseg.errors import InputError


def _check_bands(chip: np.ndarray, needed: int, what: str) -> None:
    if chip.shape[0] < needed:
        raise InputError(f"target {what}: the chip has {chip.shape[0]} band(s) but the head needs {needed}; "
                         f"give the head fewer channels or the target more (e.g. extra_channels)")


def class_index(chip: np.ndarray, channels: int, ignore_index: int, what: str, binary: bool = False) -> np.ndarray:
    """``int64 (H, W)`` class per pixel from band 1 (any class > 0 is 1 when ``binary``), ignore elsewhere."""
    band = chip[0]
    labelled = np.isfinite(band)
    values = np.where(labelled, band, 0).astype(np.int64)
    if binary:
        values = (values > 0).astype(np.int64)
    elif values.max(initial=0) >= channels:
        raise InputError(f"target {what}: class index {int(values.max())} found but the head has {channels} "
                         f"channels (classes 0..{channels - 1}); raise the head's channels or fix the labels")
    return np.where(labelled, values, ignore_index)


def damage_index(chip: np.ndarray, channels: int, ignore_index: int, what: str) -> np.ndarray:
    """``int64 (H, W)`` ordinal damage class ``v - 1`` on building pixels (``v`` in 1..channels), ignore elsewhere.

    The damage loss and metrics therefore count building pixels only (the xView2 rule).
    """
    band = chip[0]
    building = np.isfinite(band) & (band > 0)
    values = np.where(building, band, 1).astype(np.int64) - 1
    if values.max(initial=0) >= channels:
        raise InputError(f"target {what}: damage class {int(values.max()) + 1} found but the damage head has "
                         f"{channels} channels (damage classes 1..{channels})")
    return np.where(building, values, ignore_index)


def binary_channels(chip: np.ndarray, channels: int, what: str) -> np.ndarray:
    """``float32 (channels, H, W)``: channel 0 = class > 0, further channels = the chip's extra bands > 0."""
    _check_bands(chip, channels, what)
    return _positive(chip[:channels])


def multilabel_channels(chip: np.ndarray, channels: int, what: str) -> np.ndarray:
    """``float32 (K, H, W)``: one 0/1 band per label, or from a class band the one-hot of classes 1..K."""
    if chip.shape[0] >= channels and channels > 1:
        return _positive(chip[:channels])
    band = chip[0]
    labels = np.stack([band == k for k in range(1, channels + 1)]).astype(np.float32)
    labels[:, ~np.isfinite(band)] = np.nan
    return labels


def regression_channels(chip: np.ndarray, channels: int, what: str) -> np.ndarray:
    """``float32 (channels, H, W)``: the chip's first bands as they are (NaN = ignore)."""
    _check_bands(chip, channels, what)
    return np.ascontiguousarray(chip[:channels], dtype=np.float32)


def presence(channels: np.ndarray) -> np.ndarray:
    """``float32 (K,)``: 1 where a 0/1 channel has a positive labelled pixel (image-level sigmoid labels)."""
    return (np.nan_to_num(channels, nan=0.0).reshape(channels.shape[0], -1).max(axis=1) > 0).astype(np.float32)


def largest_class(index: np.ndarray, ignore_index: int) -> np.int64:
    """The largest class present (image-level softmax label; for binary targets: "has an object")."""
    labelled = index[index != ignore_index]
    return np.int64(labelled.max(initial=0))


def channel_means(chip: np.ndarray, channels: int, what: str) -> np.ndarray:
    """``float32 (channels,)``: mean of each band over labelled pixels (NaN when none is labelled)."""
    _check_bands(chip, channels, what)
    flat = chip[:channels].reshape(channels, -1)
    count = np.isfinite(flat).sum(axis=1)
    total = np.nansum(flat, axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(np.float32)


def mean_direction(chip: np.ndarray, what: str) -> np.ndarray:
    """``float32 (2,)``: the unit mean vector of a 2-band direction field (NaN when nothing is labelled)."""
    mean = channel_means(chip, 2, what)
    norm = float(np.hypot(mean[0], mean[1]))
    return (mean / norm).astype(np.float32) if np.isfinite(norm) and norm > 0 else np.full(2, np.nan, np.float32)


def soft_channels(chip: np.ndarray, channels: int, what: str) -> np.ndarray:
    """``float32 (channels, H, W)``: soft labels kept as probabilities (clipped to [0, 1], NaN = ignore)."""
    _check_bands(chip, channels, what)
    return np.clip(chip[:channels], 0.0, 1.0).astype(np.float32)


def soft_presence(probs: np.ndarray) -> np.ndarray:
    """``float32 (K,)``: image-level soft label, the largest labelled probability per channel (0 if none)."""
    flat = np.nan_to_num(probs, nan=0.0).reshape(probs.shape[0], -1)
    return flat.max(axis=1, initial=0.0).astype(np.float32)


def _positive(bands: np.ndarray) -> np.ndarray:
    out = (np.nan_to_num(bands, nan=0.0) > 0).astype(np.float32)
    out[~np.isfinite(bands)] = np.nan
    return out

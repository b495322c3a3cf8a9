"""Run-length encoding of binary masks as in the Kaggle Clouds CSV: ``"start length ..."`` pairs,
1-indexed starts, pixels counted column-major (top to bottom, then left to right); "" is empty."""

from __future__ import annotations

import numpy as np

from eoseg.errors import InputError


def rle_encode(mask: np.ndarray) -> str:
    """Encode a 2-D mask (non-zero = on) as an RLE string."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"rle_encode needs a 2-D mask, got shape {mask.shape}")
    flat = np.concatenate([[0], (mask.T.ravel() != 0).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(flat))  # run starts (0-indexed) then ends, alternating
    starts, ends = edges[::2], edges[1::2]
    return " ".join(f"{s + 1} {e - s}" for s, e in zip(starts, ends, strict=True))


def rle_runs(rle: str | float | None, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """0-indexed run starts and lengths of an RLE string, checked against a ``(height, width)`` mask.

    Raises :class:`InputError` for values that are not integers, an odd count, or runs outside the mask.
    """
    height, width = shape
    if rle is None or isinstance(rle, float) or not str(rle).strip():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    try:
        numbers = np.asarray(str(rle).split(), dtype=np.int64)
    except ValueError as exc:
        raise InputError(f"RLE string {str(rle)[:40]!r}: not a list of integers ({exc})") from exc
    if numbers.size % 2:
        raise InputError(f"RLE string {str(rle)[:40]!r}: odd number of values; expected 'start length' pairs")
    starts, lengths = numbers[::2] - 1, numbers[1::2]
    if starts.size and (starts.min() < 0 or lengths.min() < 0 or (starts + lengths).max() > height * width):
        raise InputError(
            f"RLE string {str(rle)[:40]!r}: runs fall outside a {height}x{width} mask "
            f"(starts are 1..{height * width}, counted down the columns)"
        )
    return starts, lengths


def rle_decode(rle: str | float | None, shape: tuple[int, int]) -> np.ndarray:
    """Decode an RLE string into a uint8 ``(height, width)`` mask; empty, None or NaN give zeros."""
    height, width = shape
    flat = np.zeros(height * width, np.uint8)
    for start, length in zip(*rle_runs(rle, shape), strict=True):
        flat[start : start + length] = 1
    return flat.reshape(width, height).T.copy()

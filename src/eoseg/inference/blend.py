"""Seamless blending of overlapping window outputs.

Each window's output is weighted by a smooth window function (largest in the middle, small but
positive at the borders) times the window's validity, accumulated as ``sum(w * p)`` and ``sum(w)``,
and divided once a row band is final. Invalid (nodata) input pixels get weight 0, so they neither
receive a value nor pollute their neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from eoseg.inference.windows import SceneWindow, WindowLayout

BlendKind = Literal["hann", "cosine", "triangular", "uniform"]
WEIGHT_FLOOR = 1e-3
"""Smallest weight of a valid pixel: keeps ``sum(w) > 0`` on every covered pixel, scene borders included."""


def weight_profile(size: int, kind: BlendKind) -> np.ndarray:
    """1-D window weights of ``size`` samples, symmetric, in ``[WEIGHT_FLOOR, 1]``."""
    t = (np.arange(size, dtype=np.float64) + 0.5) / size  # sample centres in (0, 1)
    if kind == "hann":
        w = 0.5 - 0.5 * np.cos(2 * np.pi * t)
    elif kind == "cosine":
        w = np.sin(np.pi * t)
    elif kind == "triangular":
        w = 1.0 - np.abs(2 * t - 1)
    elif kind == "uniform":
        w = np.ones(size)
    else:
        raise ValueError(f"unknown blend window {kind!r}; use hann, cosine, triangular or uniform")
    return np.maximum(w, WEIGHT_FLOOR)


def weight_window(size: int, kind: BlendKind = "hann") -> np.ndarray:
    """2-D blend weights (outer product of the 1-D profile), float32 ``(size, size)``, all > 0."""
    w = weight_profile(size, kind)
    return np.outer(w, w).astype(np.float32)


@dataclass
class BlendedBand:
    """Final rows ``[row_off, row_off + height)`` of the scene: blended values and where they are valid."""

    row_off: int
    values: dict[str, np.ndarray]  # name -> (C, height, width) float32, NaN where invalid
    valid: np.ndarray  # (height, width) bool

    @property
    def height(self) -> int:
        return self.valid.shape[0]


class BlendAccumulator:
    """Accumulates weighted window outputs over one window height of scene rows.

    Memory is ``channels x window x scene width`` (float64), whatever the scene height. Feed windows in layout
    order with :meth:`add`; it returns the rows that became final (at the end of each row band).
    """

    def __init__(self, layout: WindowLayout, channels: dict[str, int], kind: BlendKind = "hann"):
        self.layout = layout
        self.weight = weight_window(layout.size, kind).astype(np.float64)
        rows = layout.buffer_rows
        # float64 sums: the products of float32 values and weights are exact, so a pixel whose windows all
        # agree gets back exactly its float32 value
        self.sums = {name: np.zeros((c, rows, layout.width), np.float64) for name, c in channels.items()}
        self.weights = np.zeros((rows, layout.width), np.float64)
        self.top = 0

    def add(
        self, window: SceneWindow, values: dict[str, np.ndarray], valid: np.ndarray
    ) -> BlendedBand | None:
        """Add one window's outputs ``name -> (C, size, size)``; ``valid`` is its ``(size, size)`` mask."""
        h, w = window.clipped(self.layout.height, self.layout.width)
        r, c = window.row_off - self.top, window.col_off
        weight = self.weight[:h, :w] * valid[:h, :w]
        self.weights[r : r + h, c : c + w] += weight
        for name, total in self.sums.items():
            total[:, r : r + h, c : c + w] += values[name][:, :h, :w].astype(np.float64) * weight
        if self.layout.is_last_in_band(window):
            return self._flush(self.layout.band_end(window.band))
        return None

    def _flush(self, end: int) -> BlendedBand:
        """Divide the final rows ``[top, end)`` by their weights, then move the rest up."""
        n = end - self.top
        weights = self.weights[:n]
        valid = weights > 0
        out = {}
        for name, total in self.sums.items():
            blended = np.full(total[:, :n].shape, np.nan, dtype=np.float32)
            np.divide(total[:, :n], weights, out=blended, where=valid, casting="same_kind")
            out[name] = blended
            _shift_up(total, n)
        band = BlendedBand(self.top, out, valid)
        _shift_up(self.weights[None], n)
        self.top = end
        return band


def _shift_up(buffer: np.ndarray, n: int) -> None:
    """Move rows ``n:`` of ``buffer (C, rows, W)`` to the top and zero the freed rows, in place.

    Copies go in chunks of at most ``n`` rows, so source and destination never overlap and numpy needs
    no temporary copy of the buffer.
    """
    rows = buffer.shape[1]
    for start in range(0, rows - n, n):
        stop = min(start + n, rows - n)
        buffer[:, start:stop] = buffer[:, start + n : stop + n]
    buffer[:, max(rows - n, 0) :] = 0

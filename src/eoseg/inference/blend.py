"""Seamless blending of overlapping window outputs, tile by tile.

Each window's output is weighted by a smooth window function (largest in the middle, small but
positive at the borders) times the window's validity, accumulated as ``sum(w * p)`` and ``sum(w)``
(float32) into the output tiles it covers, and divided as soon as the last window covering a tile is in.
Invalid (nodata) input pixels get weight 0, so they neither receive a value nor pollute their neighbours.
Only tiles that some window has touched and some later window still will are held, so memory is a few
tiles along the layout's bands (the scene's shorter side), never a band across the whole scene.
Accumulators live with the model: torch tensors on a GPU, numpy arrays on the CPU (small torch CPU ops pay
for waking their thread pool, which costs more than the arithmetic).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from eoseg.inference.windows import SceneWindow, WindowLayout

BlendKind = Literal["hann", "cosine", "triangular", "uniform"]
TILE = 256
"""Side of the blended output tiles (also the block size of the temporary tiled GeoTIFFs; a multiple of 16)."""
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
class BlendedTile:
    """A final tile of the scene at ``(row_off, col_off)``: blended values and where they are valid."""

    row_off: int
    col_off: int
    values: dict[str, np.ndarray]  # name -> (C, height, width) float32, NaN where invalid
    valid: np.ndarray  # (height, width) bool

    @property
    def height(self) -> int:
        return self.valid.shape[0]

    @property
    def width(self) -> int:
        return self.valid.shape[1]


def tile_counts(starts: list[int], size: int, length: int, tile: int) -> np.ndarray:
    """Per tile along one axis: how many windows (starting at ``starts``, ``size`` long, clipped to
    ``length``) overlap it."""
    first = np.arange(0, length, tile)
    last = np.minimum(first + tile, length)
    begin = np.asarray(starts)[None, :]
    end = np.minimum(begin + size, length)
    return ((begin < last[:, None]) & (end > first[:, None])).sum(axis=1)


Array = np.ndarray | torch.Tensor


class _Tile:
    __slots__ = ("sums", "weights")

    def __init__(self, channels: dict[str, int], shape: tuple[int, int], device: torch.device):
        if device.type == "cpu":
            self.sums: dict[str, Array] = {n: np.zeros((c, *shape), np.float32) for n, c in channels.items()}
            self.weights: Array = np.zeros(shape, np.float32)
        else:
            self.sums = {n: torch.zeros((c, *shape), dtype=torch.float32, device=device) for n, c in channels.items()}
            self.weights = torch.zeros(shape, dtype=torch.float32, device=device)


class BlendAccumulator:
    """Accumulates weighted window outputs into output tiles and hands out each tile once it is final.

    Feed windows in layout order with :meth:`add_batch` (or :meth:`add`); each call returns the tiles that
    became final. Every window's contribution is counted, so a tile is final exactly when the last window
    overlapping it was added, whatever the order; the layout's band order keeps few tiles open.
    """

    def __init__(
        self,
        layout: WindowLayout,
        channels: dict[str, int],
        kind: BlendKind = "hann",
        tile: int = TILE,
        device: torch.device | str = "cpu",
    ):
        self.layout = layout
        self.tile = tile
        self.device = torch.device(device)
        self.channels = dict(channels)
        self.on_cpu = self.device.type == "cpu"
        weight = weight_window(layout.size, kind)
        self.weight: Array = weight if self.on_cpu else torch.from_numpy(weight).to(self.device)
        rows = tile_counts(layout.row_starts, layout.size, layout.height, tile)
        cols = tile_counts(layout.col_starts, layout.size, layout.width, tile)
        self.remaining = np.outer(rows, cols)  # windows still to come, per tile
        self.open: dict[tuple[int, int], _Tile] = {}
        self.peak_open = 0  # most tiles held at once (memory: peak_open x tile² x (channels + 1) x 4 bytes)

    def add(self, window: SceneWindow, values: dict[str, np.ndarray], valid: np.ndarray) -> list[BlendedTile]:
        """Add one window's outputs ``name -> (C, size, size)``; ``valid`` is its ``(size, size)`` mask."""
        return self.add_batch([window], {n: v[None] for n, v in values.items()}, valid[None])

    def add_batch(
        self, windows: list[SceneWindow], values: dict[str, torch.Tensor], valid: torch.Tensor
    ) -> list[BlendedTile]:
        """Add a batch: ``values[name]`` is ``(B, C, size, size)``, ``valid`` ``(B, size, size)`` bool
        (tensors on any device, or numpy arrays)."""
        if self.on_cpu:
            weight = self.weight * _host(valid)  # (B, size, size)
            weighted = {n: _host(values[n]).astype(np.float32, copy=False) * weight[:, None] for n in self.channels}
        else:
            weight = self.weight * torch.as_tensor(valid).to(self.device, non_blocking=True)
            weighted = {
                n: torch.as_tensor(values[n]).to(self.device, torch.float32, non_blocking=True) * weight[:, None]
                for n in self.channels
            }
        done = []
        height, width, t = self.layout.height, self.layout.width, self.tile
        for j, window in enumerate(windows):
            h, w = window.clipped(height, width)
            r0, c0 = window.row_off, window.col_off
            for tr in range(r0 // t, (r0 + h - 1) // t + 1):
                y0, y1 = max(r0, tr * t), min(r0 + h, (tr + 1) * t)
                for tc in range(c0 // t, (c0 + w - 1) // t + 1):
                    x0, x1 = max(c0, tc * t), min(c0 + w, (tc + 1) * t)
                    acc = self._tile(tr, tc)
                    dst = (slice(y0 - tr * t, y1 - tr * t), slice(x0 - tc * t, x1 - tc * t))
                    src = (slice(y0 - r0, y1 - r0), slice(x0 - c0, x1 - c0))
                    acc.weights[dst] += weight[j][src]
                    for name, total in acc.sums.items():
                        total[(slice(None), *dst)] += weighted[name][j][(slice(None), *src)]
                    self.remaining[tr, tc] -= 1
                    if self.remaining[tr, tc] == 0:
                        done.append(self._finish(tr, tc))
        return done

    def _tile(self, tr: int, tc: int) -> _Tile:
        acc = self.open.get((tr, tc))
        if acc is None:
            t = self.tile
            shape = (min(t, self.layout.height - tr * t), min(t, self.layout.width - tc * t))
            acc = self.open[tr, tc] = _Tile(self.channels, shape, self.device)
            self.peak_open = max(self.peak_open, len(self.open))
        return acc

    def _finish(self, tr: int, tc: int) -> BlendedTile:
        """Divide a final tile by its weights (NaN where no valid pixel contributed) and release it."""
        acc = self.open.pop((tr, tc))
        if self.on_cpu:
            valid = acc.weights > 0
            values = {}
            for name, total in acc.sums.items():
                out = np.full(total.shape, np.nan, np.float32)
                values[name] = np.divide(total, acc.weights, out=out, where=valid)
            return BlendedTile(tr * self.tile, tc * self.tile, values, valid)
        invalid = acc.weights <= 0
        values = {n: t.div_(acc.weights).masked_fill_(invalid, float("nan")).cpu().numpy() for n, t in acc.sums.items()}
        return BlendedTile(tr * self.tile, tc * self.tile, values, ~invalid.cpu().numpy())

    @property
    def finished(self) -> bool:
        """Whether every tile has been handed out."""
        return not self.open and not self.remaining.any()


def _host(array: Array) -> np.ndarray:
    """A numpy view of a CPU tensor (or the array itself)."""
    return array.numpy() if isinstance(array, torch.Tensor) else np.asarray(array)

"""Seamless blending of overlapping window outputs, tile by tile.

Each window's output is weighted by a smooth window function (largest in the middle, small but
positive at the borders) times the window's validity, accumulated as ``sum(w * p)`` and ``sum(w)``
(float32) into the output tiles it covers, and divided as soon as the last window covering a tile is in.
Invalid (nodata) input pixels get weight 0, so they neither receive a value nor pollute their neighbours.
Only tiles that some window has touched and some later window still will are held, so memory is a few
tiles along one band of a strip of the layout (:mod:`eoseg.inference.windows`), whatever the scene's sides.
A tile on the border between two strips would wait for the next strip across the whole scene: instead,
the earlier strip's weighted contributions to it go to an unnamed temporary file (explicit writes and
reads, so they never count as resident memory) and are replayed, in band-walk order, when the later strip
reaches the tile. float32 sums depend on their order; every tile sums its windows in the band walk's
order (:attr:`SceneWindow.index`), so a strip walk gives bit-identical results to a walk of whole bands.
Accumulators live with the model: torch tensors on a GPU, numpy arrays on the CPU (small torch CPU ops pay
for waking their thread pool, which costs more than the arithmetic).
"""

from __future__ import annotations

import bisect
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

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


class _Spill:
    """Records of float32 arrays in an unnamed temporary file (gone when closed, or when the process dies),
    written and read with ``os.pwrite`` / ``os.pread``; space of records read back is reused."""

    def __init__(self, folder: Path | None):
        self.folder = folder
        self._file: IO[bytes] | None = None
        self._end = 0
        self._free: dict[int, list[int]] = {}
        self.held = 0  # bytes of records not yet read back
        self.peak = 0

    def put(self, record: np.ndarray) -> tuple[int, tuple[int, ...]]:
        """Write ``record``; returns its ``(offset, shape)``."""
        if self._file is None:
            self._file = tempfile.TemporaryFile(dir=self.folder, prefix=".eoseg-blend-")
        data = np.ascontiguousarray(record, dtype=np.float32)
        free = self._free.get(data.nbytes)
        if free:
            offset = free.pop()
        else:
            offset, self._end = self._end, self._end + data.nbytes
        view, done = memoryview(data).cast("B"), 0
        while done < data.nbytes:
            done += os.pwrite(self._file.fileno(), view[done:], offset + done)
        self.held += data.nbytes
        self.peak = max(self.peak, self.held)
        return offset, data.shape

    def take(self, offset: int, shape: tuple[int, ...]) -> np.ndarray:
        """Read a record back and free its space."""
        assert self._file is not None
        nbytes = int(np.prod(shape)) * 4
        chunks, done = [], 0
        while done < nbytes:
            chunk = os.pread(self._file.fileno(), nbytes - done, offset + done)
            if not chunk:
                raise OSError(f"blend spill file: short read at {offset + done}")
            chunks.append(chunk)
            done += len(chunk)
        self._free.setdefault(nbytes, []).append(offset)
        self.held -= nbytes
        return np.frombuffer(b"".join(chunks), np.float32).reshape(shape)

    @property
    def closed(self) -> bool:
        return self._file is None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._free.clear()
        self._end = self.held = 0


class BlendAccumulator:
    """Accumulates weighted window outputs into output tiles and hands out each tile once it is final.

    Feed windows in layout order with :meth:`add_batch` (or :meth:`add`); each call returns the tiles that
    became final. Every window's contribution is counted, so a tile is final exactly when the last window
    overlapping it was added; the layout's order keeps few tiles open. Contributions of a strip to a tile that
    a later strip also covers are kept in a temporary file in ``spill_dir`` (default: the system's temporary
    folder) until that strip reaches the tile; :meth:`close` (or leaving the ``with`` block) removes it.
    """

    def __init__(
        self,
        layout: WindowLayout,
        channels: dict[str, int],
        kind: BlendKind = "hann",
        tile: int = TILE,
        device: torch.device | str = "cpu",
        spill_dir: str | os.PathLike[str] | None = None,
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
        self.last_strip = self._last_strips()  # per tile across the walk: the last strip covering it
        self._spill = _Spill(None if spill_dir is None else Path(spill_dir))
        self._spilled: dict[tuple[int, int], list[tuple[int, int, tuple[int, ...], tuple[slice, slice]]]] = {}
        self._weighted: dict[str, np.ndarray] = {}  # CPU: see _scratch
        self._spare: dict[tuple[int, int], list[_Tile]] = {}  # CPU: finished tiles' arrays, by shape, for reuse

    def _last_strips(self) -> np.ndarray:
        layout, t = self.layout, self.tile
        length = layout.height if layout.by_columns else layout.width
        last = np.zeros(-(-length // t), np.int64)
        for strip, positions in enumerate(layout.strips):
            first = layout.across_starts[positions[0]]
            end = min(layout.across_starts[positions[-1]] + layout.size, length)
            last[first // t : (end - 1) // t + 1] = strip
        return last

    @property
    def spilled_peak(self) -> int:
        """Most bytes held in the temporary file at once (0 when the bands are walked whole)."""
        return self._spill.peak

    @property
    def spill_closed(self) -> bool:
        """Whether no temporary file is open (none was needed, or :meth:`close` removed it)."""
        return self._spill.closed

    def add(self, window: SceneWindow, values: dict[str, np.ndarray], valid: np.ndarray) -> list[BlendedTile]:
        """Add one window's outputs ``name -> (C, size, size)``; ``valid`` is its ``(size, size)`` mask."""
        return self.add_batch([window], {n: v[None] for n, v in values.items()}, valid[None])

    def add_batch(
        self, windows: list[SceneWindow], values: dict[str, torch.Tensor], valid: torch.Tensor
    ) -> list[BlendedTile]:
        """Add a batch: ``values[name]`` is ``(B, C, size, size)``, ``valid`` ``(B, size, size)`` bool
        (tensors on any device, or numpy arrays)."""
        if self.on_cpu:  # no fresh arrays per batch: on the CPU their page faults cost about as much as the products
            valid = _host(valid)
            # (B, size, size); all valid (the common case): the window's weights themselves, not a product
            weight = np.broadcast_to(self.weight, valid.shape) if valid.all() else self.weight * valid
            weighted = {n: np.multiply(_host(values[n]), weight[:, None], dtype=np.float32,
                                       out=self._scratch(n, (len(windows), self.channels[n], *valid.shape[1:])))
                        for n in self.channels}
        else:
            weight = self.weight * torch.as_tensor(valid).to(self.device, non_blocking=True)
            weighted = {
                n: torch.as_tensor(values[n]).to(self.device, torch.float32, non_blocking=True) * weight[:, None]
                for n in self.channels
            }
        done = []
        height, width, t = self.layout.height, self.layout.width, self.tile
        by_columns = self.layout.by_columns
        for j, window in enumerate(windows):
            h, w = window.clipped(height, width)
            r0, c0 = window.row_off, window.col_off
            for tr in range(r0 // t, (r0 + h - 1) // t + 1):
                y0, y1 = max(r0, tr * t), min(r0 + h, (tr + 1) * t)
                for tc in range(c0 // t, (c0 + w - 1) // t + 1):
                    x0, x1 = max(c0, tc * t), min(c0 + w, (tc + 1) * t)
                    dst = (slice(y0 - tr * t, y1 - tr * t), slice(x0 - tc * t, x1 - tc * t))
                    src = (slice(y0 - r0, y1 - r0), slice(x0 - c0, x1 - c0))
                    if window.strip < self.last_strip[tr if by_columns else tc]:
                        self._keep(tr, tc, window.index, dst, weight[j][src],
                                   [weighted[n][j][(slice(None), *src)] for n in self.channels])
                    else:
                        acc = self._tile(tr, tc)
                        self._replay(tr, tc, acc, before=window.index)
                        acc.weights[dst] += weight[j][src]
                        for name, total in acc.sums.items():
                            total[(slice(None), *dst)] += weighted[name][j][(slice(None), *src)]
                    self.remaining[tr, tc] -= 1
                    if self.remaining[tr, tc] == 0:
                        self._replay(tr, tc, self._tile(tr, tc))
                        done.append(self._finish(tr, tc))
        return done

    def _keep(self, tr: int, tc: int, index: int, dst: tuple[slice, slice], weight: Array, sums: list[Array]) -> None:
        """Write one window's contribution to tile ``(tr, tc)`` to the temporary file (a later strip finishes
        the tile), filed under the window's band-walk ``index``."""
        if self.on_cpu:
            record = np.concatenate([weight[None], *sums])
        else:
            record = torch.cat([weight[None], *sums]).cpu().numpy()
        offset, shape = self._spill.put(record)
        bisect.insort(self._spilled.setdefault((tr, tc), []), (index, offset, shape, dst), key=lambda e: e[0])

    def _replay(self, tr: int, tc: int, acc: _Tile, before: int | None = None) -> None:
        """Add the kept contributions to tile ``(tr, tc)`` of windows before band-walk index ``before`` (all:
        ``None``), in band-walk order, so that the tile's sums are those of a walk of whole bands."""
        entries = self._spilled.get((tr, tc))
        while entries and (before is None or entries[0][0] < before):
            _, offset, shape, dst = entries.pop(0)
            record = self._spill.take(offset, shape)
            if not self.on_cpu:
                record = torch.from_numpy(record.copy()).to(self.device)
            acc.weights[dst] += record[0]
            k = 1
            for total in acc.sums.values():
                c = total.shape[0]
                total[(slice(None), *dst)] += record[k : k + c]
                k += c
        if entries is not None and not entries:
            del self._spilled[tr, tc]

    def _scratch(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """The float32 array of ``shape`` that a batch's weighted values of ``name`` go into (one per name,
        filled again by every batch: nothing keeps a view of it once :meth:`add_batch` returns)."""
        array = self._weighted.get(name)
        if array is None or array.shape != shape:
            array = self._weighted[name] = np.empty(shape, np.float32)
        return array

    def _tile(self, tr: int, tc: int) -> _Tile:
        acc = self.open.get((tr, tc))
        if acc is None:
            t = self.tile
            shape = (min(t, self.layout.height - tr * t), min(t, self.layout.width - tc * t))
            spare = self._spare.get(shape)
            if spare:  # a finished tile's arrays, zeroed (CPU): no fresh pages
                acc = spare.pop()
                acc.weights.fill(0)
                for total in acc.sums.values():
                    total.fill(0)
            else:
                acc = _Tile(self.channels, shape, self.device)
            self.open[tr, tc] = acc
            self.peak_open = max(self.peak_open, len(self.open))
        return acc

    def _finish(self, tr: int, tc: int) -> BlendedTile:
        """Divide a final tile by its weights (NaN where no valid pixel contributed) and release it."""
        acc = self.open.pop((tr, tc))
        if self.on_cpu:
            valid = acc.weights > 0
            values = {}
            for name, total in acc.sums.items():
                if valid.all():
                    values[name] = np.divide(total, acc.weights)
                else:
                    out = np.full(total.shape, np.nan, np.float32)
                    values[name] = np.divide(total, acc.weights, out=out, where=valid)
            self._spare.setdefault(acc.weights.shape, []).append(acc)  # the values above are new arrays
            return BlendedTile(tr * self.tile, tc * self.tile, values, valid)
        invalid = acc.weights <= 0
        values = {n: t.div_(acc.weights).masked_fill_(invalid, float("nan")).cpu().numpy() for n, t in acc.sums.items()}
        return BlendedTile(tr * self.tile, tc * self.tile, values, ~invalid.cpu().numpy())

    @property
    def finished(self) -> bool:
        """Whether every tile has been handed out."""
        return not self.open and not self.remaining.any() and not self._spilled

    def close(self) -> None:
        """Remove the temporary file of kept contributions and drop the reused arrays (after success or
        failure: the gate / min-area pass after the blend must not find them still held)."""
        self._spill.close()
        self._spilled.clear()
        self._spare.clear()
        self._weighted.clear()

    def __enter__(self) -> BlendAccumulator:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _host(array: Array) -> np.ndarray:
    """A numpy view of a CPU tensor (or the array itself)."""
    return array.numpy() if isinstance(array, torch.Tensor) else np.asarray(array)

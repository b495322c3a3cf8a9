"""The one code path from probabilities to masks: :class:`Postprocessor` applies the whole ``post`` section.

Layouts (:data:`MaskKind`), decided once from the head (:func:`mask_kind`):

- ``binary``: one sigmoid channel, or a 2-channel softmax whose channel 1 is the foreground; the mask is
  one band, 1 where the foreground probability is above the threshold;
- ``multiclass``: a softmax over K > 2 classes (channel 0 = background); the mask is one band of class
  indices: among the foreground classes whose probability is above their own threshold, the most
  probable wins; where none is, background (0). So a searched per-class threshold changes the mask;
- ``multilabel``: K sigmoid channels that may overlap (clouds); the mask has one 0/1 band per channel.

THE comparison rule everywhere (predict, ensemble, training validation, threshold search, gate): a
channel is on where ``p > threshold`` (strictly). Thresholds and minimum areas are one value, or one per
probability channel (for binary, the foreground channel's entry is used).

Then, over the written mask (a second pass by row bands, so any scene size fits):
- ``post.gate``: a class is emptied where the image-level head's scene mean is at or below its gate
  threshold (``p > t`` keeps it; clouds recipe);
- ``post.min_area`` (m² per class): 4-connected components smaller than the limit become background.
  Components that cross row bands are measured whole: each band is labelled, labels that touch across a
  band border are joined (union-find as a sparse graph), and a second pass removes the small ones.
  Memory: one band of rows plus a few numbers per component.
Invalid pixels are :data:`~eoseg.geo.products.IGNORE` in every mask.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from eoseg.config.activation import activation_of
from eoseg.config.schema import HeadSpec, PostSpec, TaskSpec
from eoseg.errors import ConfigError
from eoseg.geo.cog import TiledRasterWriter
from eoseg.geo.polygonize import pixel_area_m2, row_windows
from eoseg.geo.products import IGNORE, mask_spec, read_heads, read_mask
from eoseg.geo.raster import open_raster, raster_info

MaskKind = Literal["binary", "multiclass", "multilabel"]
_FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)
BAND_ROWS = 1024


def mask_kind(head: HeadSpec, task: TaskSpec) -> MaskKind:
    """The mask layout of a dense head: multilabel tasks and several sigmoid channels are multilabel,
    one sigmoid channel or a 2-channel softmax is binary, a wider softmax is multiclass."""
    activation = activation_of(head, task)
    if task.kind == "multilabel" or (activation != "softmax" and head.channels > 1):
        return "multilabel"
    if head.channels <= 2:
        return "binary"
    return "multiclass"


def per_channel(value: float | Sequence[float], channels: int, option: str) -> np.ndarray:
    """Broadcast one value or check a list of ``channels`` values (``option`` names the config key)."""
    values = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if values.size == 1:
        return np.full(channels, values[0])
    if values.size != channels:
        raise ConfigError(
            f"{option}: has {values.size} values but the probability raster has {channels} channel(s); "
            "give one value or one per channel"
        )
    return values


def decided_channels(kind: MaskKind, channels: int) -> list[int]:
    """The probability channels that a threshold decides (binary: the foreground; multiclass: 1..K-1)."""
    if kind == "binary":
        return [channels - 1]
    if kind == "multiclass":
        return list(range(1, channels))
    return list(range(channels))


class Postprocessor:
    """Turns probabilities ``(C, H, W)`` into masks by the ``post`` section, for one head layout.

    ``Postprocessor.for_head(post, head, task)`` builds it from the model's head; ``mask`` / ``vote``
    threshold rows of probabilities (streaming-friendly), ``finalize`` applies gate and minimum area to a
    written mask raster, and ``__call__`` does all of it on an in-memory array.
    """

    def __init__(self, post: PostSpec, kind: MaskKind, channels: int) -> None:
        self.post, self.kind, self.channels = post, kind, channels
        if kind == "binary" and channels not in (1, 2):
            raise ConfigError(f"binary masks need 1 or 2 probability channels, got {channels}")
        self.thresholds = per_channel(post.threshold, channels, "post.threshold")
        self.min_area = per_channel(post.min_area, channels, "post.min_area")

    @classmethod
    def for_head(cls, post: PostSpec, head: HeadSpec, task: TaskSpec) -> Postprocessor:
        """The post-processor of a dense head (its layout from :func:`mask_kind`)."""
        return cls(post, mask_kind(head, task), head.channels)

    @property
    def bands(self) -> int:
        """Bands of the mask raster: one per channel for multilabel, else one (class index / 0-1)."""
        return self.channels if self.kind == "multilabel" else 1

    def layers(self) -> list[tuple[int, int, int]]:
        """``(band, value, channel)`` of every class the mask holds: where gate and min-area act."""
        if self.kind == "multilabel":
            return [(c, 1, c) for c in range(self.channels)]
        if self.kind == "binary":
            return [(0, 1, self.channels - 1)]
        return [(0, c, c) for c in range(1, self.channels)]

    # ------------------------------------------------------------------ thresholds (row by row)
    def on(self, prob: np.ndarray) -> np.ndarray:
        """``bool (len(decided_channels), H, W)``: ``p > threshold`` for every decided channel (NaN: off)."""
        channels = decided_channels(self.kind, self.channels)
        with np.errstate(invalid="ignore"):
            return prob[channels] > self.thresholds[channels, None, None]

    def mask(self, prob: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """``uint8 (bands, H, W)`` mask of probabilities ``(C, H, W)``; invalid / NaN pixels are IGNORE."""
        on = self.on(prob)
        if self.kind == "multiclass":
            fg = np.where(on, np.nan_to_num(prob[1:], nan=-1.0), -1.0)
            best = fg.argmax(axis=0)
            out = np.where(on.any(axis=0), best + 1, 0).astype(np.uint8)[None]
        else:
            out = on.astype(np.uint8)
        return self._invalid(out, prob, valid)

    def vote(self, members: Sequence[np.ndarray], k: int, valid: np.ndarray | None = None) -> np.ndarray:
        """k-of-n vote of the models' masks (binary or multilabel): on where at least ``k`` members are."""
        if self.kind == "multiclass":
            raise ConfigError("predict.vote: k-of-n voting needs binary or multilabel masks, the head is "
                              "multiclass; unset predict.vote")
        votes = sum(self.on(m).astype(np.uint8) for m in members)
        return self._invalid((votes >= k).astype(np.uint8), members[0], valid)

    @staticmethod
    def _invalid(out: np.ndarray, prob: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
        bad = ~np.isfinite(prob).all(axis=0)
        if valid is not None:
            bad |= ~valid
        out[:, bad] = IGNORE
        return out

    # ------------------------------------------------------------------ gate and minimum area
    def gated_layers(self, heads: Mapping[str, Mapping[str, Any]] | None) -> set[int]:
        """Indices into :meth:`layers` that ``post.gate`` empties, from the scene means of the image head."""
        gate = self.post.gate
        if gate is None:
            return set()
        if heads is None or gate.head not in heads:
            known = ", ".join(heads or {}) or "none"
            raise ConfigError(f"post.gate.head={gate.head!r}: the prediction has no such image-level head "
                              f"(heads: {known}); unset post.gate or train with that head")
        probs = np.asarray(heads[gate.head]["mean"], dtype=np.float64)
        limits = per_channel(gate.threshold, probs.size, "post.gate.threshold")
        layers = self.layers()
        if probs.size == self.channels:
            by_channel = {c: (p, t) for c, (p, t) in enumerate(zip(probs, limits, strict=True))}
        elif self.kind == "binary" and probs.size == 1:
            by_channel = {self.channels - 1: (probs[0], limits[0])}
        else:
            raise ConfigError(f"post.gate.head={gate.head!r}: has {probs.size} value(s) but the mask head has "
                              f"{self.channels} channel(s); gate with an image head of one value per class")
        return {i for i, (_, _, c) in enumerate(layers) if c in by_channel and not by_channel[c][0] > by_channel[c][1]}

    def min_pixels(self, pixel_area: float) -> np.ndarray:
        """Minimum component size in pixels per layer (``post.min_area`` in m² / pixel area)."""
        return np.array([self.min_area[c] for _, _, c in self.layers()]) / pixel_area

    def needs_finalize(self) -> bool:
        """Whether gate or minimum area change anything (else the mask is final as written)."""
        return self.post.gate is not None or bool(np.any(self.min_area > 0))

    def finalize(
        self,
        mask_path: str | os.PathLike[str],
        heads: Mapping[str, Mapping[str, Any]] | str | os.PathLike[str] | None = None,
        band_rows: int = BAND_ROWS,
    ) -> Path:
        """Apply gate and minimum area to a written mask raster in place (atomic rewrite, by row bands).

        ``heads`` is the image-level head summary (or the path of its ``heads.json``) for the gate.
        """
        path = Path(mask_path)
        if not self.needs_finalize():
            return path
        if heads is not None and not isinstance(heads, Mapping):
            heads = read_heads(heads)
        gated = self.gated_layers(heads)
        info = raster_info(path)
        area = pixel_area_m2(info.transform, info.crs, info.height / 2, info.width / 2)
        limits = self.min_pixels(area)
        layers = self.layers()
        measure = [i for i, limit in enumerate(limits) if limit > 0 and i not in gated]
        small = _small_components(path, layers, measure, limits, band_rows) if measure else {}
        with open_raster(path) as src:
            names = tuple(d or f"band_{i + 1}" for i, d in enumerate(src.descriptions))
            writer = TiledRasterWriter(path, mask_spec(info, names))
            try:
                for index, window in enumerate(row_windows(info.height, info.width, band_rows)):
                    data, valid = read_mask(src, window)
                    for i, (band, value, _) in enumerate(layers):
                        on = data[band] == value
                        if i in gated:
                            data[band][on] = 0
                        elif i in small:
                            labels, _ = ndimage.label(on, structure=_FOUR_CONNECTED)
                            drop = small[i][index]
                            data[band][drop[labels]] = 0
                    data[:, ~valid] = IGNORE
                    writer.write_rows(int(window.row_off), data)
            except BaseException:
                writer.abort()
                raise
        return writer.finish()

    # ------------------------------------------------------------------ in memory
    def __call__(
        self,
        prob: np.ndarray,
        pixel_area: float = 1.0,
        heads: Mapping[str, Mapping[str, Any]] | None = None,
        valid: np.ndarray | None = None,
    ) -> np.ndarray:
        """Mask, gate (when ``post.gate`` is set; ``heads`` gives the image head) and minimum area, in memory."""
        out = self.mask(prob, valid)
        layers = self.layers()
        gated = self.gated_layers(heads) if self.post.gate is not None else set()
        limits = self.min_pixels(pixel_area)
        for i, (band, value, _) in enumerate(layers):
            on = out[band] == value
            if i in gated:
                out[band][on] = 0
            elif limits[i] > 0:
                labels, _ = ndimage.label(on, structure=_FOUR_CONNECTED)
                sizes = np.bincount(labels.ravel())
                drop = sizes < limits[i]
                drop[0] = False
                out[band][drop[labels]] = 0
        return out


def _small_components(
    path: Path, layers: list[tuple[int, int, int]], measure: list[int], limits: np.ndarray, band_rows: int
) -> dict[int, list[np.ndarray]]:
    """Per measured layer and row band: a lookup ``local label -> too small`` over whole components.

    Pass 1 labels every band, records each label's size and joins labels that touch across the border
    with the band above (same column, both on: 4-connected). Components are then the connected parts of
    that graph; a component is small when its total size is under the layer's limit.
    """
    offsets: dict[int, list[int]] = {i: [] for i in measure}
    sizes: dict[int, list[np.ndarray]] = {i: [] for i in measure}
    edges: dict[int, list[np.ndarray]] = {i: [] for i in measure}
    last_row: dict[int, np.ndarray | None] = dict.fromkeys(measure)
    total = dict.fromkeys(measure, 0)
    with open_raster(path) as src:
        for window in row_windows(src.height, src.width, band_rows):
            data, _ = read_mask(src, window)
            for i in measure:
                band, value, _ = layers[i]
                labels, n = ndimage.label(data[band] == value, structure=_FOUR_CONNECTED)
                offset = total[i]
                offsets[i].append(offset)
                sizes[i].append(np.bincount(labels.ravel(), minlength=n + 1)[1:])
                top = labels[0]
                above = last_row[i]
                if above is not None:
                    touch = (above > 0) & (top > 0)
                    pairs = np.stack([above[touch], top[touch] + offset - 1], axis=1)  # global ids, 0-based
                    edges[i].append(np.unique(pairs, axis=0))
                # the band's last row in global ids (0 = off): the next band joins onto it
                bottom = labels[-1]
                last_row[i] = np.where(bottom > 0, bottom + offset, 0)
                total[i] += n
    result: dict[int, list[np.ndarray]] = {}
    for i in measure:
        n = total[i]
        size = np.concatenate(sizes[i]) if n else np.zeros(0, np.int64)
        pairs = np.concatenate(edges[i]) if edges[i] else np.zeros((0, 2), np.int64)
        # ``above`` ids were stored 1-based (label + offset), ``top`` ids 0-based
        a, b = pairs[:, 0] - 1, pairs[:, 1]
        graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n))
        _, component = connected_components(graph, directed=False)
        component_size = np.bincount(component, weights=size, minlength=component.max(initial=-1) + 1)
        too_small = component_size[component] < limits[i] if n else np.zeros(0, bool)
        per_band = []
        bounds = [*offsets[i], n]
        for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
            per_band.append(np.concatenate([[False], too_small[start:stop]]))  # index 0: background
        result[i] = per_band
    return result

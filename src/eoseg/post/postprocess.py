"""The one code path from probabilities to masks: :class:`Postprocessor` applies the whole ``post`` section.

Layouts (:data:`MaskKind`), decided once from the head (:func:`mask_kind`):

- ``binary``: one sigmoid channel, or a 2-channel softmax whose channel 1 is the foreground; the mask is
  one band, 1 where the foreground probability is above the threshold. A sigmoid head of an object task
  with extra channels (building, boundary, contact) is binary on its channel 0: the extra channels
  (:func:`extra_channels`) stay in the probabilities, not in the mask, as training validation scores it;
- ``multiclass``: a softmax over K > 2 classes (channel 0 = background); the mask is one band of class
  indices: among the foreground classes whose probability is above their own threshold, the most
  probable wins; where none is, background (0). So a searched per-class threshold changes the mask;
- ``multilabel``: K sigmoid channels that may overlap (clouds); the mask has one 0/1 band per channel.

THE comparison rule everywhere (predict, ensemble, training validation, the training report, threshold
search, gate): a channel is on where ``p > threshold`` (strictly). Thresholds and minimum areas are one
value, or one per probability channel (for binary, the foreground channel's entry is used). The rule is
written once (:func:`threshold_rule`) for numpy arrays ``(C, H, W)`` and torch tensors ``(B, C, H, W)``
alike, so validation during training (:meth:`Postprocessor.classes` on the device) decides exactly as
``eoseg predict`` does. Gate and minimum area need a whole scene and act on predictions only, not on
the per-batch validation metrics.

Then, over the written mask (a second pass by square blocks, so any scene size and shape fits):
- ``post.gate``: a class is emptied where the image-level head's scene mean is at or below its gate
  threshold (``p > t`` keeps it; clouds recipe);
- ``post.min_area`` (m² per class): 4-connected components smaller than the limit become background.
  Components that cross block borders are measured whole: each block is labelled
  (``scipy.ndimage.label``), labels of 4-neighbours across a block border (the row above, the column to
  the left) are joined (union-find as a sparse graph, ``scipy.sparse.csgraph``), component sizes are
  summed over blocks, and a second pass rewrites the mask block by block without the small ones. The
  result is exactly that of labelling the whole raster at once (a diagonal touch does not connect).
  Only labels on a border between blocks are remembered; a component inside one block is decided when
  the second pass labels that block again. Memory: one block (:data:`FINALIZE_BLOCK` pixels square), one
  row of labels across the scene, and a few numbers per label on a block border (not per component).
Invalid pixels are :data:`~eoseg.geo.products.IGNORE` in every mask.

The per-building vote (:meth:`Postprocessor.vote_polygons`, xView2 damage) gives each polygon the class
with the highest mean probability inside it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.windows import Window
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from eoseg.config.activation import activation_of
from eoseg.config.schema import HeadSpec, PostSpec, TaskSpec
from eoseg.errors import ConfigError
from eoseg.geo.cog import GDAL_ENV, TiledRasterWriter, written_compression
from eoseg.geo.polygonize import block_windows, pixel_area_m2
from eoseg.geo.products import IGNORE, MaskKind, mask_classes, mask_spec, read_heads, read_mask
from eoseg.geo.raster import open_raster, raster_info
from eoseg.post.zonal import zonal_means

_FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)
FINALIZE_BLOCK = 2048
"""Block side of the gate / minimum-area pass (a multiple of the COG's 512-pixel tiles)."""


def mask_kind(head: HeadSpec, task: TaskSpec) -> MaskKind:
    """The mask layout of a dense head: multilabel tasks are multilabel; several sigmoid channels are
    multilabel in a multiclass task, binary in an object task (binary, change: channel 0 is the object, the
    others extra channels such as boundary and contact, :func:`extra_channels`); one sigmoid channel or a
    2-channel softmax is binary, a wider softmax multiclass."""
    activation = activation_of(head, task)
    if task.kind == "multilabel":
        return "multilabel"
    if activation != "softmax" and head.channels > 1:
        return "multilabel" if task.kind == "multiclass" else "binary"
    if head.channels <= 2:
        return "binary"
    return "multiclass"


def extra_channels(head: HeadSpec, task: TaskSpec) -> int:
    """Trailing channels of a dense head that are not in its mask: a sigmoid head of an object task learns
    the object in channel 0 and extra target channels after it (``data.targets.<t>.extra_channels``)."""
    if mask_kind(head, task) == "binary" and activation_of(head, task) != "softmax":
        return head.channels - 1
    return 0


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


def _namespace(array: Any) -> Any:
    """numpy for numpy arrays, torch for tensors (imported only then: post does not need torch)."""
    if isinstance(array, np.ndarray):
        return np
    import torch

    return torch


def threshold_rule(prob: Any, kind: MaskKind, thresholds: Sequence[float]) -> Any:
    """THE rule from probabilities to the mask layout, for numpy ``(C, H, W)`` or torch ``(B, C, H, W)``.

    ``thresholds`` has one value per channel (channels on axis -3). Returns binary: bool ``(..., 1, H, W)``
    (foreground ``p > t``); multilabel: bool ``(..., C, H, W)`` (``p > t`` per channel); multiclass: class
    index ``(..., 1, H, W)``: among channels 1..K-1 whose ``p > t``, the most probable, else 0. NaN is off.
    """
    xp = _namespace(prob)
    channels = decided_channels(kind, prob.shape[-3])
    t = np.asarray(thresholds, dtype=np.float64)[channels]
    limit = t[:, None, None] if xp is np else xp.as_tensor(t, dtype=prob.dtype, device=prob.device)[:, None, None]
    decided = prob[..., channels, :, :]
    on = decided > limit
    if kind != "multiclass":
        return on
    best = xp.where(on, decided, -1.0).argmax(-3)
    return xp.where(on.any(-3), best + 1, 0)[..., None, :, :]


class Postprocessor:
    """Turns probabilities ``(C, H, W)`` into masks by the ``post`` section, for one head layout.

    ``Postprocessor.for_head(post, head, task)`` builds it from the model's head; ``mask`` / ``vote``
    threshold rows of probabilities (streaming-friendly), ``finalize`` applies gate and minimum area to a
    written mask raster, and ``__call__`` does all of it on an in-memory array.
    """

    def __init__(self, post: PostSpec, kind: MaskKind, channels: int, extra: int = 0) -> None:
        self.post, self.kind, self.channels, self.extra = post, kind, channels, extra
        self.mask_channels = channels - extra  # the leading channels the mask is made of
        if kind == "binary" and self.mask_channels not in (1, 2):
            raise ConfigError(f"binary masks need 1 or 2 probability channels, got {self.mask_channels}")
        self.thresholds = per_channel(post.threshold, channels, "post.threshold")
        self.min_area = per_channel(post.min_area, channels, "post.min_area")

    @classmethod
    def for_head(cls, post: PostSpec, head: HeadSpec, task: TaskSpec) -> Postprocessor:
        """The post-processor of a dense head (its layout from :func:`mask_kind`, :func:`extra_channels`)."""
        return cls(post, mask_kind(head, task), head.channels, extra_channels(head, task))

    @property
    def bands(self) -> int:
        """Bands of the mask raster: one per channel for multilabel, else one (class index / 0-1)."""
        return self.mask_channels if self.kind == "multilabel" else 1

    @property
    def decided(self) -> list[int]:
        """The probability channels the thresholds decide (:func:`decided_channels` of the mask's channels)."""
        return decided_channels(self.kind, self.mask_channels)

    def layers(self) -> list[tuple[int, int, int]]:
        """``(band, value, channel)`` of every class the mask holds: where gate and min-area act."""
        if self.kind == "multilabel":
            return [(c, 1, c) for c in range(self.mask_channels)]
        if self.kind == "binary":
            return [(0, 1, self.decided[0])]
        return [(0, c, c) for c in range(1, self.mask_channels)]

    # ------------------------------------------------------------------ thresholds (row by row)
    def on(self, prob: np.ndarray) -> np.ndarray:
        """``bool (len(decided_channels), H, W)``: ``p > threshold`` for every decided channel (NaN: off)."""
        channels = self.decided
        with np.errstate(invalid="ignore"):
            return threshold_rule(prob[channels], "multilabel", self.thresholds[channels])

    def mask(self, prob: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """``uint8 (bands, H, W)`` mask of probabilities ``(C, H, W)``; invalid / NaN pixels are IGNORE."""
        with np.errstate(invalid="ignore"):
            out = self.layout(prob).astype(np.uint8)
        return self._invalid(out, prob, valid)

    def layout(self, prob: Any) -> Any:
        """:func:`threshold_rule` with this head's thresholds (numpy ``(C, H, W)`` or torch ``(B, C, H, W)``) on
        the mask's channels (not the extra channels)."""
        m = self.mask_channels
        return threshold_rule(prob[..., :m, :, :], self.kind, self.thresholds[:m])

    def classes(self, prob: Any) -> Any:
        """Class index ``(..., H, W)`` of probabilities (numpy ``(C, H, W)`` or torch ``(B, C, H, W)``), by
        :func:`threshold_rule`: binary 0/1, multiclass the class; multilabel (sigmoid classes of a
        one-class-per-pixel task): the most probable channel above its threshold + 1, else 0.

        Validation during training scores this, so its metrics are those of ``eoseg predict``'s mask.
        """
        xp = _namespace(prob)
        if self.kind != "multilabel":
            out = self.layout(prob)[..., 0, :, :]
        else:
            prob = prob[..., : self.mask_channels, :, :]
            background = prob[..., :1, :, :] * 0  # never decided: channels 1.. are the labels
            stacked = xp.concatenate([background, prob], -3) if xp is np else xp.cat([background, prob], -3)
            thresholds = np.concatenate([[0.0], self.thresholds[: self.mask_channels]])
            out = threshold_rule(stacked, "multiclass", thresholds)[..., 0, :, :]
        return out.astype(np.int64) if xp is np else out.long()

    def foreground(self, prob: np.ndarray) -> np.ndarray:
        """``uint8 (H, W)`` mask of a binary layout from its foreground probability alone (``(H, W)``)."""
        if self.kind != "binary":
            raise ValueError(f"a foreground probability map needs a binary head, this one is {self.kind}")
        stacked = np.zeros((self.channels, *np.shape(prob)), np.float64)
        stacked[self.decided[0]] = prob
        return self.mask(stacked)[0]

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
        if probs.size == self.mask_channels:
            by_channel = {c: (p, t) for c, (p, t) in enumerate(zip(probs, limits, strict=True))}
        elif self.kind == "binary" and probs.size == 1:
            by_channel = {self.decided[0]: (probs[0], limits[0])}
        else:
            raise ConfigError(f"post.gate.head={gate.head!r}: has {probs.size} value(s) but the mask head has "
                              f"{self.mask_channels} channel(s); gate with an image head of one value per class")
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
        block: int = FINALIZE_BLOCK,
    ) -> Path:
        """Apply gate and minimum area to a written mask raster in place (atomic rewrite, block by block).

        ``heads`` is the image-level head summary (or the path of its ``heads.json``) for the gate;
        ``block`` is the side of the square blocks read and written (memory, not the result, depends on it).
        """
        path = Path(mask_path)
        if not self.needs_finalize():
            return path
        if heads is not None and not isinstance(heads, Mapping):
            heads = read_heads(heads)
        gated = self.gated_layers(heads)
        info = raster_info(path)
        windows = block_windows(info.height, info.width, block)
        area = pixel_area_m2(info.transform, info.crs, info.height / 2, info.width / 2)
        limits = self.min_pixels(area)
        layers = self.layers()
        measure = [i for i, limit in enumerate(limits) if limit > 0 and i not in gated]
        with rasterio.Env(**GDAL_ENV):  # a bounded block cache: GDAL's default grows with the machine
            small = _small_components(path, layers, measure, limits, windows) if measure else {}
            with open_raster(path) as src:
                names = tuple(d or f"band_{i + 1}" for i, d in enumerate(src.descriptions))
                writer = TiledRasterWriter(path, mask_spec(info, names, mask_classes(src)),
                                            written_compression(src))  # predict.compress
                try:
                    for index, window in enumerate(windows):
                        data, valid = read_mask(src, window)
                        for i, (band, value, _) in enumerate(layers):
                            on = data[band] == value
                            if i in gated:
                                data[band][on] = 0
                            elif i in small:
                                labels, _ = ndimage.label(on, structure=_FOUR_CONNECTED)
                                data[band][small[i].lookup(index, labels)[labels]] = 0
                        data[:, ~valid] = IGNORE
                        writer.write_block(int(window.row_off), int(window.col_off), data, valid)
                except BaseException:
                    writer.abort()
                    raise
            return writer.finish()

    # ------------------------------------------------------------------ per-building vote
    @staticmethod
    def vote_polygons(
        polygons: gpd.GeoDataFrame,
        prob_raster: str | os.PathLike[str],
        classes: Sequence[int | str] | None = None,
        *,
        normalize: bool = True,
        column: str = "class",
    ) -> gpd.GeoDataFrame:
        """A copy of ``polygons`` with ``column`` = the class with the highest mean probability inside each
        polygon and ``<column>_prob`` = that mean (the xView2 damage step: one class per building, not a
        patchwork of pixel classes).

        ``classes`` labels the raster bands (default: band index 0..C-1). ``normalize`` makes each pixel's
        probabilities sum to one first (as the xView2 solution did). Polygons that cover no valid pixel get
        no class (None / NaN); masked (nodata) pixels are never counted.
        """
        means, counts = zonal_means(polygons, prob_raster, normalize=normalize)
        labels = np.asarray(list(classes) if classes is not None else range(means.shape[1]), dtype=object)
        if labels.size != means.shape[1]:
            raise ValueError(f"{prob_raster}: {means.shape[1]} band(s) but {labels.size} class labels given")
        out = polygons.copy()
        covered = counts > 0
        winner = np.argmax(np.nan_to_num(means, nan=-1.0), axis=1)
        out[column] = np.where(covered, labels[winner], None)
        if all(isinstance(v, (int, np.integer)) for v in labels):
            out[column] = out[column].astype("Int64")
        out[f"{column}_prob"] = np.where(covered, means[np.arange(len(means)), winner], np.nan)
        return out

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


class _SmallLabels:
    """Which labels of each block (as ``ndimage.label`` numbers them there) belong to a too-small component.

    Only labels on a border shared with another block are kept (their decision needs the other blocks);
    a label inside a block is a whole component, decided from its size when the block is labelled again.
    """

    def __init__(self, limit: float, borders: list[np.ndarray], offsets: list[int], too_small: np.ndarray) -> None:
        self.limit, self.borders, self.offsets, self.too_small = limit, borders, offsets, too_small

    def lookup(self, index: int, labels: np.ndarray) -> np.ndarray:
        """``bool (1 + labels of block index,)``: local label -> too small (index 0: background, kept);
        ``labels``: the block's labels (as pass 1 had them)."""
        small = np.bincount(labels.ravel()) < self.limit
        small[0] = False
        border, start = self.borders[index], self.offsets[index]
        small[border] = self.too_small[start : start + len(border)]
        return small


def _border_labels(labels: np.ndarray, top: bool, left: bool, bottom: bool, right: bool) -> np.ndarray:
    """Sorted local labels (> 0) on the block's edges that another block touches."""
    edges = [e for e, shared in ((labels[0], top), (labels[:, 0], left), (labels[-1], bottom), (labels[:, -1], right))
             if shared]
    border = np.unique(np.concatenate(edges)) if edges else np.zeros(0, labels.dtype)
    return border[border > 0]


def _global_ids(local: np.ndarray, border: np.ndarray, offset: int) -> np.ndarray:
    """Scene-wide ids + 1 of a block's labels on one of its shared edges (0 stays 0: off)."""
    return np.where(local > 0, np.searchsorted(border, local).astype(np.int64) + offset + 1, 0)


def _small_components(
    path: Path, layers: list[tuple[int, int, int]], measure: list[int], limits: np.ndarray, windows: list[Window]
) -> dict[int, _SmallLabels]:
    """Per measured layer: the too-small components, as lookups per block of ``windows`` (see
    :func:`block_windows` and :class:`_SmallLabels`).

    Pass 1 labels every block; labels on an edge shared with another block get a scene-wide id, their size
    and the id pairs that are 4-neighbours across the border with the block above (its last row, kept for
    the whole width) and the block to the left (its last column). Components are the connected parts of
    that graph; a component is small when its summed size is under the limit. Labels inside a block are
    not kept (memory: a few numbers per border label, not per component of the scene).
    """
    borders: dict[int, list[np.ndarray]] = {i: [] for i in measure}
    offsets: dict[int, list[int]] = {i: [] for i in measure}
    sizes: dict[int, list[np.ndarray]] = {i: [] for i in measure}
    edges: dict[int, list[np.ndarray]] = {i: [] for i in measure}
    total = dict.fromkeys(measure, 0)
    with open_raster(path) as src:
        # global ids + 1 (0 = off) of the last row of the blocks above, and of the last column to the left
        above = {i: np.zeros(src.width, np.int64) for i in measure}
        left: dict[int, np.ndarray] = {}
        for window in windows:  # rows of blocks, left to right
            data, _ = read_mask(src, window)
            r0, r1 = int(window.row_off), int(window.row_off + window.height)
            c0, c1 = int(window.col_off), int(window.col_off + window.width)
            for i in measure:
                band, value, _ = layers[i]
                labels, n = ndimage.label(data[band] == value, structure=_FOUR_CONNECTED)
                border = _border_labels(labels, r0 > 0, c0 > 0, r1 < src.height, c1 < src.width)
                offset = total[i]
                borders[i].append(border)
                offsets[i].append(offset)
                sizes[i].append(np.bincount(labels.ravel(), minlength=n + 1)[border])
                shared = [(above[i][c0:c1], labels[0])] if r0 > 0 else []
                if c0 > 0:
                    shared.append((left[i], labels[:, 0]))
                for before, line in shared:
                    here = _global_ids(line, border, offset)
                    touch = (before > 0) & (here > 0)
                    if touch.any():
                        edges[i].append(np.unique(np.stack([before[touch], here[touch]], axis=1), axis=0) - 1)
                if r1 < src.height:
                    above[i][c0:c1] = _global_ids(labels[-1], border, offset)
                if c1 < src.width:
                    left[i] = _global_ids(labels[:, -1], border, offset)
                total[i] += len(border)
    result: dict[int, _SmallLabels] = {}
    for i in measure:
        n = total[i]
        if n == 0:
            result[i] = _SmallLabels(limits[i], borders[i], offsets[i], np.zeros(0, bool))
            continue
        size = np.concatenate(sizes[i])
        pairs = np.concatenate(edges[i]) if edges[i] else np.zeros((0, 2), np.int64)
        graph = coo_matrix((np.ones(len(pairs), bool), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
        _, component = connected_components(graph, directed=False)
        component_size = np.bincount(component, weights=size, minlength=component.max(initial=-1) + 1)
        result[i] = _SmallLabels(limits[i], borders[i], offsets[i], component_size[component] < limits[i])
    return result

"""``eoseg thresholds``: per-class threshold and minimum area that maximise a metric on validation data.

For every validation scene, every candidate threshold and every candidate minimum area, the TP/FP/FN
counts of each probability channel against its truth are computed: one connected-component labelling
per threshold, then all minimum areas at once from the components' sizes and their truth overlap.
Metrics: ``iou``, ``f1``, ``dice`` pooled over all pixels of all scenes; ``mean_dice`` averages the
per-scene Dice with empty = 1 (the clouds metric). Channels are searched one against the rest.
Memory: one scene (its probabilities and truth) at a time. :func:`search_gate_thresholds` picks the
image-classifier gate per class the same way (mean Dice with empty = 1, the clouds recipe);
:func:`search_gate` runs it on prediction rasters and their ``heads.json`` (``eoseg thresholds --gate``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from rasterio.windows import Window
from scipy import ndimage

from eoseg.config.schema import GateSpec, PostSpec
from eoseg.errors import ConfigError, InputError
from eoseg.geo.atomic import write_text_atomic
from eoseg.geo.polygonize import pixel_area_m2
from eoseg.geo.products import (
    IGNORE,
    MASK_KINDS,
    check_writable,
    probability_extra_channels,
    probability_mask_kind,
    read_probabilities,
)
from eoseg.geo.raster import open_raster, raster_info
from eoseg.metrics.clouds import dice_empty_one
from eoseg.metrics.pixel import scores_from_counts
from eoseg.metrics.truth import TruthOnGrid
from eoseg.post.clouds import image_probabilities
from eoseg.post.postprocess import MaskKind, Postprocessor, decided_channels

METRICS = ("iou", "f1", "dice", "mean_dice")
DEFAULT_THRESHOLDS = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2))
_FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)


@dataclass(frozen=True)
class ChannelChoice:
    """Best threshold and minimum area of one probability channel, with its score and the default's."""

    channel: int
    threshold: float
    min_area: float
    score: float
    default_score: float


def _counts_grid(
    prob: np.ndarray, truth: np.ndarray, valid: np.ndarray, thresholds: Sequence[float], min_pixels: np.ndarray
) -> np.ndarray:
    """``int64 (T, A, 3)`` TP/FP/FN of one channel of one scene for every threshold and minimum area."""
    positive = truth & valid
    n_pos = int(positive.sum())
    out = np.zeros((len(thresholds), len(min_pixels), 3), np.int64)
    for i, t in enumerate(thresholds):
        with np.errstate(invalid="ignore"):
            on = (prob > t) & valid
        labels, _ = ndimage.label(on, structure=_FOUR_CONNECTED)
        sizes = np.bincount(labels.ravel())
        hits = np.bincount(labels.ravel(), weights=positive.ravel(), minlength=sizes.size).astype(np.int64)
        sizes[0] = hits[0] = 0
        tp_all, on_all = int(hits.sum()), int(sizes.sum())
        for j, limit in enumerate(min_pixels):
            small = sizes < limit
            small[0] = False
            tp = tp_all - int(hits[small].sum())
            fp = (on_all - tp_all) - int((sizes[small] - hits[small]).sum())
            out[i, j] = (tp, fp, n_pos - tp)
    return out


def _score(counts: np.ndarray, metric: str) -> np.ndarray:
    """Scores ``(T, A)`` from per-scene counts ``(S, T, A, 3)``."""
    if metric == "mean_dice":
        tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
        den = 2 * tp + fp + fn
        dice = np.where(den > 0, np.divide(2 * tp, den, out=np.ones(den.shape), where=den > 0), 1.0)
        return dice.mean(axis=0)
    pooled = counts.sum(axis=0)
    return scores_from_counts(pooled[..., 0], pooled[..., 1], pooled[..., 2])[metric]


def _channel_truth(labels: np.ndarray, channel: int, channels: int, kind: MaskKind) -> np.ndarray:
    if kind == "multilabel":
        return labels[channel] > 0
    value = 1 if kind == "binary" and channels == 1 else channel
    return labels[0] == value


def probability_kind(
    probs: Sequence[str | os.PathLike[str]], kind: str | None = None, given_by: str = "--kind"
) -> MaskKind:
    """The mask layout to search on ``probs``: their ``mask_kind`` tag (predict writes it), else ``kind``,
    else binary. A ``kind`` (``given_by`` names where it came from) that the tag contradicts, or inputs
    tagged differently, are refused: thresholds searched on the wrong layout would not be predict's."""
    if kind is not None and kind not in MASK_KINDS:
        raise ConfigError(f"{given_by}: {kind!r} is not binary, multiclass or multilabel")
    tagged: dict[str, str] = {}
    for path in probs:
        with open_raster(path) as src:
            if found := probability_mask_kind(src):
                tagged[str(path)] = found
    for path, found in tagged.items():
        first, value = next(iter(tagged.items()))
        if found != value:
            raise InputError(f"{path}: its mask_kind tag {found!r} differs from {Path(first).name}'s {value!r}; "
                             "search thresholds on predictions of one model")
        if kind is not None and found != kind:
            raise ConfigError(f"{given_by}: {kind!r} contradicts {Path(path).name}'s mask_kind tag {found!r} (the "
                              f"layout predict wrote it with); drop {given_by} or give --kind {found}")
    return next(iter(tagged.values()), kind or "binary")  # type: ignore[return-value]


def search_thresholds(
    probs: Sequence[str | os.PathLike[str]],
    truths: Sequence[str | os.PathLike[str]],
    *,
    kind: MaskKind = "binary",
    metric: str = "iou",
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    min_areas: Sequence[float] = (0.0,),
    ignore_index: int = IGNORE,
    resample: bool = False,
    default_threshold: float = 0.5,
) -> list[ChannelChoice]:
    """Best threshold and minimum area (m²) per probability channel, searched over the candidates.

    Ties go to the lower threshold, then the smaller area. The channels searched are those the
    :class:`~eoseg.post.postprocess.Postprocessor` thresholds (binary: the foreground channel, also of a
    2-channel softmax, also the footprint channel 0 of a head with extra channels: the ``extra_channels``
    tag; multiclass: not the background), by its rule ``p > threshold``.
    ``default_score`` is the score at ``default_threshold`` without area filter (when that
    threshold is a candidate, else NaN), to show the gain.
    """
    if metric not in METRICS:
        raise ConfigError(f"post.metric: unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    if len(probs) != len(truths) or not probs:
        raise InputError(f"thresholds: {len(probs)} probability raster(s) but {len(truths)} truth file(s)")
    thresholds = sorted(float(t) for t in thresholds)
    areas = sorted(float(a) for a in min_areas)
    if not thresholds or not areas or min(areas) < 0:
        raise ConfigError("thresholds: give candidate thresholds and non-negative minimum areas")
    channels = raster_info(probs[0]).count
    with open_raster(probs[0]) as src:
        masked = channels - probability_extra_channels(src)  # the channels the mask is made of
    searched = decided_channels(kind, masked)
    counts = {c: [] for c in searched}
    for prob_path, truth_path in zip(probs, truths, strict=True):
        grid = raster_info(prob_path)
        if grid.count != channels:
            raise InputError(f"{prob_path}: has {grid.count} band(s) but {Path(probs[0]).name} has {channels}")
        full = Window(0, 0, grid.width, grid.height)
        with open_raster(prob_path) as src, TruthOnGrid(truth_path, grid, resample=resample) as truth:
            prob = read_probabilities(src, full)
            labels, truth_valid = truth.read(full)
        valid = truth_valid & np.isfinite(prob).all(axis=0)
        if kind != "multilabel":
            valid &= labels[0] != ignore_index
        center = pixel_area_m2(grid.transform, grid.crs, grid.height / 2, grid.width / 2)
        min_pixels = np.asarray(areas) / center
        for c in searched:
            truth_c = _channel_truth(labels, c, masked, kind)
            counts[c].append(_counts_grid(prob[c], truth_c, valid, thresholds, min_pixels))
    choices = []
    for c in searched:
        scores = _score(np.stack(counts[c]), metric)
        i, j = np.unravel_index(int(np.argmax(scores)), scores.shape)
        default = float(scores[thresholds.index(default_threshold), 0]) if default_threshold in thresholds else np.nan
        choices.append(ChannelChoice(c, thresholds[i], areas[j], float(scores[i, j]), default))
    return choices


def write_overlay(
    path: str | os.PathLike[str],
    choices: Sequence[ChannelChoice],
    channels: int,
    metric: str,
    gate: GateSpec | None = None,
    kind: MaskKind = "binary",
) -> Path:
    """Write a config overlay ``post: {threshold, min_area, metric[, gate]}`` that ``eoseg predict --post`` reads.

    Binary: one threshold and one minimum area (for the foreground channel); otherwise one value per
    channel (multiclass background: threshold 0 and area 0, unused by the post-processor).
    """
    check_writable(path)
    threshold: float | list[float] = [0.0 if kind == "multiclass" else 0.5] * channels
    min_area: float | list[float] = [0.0] * channels
    for choice in choices:
        threshold[choice.channel] = choice.threshold
        min_area[choice.channel] = choice.min_area
    if kind == "binary":  # the foreground channel's (the last of a softmax, channel 0 of a sigmoid head)
        c = choices[0].channel if choices else channels - 1
        threshold, min_area = threshold[c], min_area[c]
    header = "".join(
        f"# channel {c.channel}: {metric} {c.score:.4f} (default threshold: {c.default_score:.4f})\n" for c in choices
    )
    post: dict = {"threshold": threshold, "min_area": min_area, "metric": metric}
    if gate is not None:
        post["gate"] = gate.model_dump(mode="json")
    body = yaml.safe_dump({"post": post}, sort_keys=False)
    return write_text_atomic(path, header + body)


def search_gate_thresholds(
    image_prob: np.ndarray,
    pred_masks: Sequence[np.ndarray],
    truth_masks: Sequence[np.ndarray],
    candidates: Sequence[float] = tuple(np.round(np.arange(0.0, 1.0, 0.01), 2)),
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class gate thresholds that maximise mean Dice (empty = 1) over images (clouds recipe).

    ``image_prob`` is ``(N, K)`` classifier probabilities; ``pred_masks`` / ``truth_masks`` are N arrays
    ``(K, H, W)`` of 0/1. A class is emptied when its probability is at or below the threshold.
    Returns the best threshold and its mean Dice per class (ties: the lower threshold).
    """
    probs = np.asarray(image_prob, dtype=np.float64)
    n, k = probs.shape
    if len(pred_masks) != n or len(truth_masks) != n:
        raise ValueError(f"gate search: {n} image probabilities but {len(pred_masks)} / {len(truth_masks)} masks")
    kept = np.array(
        [[dice_empty_one(p[c], t[c]) for c in range(k)] for p, t in zip(pred_masks, truth_masks, strict=True)]
    )
    emptied = np.array([[float(not np.any(t[c])) for c in range(k)] for t in truth_masks])
    grid = np.asarray(sorted(candidates), dtype=np.float64)
    scores = np.where(probs[None] > grid[:, None, None], kept[None], emptied[None]).mean(axis=1)  # (T, K)
    best = scores.argmax(axis=0)
    return grid[best], scores[best, np.arange(k)]


def search_gate(
    probs: Sequence[str | os.PathLike[str]],
    truths: Sequence[str | os.PathLike[str]],
    choices: Sequence[ChannelChoice],
    head: str = "image_class",
    resample: bool = False,
) -> tuple[GateSpec, np.ndarray]:
    """The classifier gate per class on top of searched thresholds and minimum areas (multilabel, clouds).

    Each probability raster's image-level head is read from ``<name>.heads.json`` beside it (as
    ``eoseg predict`` writes it); masks are made with the chosen thresholds and minimum areas
    (:class:`eoseg.post.postprocess.Postprocessor`), then :func:`search_gate_thresholds` picks the gate.
    Returns the gate and its mean Dice (empty = 1) per class.
    """
    channels = raster_info(probs[0]).count
    threshold, min_area = [0.5] * channels, [0.0] * channels
    for choice in choices:
        threshold[choice.channel], min_area[choice.channel] = choice.threshold, choice.min_area
    post = PostSpec(threshold=threshold, min_area=min_area)
    image_probs, preds, labels_all = [], [], []
    for prob_path, truth_path in zip(probs, truths, strict=True):
        name = Path(prob_path).name.removesuffix(".tif").removesuffix(".prob")
        image_probs.append(image_probabilities(Path(prob_path).with_name(f"{name}.heads.json"), head, str(prob_path)))
        grid = raster_info(prob_path)
        full = Window(0, 0, grid.width, grid.height)
        with open_raster(prob_path) as src, TruthOnGrid(truth_path, grid, resample=resample) as truth:
            prob = read_probabilities(src, full)
            labels, truth_valid = truth.read(full)
        center = pixel_area_m2(grid.transform, grid.crs, grid.height / 2, grid.width / 2)
        preds.append(Postprocessor(post, "multilabel", channels)(prob, center) == 1)
        labels_all.append(np.stack([(labels[c] > 0) & (labels[c] != IGNORE) & truth_valid for c in range(channels)]))
    best, scores = search_gate_thresholds(np.stack(image_probs), preds, labels_all)
    return GateSpec(head=head, threshold=[float(t) for t in best]), scores

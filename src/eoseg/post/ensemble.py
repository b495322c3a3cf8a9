"""Combine rasters written earlier (several models, or several acquisitions of one place on one grid).

``mean``: weighted mean of probability rasters, per pixel over the inputs that are valid there.
``vote``: k-of-n vote of binary masks (a pixel is on when at least ``min_votes`` inputs say so), as
the UNOSAT ("all but one") and clouds (3 of 5) recipes did. Inputs are masks (on where > 0) or, with
a ``threshold``, probability rasters thresholded first by the mask rule of predict
(:class:`~eoseg.post.postprocess.Postprocessor` of the layout their ``mask_kind`` tag names): a binary
layout (2-class softmax, one sigmoid channel, a footprint channel with extra channels such as boundary and
contact: ``extra_channels`` tag) gives predict's one class band, multilabel (or untagged)
probabilities are voted band by band, multiclass ones are refused (as ``predict.vote`` refuses them).
A pixel that no input covers is nodata.
The output keeps the inputs' band descriptions and ``classes`` tag (a vote: for one binary band), which
``eoseg evaluate`` reports; inputs that name them (or their layout) differently are refused.
Streams by row bands into a tiled writer that finishes as a COG (atomic): memory is one band of rows
per input, never the scene.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from rasterio.windows import Window

from eoseg.config.schema import PostSpec
from eoseg.errors import ConfigError, InputError
from eoseg.geo.cog import TiledRasterWriter, written_compression
from eoseg.geo.polygonize import row_windows
from eoseg.geo.products import (
    IGNORE,
    MaskKind,
    check_same_grid,
    check_writable,
    encode_probabilities,
    mask_classes,
    mask_spec,
    probability_extra_channels,
    probability_mask_kind,
    probability_spec,
    read_mask,
    read_probabilities,
)
from eoseg.geo.raster import Source, open_raster
from eoseg.post.postprocess import Postprocessor

BAND_ROWS = 512


def _votes(src: Source, window: Window, rule: Postprocessor | None) -> tuple[np.ndarray, np.ndarray]:
    """``(on, valid)`` per mask band of one input: masks are on where > 0, probabilities by ``rule``."""
    if rule is None:
        raw, valid = read_mask(src, window)
        return (raw > 0) & valid, valid
    prob = read_probabilities(src, window)
    valid = np.isfinite(prob).all(axis=0)
    return rule.on(prob), valid


def ensemble_rasters(
    paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    mode: Literal["mean", "vote"] = "mean",
    *,
    min_votes: int | None = None,
    threshold: float | None = None,
    weights: Sequence[float] | None = None,
    band_rows: int = BAND_ROWS,
) -> Path:
    """Write the combination of ``paths`` (all on one grid) to ``out`` and return its path.

    ``mean`` writes a probability raster (:func:`eoseg.geo.products.probability_spec`): uint8 inputs give
    uint8 with an internal mask, float inputs float16 with NaN. ``vote`` writes a mask raster (uint8 0/1,
    nodata :data:`~eoseg.geo.products.IGNORE`); ``min_votes`` defaults to a majority (n // 2 + 1).
    The COG takes the first input's compression (the ``predict.compress`` that wrote it; an input compressed
    otherwise: :data:`~eoseg.geo.cog.DEFAULT_COMPRESS`, :func:`~eoseg.geo.cog.written_compression`).
    """
    if not paths:
        raise ConfigError("ensemble: give at least one raster")
    if mode not in ("mean", "vote"):
        raise ConfigError(f"--mode: unknown mode {mode!r}; use mean or vote")
    n = len(paths)
    infos = check_same_grid(paths, "rasters to ensemble")
    check_writable(out, inputs=paths)
    k = n // 2 + 1 if min_votes is None else min_votes
    if mode == "vote" and not 1 <= k <= n:
        raise ConfigError(f"--min-votes: {k} is not between 1 and the number of rasters ({n})")
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (n,) or np.any(w < 0) or w.sum() <= 0:
        raise ConfigError(f"ensemble weights: need {n} non-negative values with a positive sum, got {list(w)}")
    first = infos[0]
    prob_dtype = "uint8" if first.dtype == "uint8" else "float16"
    with contextlib.ExitStack() as stack:
        sources = [stack.enter_context(open_raster(p)) for p in paths]
        names, classes, kind, extra = _common_names(paths, sources)
        rule = (None if mode == "mean" or threshold is None
                else _vote_rule(paths[0], kind, threshold, first.count, extra))
        if mode == "mean":
            spec = probability_spec(first, names, prob_dtype, classes, kind, extra)
        elif rule is not None and rule.kind == "binary":  # predict's mask: one class band
            spec = mask_spec(first, ("class",), classes if len(classes) == 2 else ())
        else:
            # a vote is 0/1 per band: the inputs' class names still hold for one binary band, not for a
            # multiclass mask's values or a probability raster's several bands (each voted on its own)
            spec = mask_spec(first, names, classes if len(classes) == 2 and len(names) == 1 else ())
        writer = stack.enter_context(TiledRasterWriter(out, spec, written_compression(sources[0])))
        for window in row_windows(first.height, first.width, band_rows):
            if mode == "mean":
                mean, covered = _mean_block(sources, window, w)
                writer.write_rows(int(window.row_off), *encode_probabilities(mean, covered, prob_dtype))
            else:
                writer.write_rows(int(window.row_off), _vote_block(sources, window, rule, k))
        return writer.finish()


def _vote_rule(
    path: str | os.PathLike[str], kind: MaskKind | None, threshold: float, channels: int, extra: int = 0
) -> Postprocessor:
    """The mask rule of thresholded probabilities: predict's :class:`Postprocessor` of their layout (untagged:
    each band on its own)."""
    if kind == "multiclass":
        raise InputError(
            f"{path}: multiclass probabilities ({channels} classes): a k-of-n vote needs binary or multilabel "
            "masks (as predict.vote); average them with --mode mean instead"
        )
    return Postprocessor(PostSpec(threshold=threshold), kind or "multilabel", channels, extra)


def _common_names(
    paths: Sequence[str | os.PathLike[str]], sources: list[Source]
) -> tuple[tuple[str, ...], list[str], MaskKind | None, int]:
    """The inputs' band descriptions, class names (``classes`` tag) and mask layout (``mask_kind`` and
    ``extra_channels`` tags), which
    the output carries; inputs that name them must agree (a combination of different classes or band orders
    means nothing), those that do not (e.g. an external 0/1 mask) take the others' names."""
    descriptions, tagged, kinds, extras = {}, {}, {}, {}
    for path, src in zip(paths, sources, strict=True):
        if any(src.descriptions):
            descriptions[path] = list(src.descriptions)
        if classes := mask_classes(src):
            tagged[path] = classes
        if kind := probability_mask_kind(src):
            kinds[path] = kind
        if extra := probability_extra_channels(src):
            extras[path] = extra
    same_classes = "combine rasters of models with the same classes, in the same order"
    same_layout = "combine probabilities of models with the same head layout (softmax or sigmoid)"
    checks = (("band descriptions", descriptions, same_classes), ("classes tag", tagged, same_classes),
              ("mask_kind tag", kinds, same_layout), ("extra_channels tag", extras, same_layout))
    for what, named, advice in checks:
        (path, value), *others = named.items() or [(None, None)]
        for other, different in others:
            if different != value:
                raise InputError(
                    f"{other}: its {what} {different!r} differ from {Path(path).name}'s {value!r}; {advice}"
                )
    names = next(iter(descriptions.values()), (None,) * sources[0].count)
    named = tuple(d or f"band_{i + 1}" for i, d in enumerate(names))
    return (named, next(iter(tagged.values()), []), next(iter(kinds.values()), None),
            next(iter(extras.values()), 0))


def _mean_block(sources: list[Source], window: Window, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean ``(C, h, w)`` over the inputs valid at each pixel, and where any input is valid."""
    total = weight = None
    for src, wi in zip(sources, w, strict=True):
        prob = read_probabilities(src, window)
        valid = np.isfinite(prob).all(axis=0)
        part = np.where(valid, prob, 0.0) * wi
        total = part if total is None else total + part
        weight = valid * wi if weight is None else weight + valid * wi
    covered = weight > 0
    mean = np.divide(total, weight, out=np.zeros_like(total), where=covered)
    return mean, covered


def _vote_block(sources: list[Source], window: Window, rule: Postprocessor | None, k: int) -> np.ndarray:
    votes = covered = None
    for src in sources:
        on, valid = _votes(src, window, rule)
        votes = on.astype(np.int32) if votes is None else votes + on
        covered = valid if covered is None else covered | valid
    if covered.ndim == 2:
        covered = np.broadcast_to(covered, votes.shape)
    return np.where(covered, (votes >= k).astype(np.uint8), IGNORE).astype(np.uint8)

"""Kaggle clouds submission rows from predicted probability rasters and their image-level heads.

Per image: the whole ``post`` section on the prediction grid (per-class thresholds, then the image
classifier gate, then minimum areas, :class:`eoseg.post.postprocess.Postprocessor`), then the four masks
resized to 350 x 525 (nearest) and run-length encoded. Minimum areas count pixels of the 350 x 525
submission mask, because the resized images carry that grid (:func:`eoseg.formats.clouds.submission_grid`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from eoseg.config.schema import PostSpec
from eoseg.errors import ConfigError, InputError
from eoseg.formats.clouds import LABELS, SUBMISSION_SHAPE
from eoseg.formats.rle import rle_encode
from eoseg.geo.polygonize import pixel_area_m2
from eoseg.geo.products import read_heads, read_probabilities
from eoseg.geo.raster import no_grid_warning, open_raster, resize_array
from eoseg.post.postprocess import Postprocessor


def image_probabilities(heads_json: str | os.PathLike[str] | None, head: str, what: str) -> np.ndarray:
    """The scene mean of an image-level head from ``<name>.heads.json`` (written by ``eoseg predict``)."""
    if heads_json is None or not Path(heads_json).is_file():
        raise InputError(
            f"{what}: no {heads_json or '<name>.heads.json'} beside it; the gate (post.gate) needs the "
            f"image-level head {head!r}: predict with a model that has it, or unset post.gate"
        )
    heads = read_heads(heads_json)
    if head not in heads:
        raise ConfigError(f"post.gate.head={head!r}: {heads_json} has heads {sorted(heads)}; name one of them")
    return np.asarray(heads[head]["mean"], dtype=np.float64)


def submission_masks(
    prob: str | os.PathLike[str], heads_json: str | os.PathLike[str] | None, post: PostSpec
) -> np.ndarray:
    """uint8 ``(4, 350, 525)`` 0/1 masks of one image after the whole ``post`` section."""
    with no_grid_warning(), open_raster(prob) as src:
        probs = read_probabilities(src)
        transform = src.transform
    if probs.shape[0] != len(LABELS):
        raise InputError(
            f"{prob}: has {probs.shape[0]} band(s); a clouds model predicts {len(LABELS)} ({', '.join(LABELS)})"
        )
    heads = None
    if post.gate is not None:
        heads = {post.gate.head: {"mean": image_probabilities(heads_json, post.gate.head, str(prob)).tolist()}}
    processor = Postprocessor(post, "multilabel", len(LABELS))
    mask = (processor(probs, pixel_area_m2(transform, None), heads) == 1).astype(np.uint8)  # nodata: 0
    return resize_array(mask, SUBMISSION_SHAPE, "nearest")


def submission_rows(
    prob: str | os.PathLike[str], heads_json: str | os.PathLike[str] | None, post: PostSpec
) -> dict[str, str]:
    """``{label: rle}`` of one image for the submission CSV."""
    masks = submission_masks(prob, heads_json, post)
    return {label: rle_encode(masks[k]) for k, label in enumerate(LABELS)}

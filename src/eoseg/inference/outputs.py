"""What a scene prediction writes, and how blended values become raster bands.

- ``<name>.prob.tif``: the main dense head's probabilities, one band per channel (band descriptions = what
  the channel learns, :func:`~eoseg.tasks.kinds.channel_names`, as every head's raster); uint8 (p x 255, validity
  in an internal mask band, since every byte value is a probability) or float16 (IEEE half floats, read
  as float32 by GDAL < 3.11; nodata NaN).
- ``<name>.mask.tif``: uint8, made by :class:`eoseg.post.postprocess.Postprocessor` from the ``post``
  section (``p > threshold``; binary: one 0/1 band, multiclass: one class band, multilabel: one 0/1 band
  per channel; a footprint head's extra channels, e.g. boundary and contact, are not in it: its mask is
  the building mask that training validation scores), or the k-of-n vote of the models' masks; gate and
  minimum area are applied in a second pass over the written mask; nodata :data:`~eoseg.geo.products.IGNORE`.
- ``<name>.<head>.tif``: float32 values of every other dense head (all dense heads for regression),
  nodata NaN; band descriptions = what the head learns in each channel (e.g. building, boundary, contact).
Band descriptions have one rule, :func:`~eoseg.tasks.kinds.channel_names`: the probability raster's and
a multilabel mask's bands are named like every value head's.
All have the scene's CRS and transform; nodata pixels of the input are nodata in every output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eoseg.config.activation import main_head
from eoseg.config.schema import ExperimentConfig, HeadSpec, PostSpec, PredictSpec
from eoseg.errors import ConfigError
from eoseg.geo.cog import RasterSpec
from eoseg.geo.products import (
    decode_probabilities,
    encode_probabilities,
    mask_spec,
    probability_spec,
    stored_probabilities,
    value_spec,
)
from eoseg.inference.blend import BlendedTile
from eoseg.inference.reader import SceneImages
from eoseg.post.postprocess import Postprocessor
from eoseg.tasks.kinds import channel_names

Encoder = Callable[[BlendedTile], tuple[np.ndarray, np.ndarray | None]]


def member_key(head: str, index: int) -> str:
    """Accumulator name of one ensemble member's copy of the main head (for voting)."""
    return f"{head}@{index}"


@dataclass(frozen=True)
class OutputPlan:
    """Which heads go to which rasters, the post-processor of the mask, and voting settings."""

    main: str | None
    post: Postprocessor | None  # None: regression, no probability or mask raster
    channels: int
    vote: int | None
    members: int
    value_heads: tuple[str, ...]
    band_names: tuple[str, ...]  # the main head's channels (:func:`channel_names`): prob.tif's bands
    prob_dtype: str
    mask_classes: tuple[str, ...] = ()  # names of a class mask's values 0..K-1 (empty: the classes don't say)
    head_bands: dict[str, tuple[str, ...]] = field(default_factory=dict)  # each value head's channel names

    @property
    def accumulated(self) -> list[str]:
        """Names the blend accumulator holds: dense heads, plus per-member copies when voting."""
        names = list(self.value_heads)
        if self.main is not None and self.post is not None:
            names.insert(0, self.main)
        if self.vote is not None:
            names += [member_key(self.main, m) for m in range(self.members)]
        return names


def plan_outputs(
    heads: dict[str, HeadSpec],
    config: ExperimentConfig,
    spec: PredictSpec,
    post: PostSpec,
    members: int,
) -> OutputPlan:
    """Decide the output rasters from the heads the models share, the (first) model's config (task, classes,
    what each channel learns: band descriptions) and the predict/post config."""
    task, classes = config.task, list(config.data.classes)
    main = main_head(heads)
    dense = [n for n, h in heads.items() if h.kind == "dense"]
    if task.kind == "regression" or main is None:
        if spec.vote is not None:
            raise ConfigError(
                "predict.vote: voting needs a segmentation head; unset it for regression models"
            )
        return OutputPlan(main, None, 0, None, members, tuple(dense), (), spec.prob_dtype,
                          head_bands=_bands(config, dense))
    head = heads[main]
    processor = Postprocessor.for_head(post, head, task)
    if post.gate is not None:
        gate = heads.get(post.gate.head)
        if gate is None or gate.kind != "image_class":
            known = ", ".join(n for n, h in heads.items() if h.kind == "image_class") or "none"
            raise ConfigError(
                f"post.gate.head={post.gate.head!r}: the model has no such image-level class head "
                f"(image_class heads: {known}); unset post.gate or name one"
            )
    if spec.vote is not None:
        if processor.kind == "multiclass":
            raise ConfigError(
                f"predict.vote: k-of-n voting needs binary or multilabel masks, head {main!r} is "
                "multiclass; unset predict.vote"
            )
        if not 1 <= spec.vote <= members:
            raise ConfigError(
                f"predict.vote={spec.vote}: must be between 1 and the number of checkpoints ({members})"
            )
    names = tuple(channel_names(config, main))
    # a class mask's values 0..K-1 are the model's classes when it has one per value (binary: 0/1)
    values = 2 if processor.kind == "binary" else head.channels
    mask_classes = tuple(classes) if processor.kind != "multilabel" and len(classes) == values else ()
    others = tuple(n for n in dense if n != main)
    return OutputPlan(main, processor, head.channels, spec.vote, members, others, names, spec.prob_dtype,
                      mask_classes, _bands(config, others))


def _bands(config: ExperimentConfig, heads: Sequence[str]) -> dict[str, tuple[str, ...]]:
    return {h: tuple(channel_names(config, h)) for h in heads}


@dataclass(frozen=True)
class OutputRaster:
    """One raster to write: where, its grid and encoding, and how a blended tile becomes its block."""

    kind: str  # prob, mask, or a head name
    path: Path
    spec: RasterSpec
    encode: Encoder


def scene_rasters(plan: OutputPlan, scene: SceneImages, out_dir: Path, name: str) -> list[OutputRaster]:
    """The output rasters of one scene, on the scene's grid, with the plan's band descriptions."""
    ref = scene.reference
    outputs = []
    if plan.post is not None:
        prob = probability_spec(ref, plan.band_names, plan.prob_dtype, plan.mask_classes, plan.post.kind,
                                plan.post.extra)
        encoded = _EncodedProbabilities(plan)
        outputs.append(OutputRaster("prob", out_dir / f"{name}.prob.tif", prob, encoded))
        bands = plan.band_names[: plan.post.mask_channels] if plan.post.kind == "multilabel" else ("class",)
        mask = mask_spec(ref, bands, plan.mask_classes)
        outputs.append(OutputRaster("mask", out_dir / f"{name}.mask.tif", mask, _mask_encoder(plan, encoded)))
    for head in plan.value_heads:
        spec = value_spec(ref, plan.head_bands[head])
        outputs.append(OutputRaster(head, out_dir / f"{name}.{head}.tif", spec, _value_encoder(head)))
    return outputs


class _EncodedProbabilities:
    """The probability raster's encoder: the main head's probabilities of a tile as stored (uint8 or
    float16), kept for the last tile so that the mask encoder thresholds those bytes instead of quantising
    the same floats again (the writer thread encodes every raster of one tile before the next tile)."""

    def __init__(self, plan: OutputPlan) -> None:
        self.plan = plan
        self._tile: BlendedTile | None = None
        self._encoded: tuple[np.ndarray, np.ndarray | None] = (np.empty(0), None)

    def __call__(self, tile: BlendedTile) -> tuple[np.ndarray, np.ndarray | None]:
        if tile is not self._tile:
            self._encoded = encode_probabilities(tile.values[self.plan.main], tile.valid, self.plan.prob_dtype)
            self._tile = tile
        return self._encoded


def _mask_encoder(plan: OutputPlan, encoded: _EncodedProbabilities) -> Encoder:
    """Thresholds (or the k-of-n vote) by the plan's :class:`Postprocessor` of what the probability raster
    holds (``encoded``'s bytes, decoded); gate and min-area come after."""
    post = plan.post

    def encode(tile: BlendedTile) -> tuple[np.ndarray, np.ndarray | None]:
        if plan.vote is not None:
            members = [stored_probabilities(tile.values[member_key(plan.main, m)], plan.prob_dtype)
                       for m in range(plan.members)]
            return post.vote(members, plan.vote, tile.valid), None
        data, valid = encoded(tile)  # uint8: valid excludes NaN; float16: NaN where invalid
        return post.mask(decode_probabilities(data), tile.valid if valid is None else valid), None

    return encode


def _value_encoder(head: str) -> Encoder:
    def encode(tile: BlendedTile) -> tuple[np.ndarray, np.ndarray | None]:
        return tile.values[head], None

    return encode

"""What a scene prediction writes, and how blended values become raster bands.

- ``<name>.prob.tif``: the main dense head's probabilities, one band per channel; uint8 (p x 255, validity
  in an internal mask band, since every byte value is a probability) or float16 (IEEE half floats, read
  as float32 by GDAL < 3.11; nodata NaN).
- ``<name>.mask.tif``: uint8; per-channel ``p >= threshold`` (0/1, one band per channel) for sigmoid heads,
  the argmax class index for softmax heads, or the k-of-n vote of the models' masks; nodata 255.
- ``<name>.<head>.tif``: float32 values of every other dense head (all dense heads for regression),
  nodata NaN.
All have the scene's CRS and transform; nodata pixels of the input are nodata in every output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from eoseg.config.activation import activation_of
from eoseg.config.schema import HeadSpec, PostSpec, PredictSpec, TaskSpec
from eoseg.errors import ConfigError
from eoseg.geo.cog import RasterSpec
from eoseg.geo.products import encode_mask, encode_probabilities, mask_spec, probability_spec, value_spec
from eoseg.inference.blend import BlendedBand
from eoseg.inference.reader import SceneImages

MaskMode = Literal["threshold", "argmax"]
Encoder = Callable[[BlendedBand], tuple[np.ndarray, np.ndarray | None]]


def main_head(heads: dict[str, HeadSpec]) -> str | None:
    """The head whose probabilities and mask are written: ``mask`` if dense, else the first dense head."""
    if "mask" in heads and heads["mask"].kind == "dense":
        return "mask"
    return next((name for name, head in heads.items() if head.kind == "dense"), None)


def mask_mode(head: HeadSpec, task: TaskSpec) -> MaskMode:
    """Argmax over channels for softmax heads, else a threshold per channel (sigmoid, multilabel)."""
    return "argmax" if activation_of(head, task) == "softmax" else "threshold"


def member_key(head: str, index: int) -> str:
    """Accumulator name of one ensemble member's copy of the main head (for voting)."""
    return f"{head}@{index}"


@dataclass(frozen=True)
class OutputPlan:
    """Which heads go to which rasters, with thresholds and voting settings."""

    main: str | None
    mode: MaskMode | None  # None: regression, no probability or mask raster
    channels: int
    thresholds: np.ndarray  # (channels,)
    vote: int | None
    members: int
    value_heads: tuple[str, ...]
    band_names: tuple[str, ...]
    prob_dtype: str

    @property
    def accumulated(self) -> list[str]:
        """Names the blend accumulator holds: dense heads, plus per-member copies when voting."""
        names = list(self.value_heads)
        if self.main is not None and self.mode is not None:
            names.insert(0, self.main)
        if self.vote is not None:
            names += [member_key(self.main, m) for m in range(self.members)]
        return names


def plan_outputs(
    heads: dict[str, HeadSpec],
    task: TaskSpec,
    classes: list[str],
    spec: PredictSpec,
    post: PostSpec,
    members: int,
) -> OutputPlan:
    """Decide the output rasters from the heads the models share, the task and the predict/post config."""
    main = main_head(heads)
    dense = [n for n, h in heads.items() if h.kind == "dense"]
    if task.kind == "regression" or main is None:
        if spec.vote is not None:
            raise ConfigError(
                "predict.vote: voting needs a segmentation head; unset it for regression models"
            )
        return OutputPlan(main, None, 0, np.zeros(0), None, members, tuple(dense), (), spec.prob_dtype)
    head = heads[main]
    mode = mask_mode(head, task)
    thresholds = np.asarray(
        post.threshold if isinstance(post.threshold, list) else [post.threshold] * head.channels,
        dtype=np.float32,
    )
    if thresholds.size != head.channels:
        raise ConfigError(
            f"post.threshold: gives {thresholds.size} values but head {main!r} "
            f"has {head.channels} channel(s); "
            "give one value or one per channel"
        )
    if spec.vote is not None:
        if mode != "threshold":
            raise ConfigError(
                f"predict.vote: k-of-n voting needs binary or multilabel masks, head {main!r} is "
                "multiclass (argmax); unset predict.vote"
            )
        if not 1 <= spec.vote <= members:
            raise ConfigError(
                f"predict.vote={spec.vote}: must be between 1 and the number of checkpoints ({members})"
            )
    if head.channels == len(classes):
        names = tuple(classes)
    elif head.channels == 1 and len(classes) == 2:
        names = (classes[1],)
    else:
        names = tuple(f"{main}_{i}" for i in range(head.channels))
    others = tuple(n for n in dense if n != main)
    return OutputPlan(
        main, mode, head.channels, thresholds, spec.vote, members, others, names, spec.prob_dtype
    )


@dataclass(frozen=True)
class OutputRaster:
    """One raster to write: where, its grid and encoding, and how a blended band becomes its rows."""

    kind: str  # prob, mask, or a head name
    path: Path
    spec: RasterSpec
    encode: Encoder


def scene_rasters(
    plan: OutputPlan, scene: SceneImages, out_dir: Path, name: str, head_channels: dict[str, int]
) -> list[OutputRaster]:
    """The output rasters of one scene, on the scene's grid."""
    ref = scene.reference
    outputs = []
    if plan.mode is not None:
        prob = probability_spec(ref, plan.band_names, plan.prob_dtype)
        outputs.append(OutputRaster("prob", out_dir / f"{name}.prob.tif", prob, _prob_encoder(plan)))
        bands = ("class",) if plan.mode == "argmax" else plan.band_names
        outputs.append(OutputRaster("mask", out_dir / f"{name}.mask.tif", mask_spec(ref, bands), _mask_encoder(plan)))
    for head in plan.value_heads:
        spec = value_spec(ref, [f"{head}_{i}" if head_channels[head] > 1 else head
                                for i in range(head_channels[head])])
        outputs.append(OutputRaster(head, out_dir / f"{name}.{head}.tif", spec, _value_encoder(head)))
    return outputs


def _prob_encoder(plan: OutputPlan) -> Encoder:
    def encode(band: BlendedBand) -> tuple[np.ndarray, np.ndarray | None]:
        return encode_probabilities(band.values[plan.main], band.valid, plan.prob_dtype)

    return encode


def _mask_encoder(plan: OutputPlan) -> Encoder:
    thresholds = plan.thresholds[:, None, None]

    def encode(band: BlendedBand) -> tuple[np.ndarray, np.ndarray | None]:
        if plan.vote is not None:
            votes = sum(
                (band.values[member_key(plan.main, m)] >= thresholds).astype(np.uint8)
                for m in range(plan.members)
            )
            mask = (votes >= plan.vote).astype(np.uint8)
        elif plan.mode == "argmax":
            mask = np.argmax(np.nan_to_num(band.values[plan.main], nan=-np.inf), axis=0)[None].astype(
                np.uint8
            )
        else:
            mask = (band.values[plan.main] >= thresholds).astype(np.uint8)
        return encode_mask(mask, band.valid), None

    return encode


def _value_encoder(head: str) -> Encoder:
    def encode(band: BlendedBand) -> tuple[np.ndarray, np.ndarray | None]:
        return band.values[head], None

    return encode

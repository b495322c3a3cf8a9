"""Augmentation from config (``data.augment``) with albumentations, identical for every array of a sample.

The model inputs, the validity mask and every target chip go through one ``albumentations.Compose``
(targets as ``additional_targets`` of type mask, so geometry moves them with nearest-neighbour sampling
and colour transforms leave them alone). Pixels moved in from outside the chip are invalid.

Colour transforms (albumentations' ``ImageOnlyTransform``: RandomBrightnessContrast, HueSaturationValue,
RGBShift, ...) take float images to lie in [0, 1] and clip their result to it; the chips are normalised
(mean 0, std 1) when they reach the pipeline, so a pipeline with a colour transform sees the image mapped
linearly onto [0, 1] by one range for every channel (the lowest ``min`` to the highest ``max`` of the
prepared statistics: raw / 255 for uint8 RGB up to the training extremes, so hues stay as they are) and
mapped back after it (:class:`UnitRange`). Geometry-only pipelines get the normalised values untouched.

Randomness: every sample gets one NumPy generator and one Python ``random.Random`` made from its key (for
training, the run seed, the epoch and the sample index; :func:`sample_random_state`), shared by all
transforms of the pipeline, so each transform draws its own numbers from one stream: the draws are
independent between transforms and between samples, and the same key gives the same result in any
process. (``Compose.set_random_seed`` would give every transform the *same* seed: with albumentations
2.x HorizontalFlip, VerticalFlip and RandomRotate90 then fire together or not at all, and the chips are
rotated but never mirrored.)

Direction fields (targets with two bands holding a vector (x, y) per pixel, x along columns and y along
rows, as the geopose recipe's flow (sin θ, cos θ)) are rewritten with the geometry: three keypoints (an
origin and the two unit steps) go through the same transform, and the linear map they span is applied
to the vectors. This gives the rules of the geopose recipe (horizontal flip (x, y) -> (-x, y), vertical
flip -> (x, -y), rot90 -> (y, -x), transpose -> (y, x)) and also handles rotations and scaling.

Pixel size (``data.geometry``, :class:`GeometrySpec`): the same linear map gives each sample's zoom
``s = sqrt(|det|)`` (2 when objects come out twice as large: ``Affine(scale=2)``, or a crop of half the
side resized back). Targets measured in pixels (``pixel_lengths``: the geopose flow magnitude, AGL ·
scale) are multiplied by ``s``; the ground sample distance input (``gsd_input``, metres per pixel, a
constant plane) is divided by ``s`` and never goes through the transforms, so colour transforms leave it
alone; heights in metres do not change. This is the physical rule the geopose seed's GeoRandomSizedCrop
applies (crop side c resized to S: ``gsd *= c/S``, flow scale ``*= S/c``); its GeoShiftScaleRotate
multiplies instead (``gsd *= scale``, ``vflow_scale /= scale``), which contradicts its crop, so eoseg
follows the crop's rule for every transform.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import albumentations as A
import numpy as np

from eoseg.config.schema import AugmentSpec, GeometrySpec
from eoseg.errors import ConfigError
from eoseg.registry import lookup

VALID = "valid"


def build_transform(spec: AugmentSpec, index: int) -> A.BasicTransform:
    """One albumentations transform from its config entry; unknown names and bad parameters are errors."""
    transforms = {n: c for n in dir(A) if isinstance(c := getattr(A, n), type) and issubclass(c, A.BasicTransform)}
    cls = lookup(transforms, spec.name, option=f"data.augment[{index}].name", what="albumentations transform",
                 valid="see albumentations' list of transforms")
    try:
        return cls(p=spec.p, **spec.params)
    except (TypeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"data.augment[{index}] ({spec.name}): invalid params {spec.params}: {first}") from exc


SeedKey = int | Sequence[int]
"""What a sample's augmentation is derived from: an int, or a sequence such as ``(seed, epoch, index)``."""


def sample_random_state(key: SeedKey) -> tuple[np.random.Generator, random.Random]:
    """A NumPy generator and a Python ``Random`` for one sample, both derived from ``key`` only."""
    entropy = [int(key)] if isinstance(key, int | np.integer) else [int(k) for k in key]
    numpy_seq, python_seq = np.random.SeedSequence(entropy).spawn(2)
    return np.random.default_rng(numpy_seq), random.Random(int(python_seq.generate_state(2, np.uint64)[0]))


@dataclass(frozen=True)
class UnitRange:
    """Where the training range ``[low, high]`` (raw units, one for all image channels) lies per normalised
    channel: ``unit = (x - low) / span`` maps it onto the [0, 1] that colour transforms assume."""

    low: np.ndarray  # (C,) normalised value of the raw low per channel
    span: np.ndarray  # (C,) normalised width of [low, high] per channel

    @classmethod
    def of(cls, channels: Sequence[Mapping[str, Any]]) -> UnitRange | None:
        """From the ``channels`` of stats.json (image channels only); None when a min or max is missing."""
        if not channels or any(c.get("min") is None or c.get("max") is None for c in channels):
            return None
        low, high = min(float(c["min"]) for c in channels), max(float(c["max"]) for c in channels)
        mean = np.array([float(c["mean"]) for c in channels], np.float32)
        std = np.array([float(c.get("std") or 0.0) for c in channels], np.float32)
        std = np.where(std > 0, std, np.float32(1.0))  # as normalisation divides
        span = np.float32(high - low if high > low else 1.0) / std
        return cls(((low - mean) / std).astype(np.float32), span.astype(np.float32))

    def to_unit(self, image: np.ndarray) -> np.ndarray:
        """``(H, W, C)`` normalised -> [0, 1] over the training range."""
        return ((image - self.low) / self.span).astype(np.float32)

    def from_unit(self, image: np.ndarray) -> np.ndarray:
        return (image * self.span + self.low).astype(np.float32)


@dataclass(frozen=True)
class GsdChannel:
    """The model input channel holding the ground sample distance, with its normalisation (stats.json)."""

    index: int
    mean: float
    std: float

    def metres(self, normalised: float) -> float:
        return normalised * self.std + self.mean

    def normalised(self, metres: float) -> float:
        return (metres - self.mean) / self.std


class Augment:
    """Random augmentation of ``(inputs (N,H,W), valid (H,W), {target: (bands,H,W)})``, reproducible by key.

    ``directions`` names the targets that are direction fields (rewritten with the geometry);
    ``lengths`` the targets measured in pixels (times the zoom) and ``gsd`` the input channel holding the
    ground sample distance (divided by the zoom), see the module docstring.
    """

    def __init__(
        self,
        specs: Sequence[AugmentSpec],
        targets: Sequence[str],
        directions: Sequence[str] = (),
        lengths: Sequence[str] = (),
        gsd: GsdChannel | None = None,
        unit: UnitRange | None = None,
    ) -> None:
        self.targets = list(targets)
        self.directions = [t for t in directions if t in self.targets]
        self.lengths = [t for t in lengths if t in self.targets]
        self.gsd = gsd
        transforms = [build_transform(spec, i) for i, spec in enumerate(specs)]
        moves = any(isinstance(t, A.DualTransform) for t in transforms)  # colour-only pipelines move nothing
        colour = any(isinstance(t, A.ImageOnlyTransform) for t in transforms)
        self.unit = unit if colour else None  # colour transforms see [0, 1] (module doc)
        self.geometry = moves and bool(self.directions or self.lengths or gsd is not None)
        extra = {VALID: "mask", **{self._key(t): "mask" for t in self.targets}}
        self.compose = A.Compose(
            transforms,
            additional_targets=extra,
            keypoint_params=A.KeypointParams(format="xy", remove_invisible=False) if self.geometry else None,
        )

    @classmethod
    def from_config(
        cls,
        specs: Sequence[AugmentSpec],
        targets: Sequence[str],
        directions: Sequence[str],
        geometry: GeometrySpec,
        stats: Mapping[str, Any],
    ) -> Augment | None:
        """The augmentation of a prepared dataset (``stats``: its stats.json), or None without transforms."""
        if not specs:
            return None
        gsd = None
        if geometry.gsd_input is not None:
            inputs = list(stats["inputs"])
            if geometry.gsd_input not in inputs:
                raise ConfigError(f"data.geometry.gsd_input={geometry.gsd_input!r}: not an input channel of the "
                                  f"prepared chips ({inputs}); re-run eoseg prepare with it in data.inputs")
            if len(inputs) == 1:
                raise ConfigError(f"data.geometry.gsd_input={geometry.gsd_input!r} is the only input channel; "
                                  "the model needs image channels besides it (data.inputs)")
            index = inputs.index(geometry.gsd_input)
            channel = stats["channels"][index]
            std = float(channel.get("std") or 0.0)
            gsd = GsdChannel(index, float(channel["mean"]), std if std > 0 else 1.0)  # as normalize divides
        channels = [c for i, c in enumerate(stats.get("channels", [])) if gsd is None or i != gsd.index]
        return cls(list(specs), list(targets), directions, geometry.pixel_lengths, gsd, UnitRange.of(channels))

    @staticmethod
    def _key(target: str) -> str:
        return f"target_{target}"

    def __call__(
        self, inputs: np.ndarray, valid: np.ndarray, targets: Mapping[str, np.ndarray], seed: SeedKey
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Augment one sample; the same ``seed`` (an int or a key such as ``(seed, epoch, index)``) gives the
        same result, and the transforms draw independently of each other."""
        self.compose.set_random_state(*sample_random_state(seed))
        height, width = valid.shape
        gsd_metres = None
        if self.gsd is not None:  # a constant plane: kept out of the transforms, rewritten after them
            plane = inputs[self.gsd.index]
            gsd_metres = self.gsd.metres(float(plane[valid].mean())) if valid.any() else None
            inputs = np.delete(inputs, self.gsd.index, axis=0)
        arrays = {self._key(t): np.moveaxis(targets[t], 0, -1) for t in self.targets}
        image_in = np.moveaxis(inputs, 0, -1)
        kwargs = {"image": self.unit.to_unit(image_in) if self.unit else image_in, VALID: valid.astype(np.uint8),
                  **arrays}
        if self.geometry:
            cx, cy = width / 2.0, height / 2.0
            # a 64-pixel step: the map survives float32 keypoints and rounding of crops and resizes
            kwargs["keypoints"] = np.array([[cx, cy], [cx + STEP, cy], [cx, cy + STEP]], dtype=np.float32)
        out = self.compose(**kwargs)
        result = {t: _channels_first(out[self._key(t)]) for t in self.targets}
        image = _channels_first(self.unit.from_unit(out["image"]) if self.unit else out["image"])
        factor = 1.0
        if self.geometry:
            linear = direction_map(np.asarray(out["keypoints"], dtype=np.float64))
            for t in self.directions:
                result[t] = rotate_field(result[t], linear)
            factor = zoom(linear)
            for t in self.lengths:
                result[t] = result[t] * np.float32(factor)
        if self.gsd is not None:
            value = self.gsd.normalised(gsd_metres / factor) if gsd_metres is not None else 0.0
            image = np.insert(image, self.gsd.index, np.float32(value), axis=0)
        return image, out[VALID].astype(bool), result


def _channels_first(array: np.ndarray) -> np.ndarray:
    """``(H, W, C)`` or ``(H, W)`` -> contiguous float32 ``(C, H, W)``."""
    array = array[..., None] if array.ndim == 2 else array
    return np.ascontiguousarray(np.moveaxis(array, -1, 0), dtype=np.float32)


STEP = 64.0
"""Length in pixels of the two steps from the chip centre whose images give an augmentation's linear map."""


def direction_map(keypoints: np.ndarray, step: float = STEP) -> np.ndarray:
    """The 2x2 linear map of an augmentation, from the images of an origin and its two steps of ``step`` px."""
    origin, step_x, step_y = keypoints[:3, :2]
    return np.stack([step_x - origin, step_y - origin], axis=1) / step


def zoom(linear: np.ndarray) -> float:
    """How much larger a linear map makes things: ``sqrt(|det|)`` (2 for a 2x zoom, 1 for rotations and flips)."""
    return math.sqrt(abs(float(np.linalg.det(linear))))


def rotate_field(field: np.ndarray, linear: np.ndarray) -> np.ndarray:
    """Apply ``linear`` to a vector field ``(2, H, W)`` (x, y components), keeping NaN as NaN."""
    x, y = field[0], field[1]
    return np.stack([linear[0, 0] * x + linear[0, 1] * y, linear[1, 0] * x + linear[1, 1] * y]).astype(np.float32)

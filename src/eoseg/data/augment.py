"""Augmentation from config (``data.augment``) with albumentations, identical for every array of a sample.

The model inputs, the validity mask and every target chip go through one ``albumentations.Compose``
(targets as ``additional_targets`` of type mask, so geometry moves them with nearest-neighbour sampling
and colour transforms leave them alone). Pixels moved in from outside the chip are invalid.

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
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import albumentations as A
import numpy as np

from eoseg.config.schema import AugmentSpec
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


class Augment:
    """Random augmentation of ``(inputs (N,H,W), valid (H,W), {target: (bands,H,W)})``, reproducible by key.

    ``directions`` names the targets that are direction fields (rewritten with the geometry).
    """

    def __init__(self, specs: Sequence[AugmentSpec], targets: Sequence[str], directions: Sequence[str] = ()) -> None:
        self.targets = list(targets)
        self.directions = [t for t in directions if t in self.targets]
        extra = {VALID: "mask", **{self._key(t): "mask" for t in self.targets}}
        self.compose = A.Compose(
            [build_transform(spec, i) for i, spec in enumerate(specs)],
            additional_targets=extra,
            keypoint_params=A.KeypointParams(format="xy", remove_invisible=False) if self.directions else None,
        )

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
        arrays = {self._key(t): np.moveaxis(targets[t], 0, -1) for t in self.targets}
        kwargs = {"image": np.moveaxis(inputs, 0, -1), VALID: valid.astype(np.uint8), **arrays}
        if self.directions:
            cx, cy = width / 2.0, height / 2.0
            kwargs["keypoints"] = np.array([[cx, cy], [cx + 1.0, cy], [cx, cy + 1.0]], dtype=np.float32)
        out = self.compose(**kwargs)
        result = {t: _channels_first(out[self._key(t)]) for t in self.targets}
        if self.directions:
            linear = direction_map(np.asarray(out["keypoints"], dtype=np.float64))
            for t in self.directions:
                result[t] = rotate_field(result[t], linear)
        return _channels_first(out["image"]), out[VALID].astype(bool), result


def _channels_first(array: np.ndarray) -> np.ndarray:
    """``(H, W, C)`` or ``(H, W)`` -> contiguous float32 ``(C, H, W)``."""
    array = array[..., None] if array.ndim == 2 else array
    return np.ascontiguousarray(np.moveaxis(array, -1, 0), dtype=np.float32)


def direction_map(keypoints: np.ndarray) -> np.ndarray:
    """The 2x2 linear map of an augmentation, from the images of an origin and its two unit steps."""
    origin, step_x, step_y = keypoints[:3, :2]
    return np.stack([step_x - origin, step_y - origin], axis=1)


def rotate_field(field: np.ndarray, linear: np.ndarray) -> np.ndarray:
    """Apply ``linear`` to a vector field ``(2, H, W)`` (x, y components), keeping NaN as NaN."""
    x, y = field[0], field[1]
    return np.stack([linear[0, 0] * x + linear[0, 1] * y, linear[1, 0] * x + linear[1, 1] * y]).astype(np.float32)

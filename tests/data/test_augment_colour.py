"""Colour transforms on normalised chips: they act on the training range mapped onto [0, 1], not on clipped values.

Hand-computed expectations: three channels of raw uint8 values normalised with mean 100, std 50 (red),
mean 110, std 40 (green), mean 90, std 60 (blue), training range 0..255 (stats min/max).
"""

from __future__ import annotations

import numpy as np
import pytest

from eoseg.config.schema import AugmentSpec, GeometrySpec
from eoseg.data.augment import Augment

MEAN, STD = np.array([100.0, 110.0, 90.0], np.float32), np.array([50.0, 40.0, 60.0], np.float32)
STATS = {"inputs": ["red", "green", "blue"],
         "channels": [{"mean": float(m), "std": float(s), "min": 0.0 if i else 3.0, "max": 255.0 if i != 1 else 250.0}
                      for i, (m, s) in enumerate(zip(MEAN, STD, strict=True))]}


def _normalised(raw: np.ndarray) -> np.ndarray:
    return ((raw - MEAN[:, None, None]) / STD[:, None, None]).astype(np.float32)


def _augment(*specs: AugmentSpec, stats=STATS) -> tuple[Augment, np.ndarray, np.ndarray]:
    raw = np.zeros((3, 4, 4), np.float32)
    raw[:, :2], raw[:, 2:] = 20.0, 200.0  # dark pixels lie below every mean: negative when normalised
    augment = Augment.from_config(list(specs), ["mask"], [], GeometrySpec(), stats)
    targets = {"mask": np.zeros((1, 4, 4), np.float32)}
    image, _, _ = augment(_normalised(raw), np.ones((4, 4), bool), targets, seed=(0, 1, 2))
    return augment, raw, image


def test_brightness_shifts_the_raw_values_by_a_share_of_the_training_range() -> None:
    # brightness +0.1 on [0, 1] over the range 0..255 of every channel: raw + 25.5, dark pixels stay negative
    _, raw, image = _augment(AugmentSpec(name="RandomBrightnessContrast", p=1.0,
                                         params={"brightness_limit": [0.1, 0.1], "contrast_limit": [0.0, 0.0]}))
    assert image == pytest.approx(_normalised(raw + 25.5), abs=1e-4)
    assert image[0, 0, 0] == pytest.approx((45.5 - 100) / 50, abs=1e-4)  # -1.09: not clipped to 0
    # the top of the range clips where the raw values would leave it: 200 + 100 -> 255
    _, _, image = _augment(AugmentSpec(name="RandomBrightnessContrast", p=1.0,
                                       params={"brightness_limit": [0.4, 0.4], "contrast_limit": [0.0, 0.0]}))
    assert image[:, 3, 3] == pytest.approx(_normalised(np.full((3, 1, 1), 255.0, np.float32))[:, 0, 0], abs=1e-4)


def test_channel_shuffle_moves_raw_values_between_channels() -> None:
    _, raw, image = _augment(AugmentSpec(name="ChannelShuffle", p=1.0))
    back = image * STD[:, None, None] + MEAN[:, None, None]  # the raw values each channel now holds
    assert sorted(back[:, 0, 0].round(3)) == pytest.approx([20.0] * 3) and back[:, 3, 3] == pytest.approx([200.0] * 3)


def test_geometry_only_pipelines_and_stats_without_a_range_keep_the_normalised_values() -> None:
    augment, raw, image = _augment(AugmentSpec(name="HorizontalFlip", p=1.0))
    assert augment.unit is None and np.array_equal(image, _normalised(raw)[:, :, ::-1])
    bare = {"inputs": STATS["inputs"], "channels": [{"mean": c["mean"], "std": c["std"]} for c in STATS["channels"]]}
    augment, _, _ = _augment(AugmentSpec(name="ChannelShuffle", p=1.0), stats=bare)
    assert augment.unit is None  # old stats: no min/max, the transform gets the normalised chip as before

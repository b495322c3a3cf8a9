"""Thresholds per class, minimum-area removal and image-level gating."""

from __future__ import annotations

import numpy as np
import pytest

from eoseg.config.schema import GateSpec, PostSpec
from eoseg.errors import ConfigError
from eoseg.post.threshold import apply_thresholds, gate, postprocess, remove_small


def test_binary_threshold_is_strictly_above():
    prob = np.array([[[0.2, 0.5, 0.51]]])
    assert apply_thresholds(prob, 0.5, "binary").tolist() == [[0, 0, 1]]


def test_multiclass_argmax_falls_back_to_background_below_its_class_threshold():
    prob = np.array(
        [
            [[0.1, 0.2, 0.5]],  # background
            [[0.6, 0.1, 0.1]],  # class 1
            [[0.3, 0.7, 0.4]],  # class 2
        ]
    )
    mask = apply_thresholds(prob, [0.0, 0.5, 0.8], "multiclass")
    assert mask.tolist() == [[1, 0, 0]]  # class 2 wins pixel 1 but 0.7 <= 0.8


def test_multilabel_channels_overlap():
    prob = np.array([[[0.6, 0.2]], [[0.6, 0.9]]])
    assert apply_thresholds(prob, [0.5, 0.7], "multilabel").tolist() == [[[1, 0]], [[0, 1]]]


def test_wrong_number_of_thresholds_names_the_option():
    with pytest.raises(ConfigError, match=r"post\.threshold: has 3 values but the probability raster has 2"):
        apply_thresholds(np.zeros((2, 1, 1)), [0.1, 0.2, 0.3], "multilabel")


def test_remove_small_uses_four_connectivity_and_keeps_large_objects():
    mask = np.zeros((6, 6), np.uint8)
    mask[0:3, 0:3] = 1  # 9 px
    mask[4, 4] = mask[5, 5] = 1  # two diagonal single pixels: two objects of 1 px
    mask[4:6, 0:2] = 2  # 4 px of class 2
    out = remove_small(mask, [0, 2, 5], "multiclass")
    assert out[0:3, 0:3].all() and out[4, 4] == 0 and out[5, 5] == 0
    assert (out[4:6, 0:2] == 0).all()  # class 2 limit is 5 px


def test_gate_empties_classes_the_image_classifier_rejects():
    masks = np.ones((2, 2, 2), np.uint8)
    gated = gate(masks, image_prob=[0.3, 0.8], threshold=[0.3, 0.5], kind="multilabel")
    assert gated[0].sum() == 0 and gated[1].sum() == 4  # 0.3 <= 0.3 -> empty


def test_postprocess_converts_min_area_from_square_metres():
    prob = np.zeros((1, 8, 8))
    prob[0, :3, :3] = 0.9  # 9 px = 2.25 m² at 0.25 m² per pixel
    prob[0, 6:, 6:] = 0.9  # 4 px = 1 m²
    post = PostSpec(threshold=0.5, min_area=2.0)
    mask = postprocess(prob, post, "binary", pixel_area_m2=0.25)
    assert mask.sum() == 9
    gated = postprocess(prob, PostSpec(gate=GateSpec(threshold=0.5)), "binary", 0.25, image_prob=[0.4])
    assert gated.sum() == 0

"""Pixel metrics against hand-computed counts, with ignore and nodata pixels left out."""

from __future__ import annotations

import numpy as np
import pytest

from eoseg.metrics.pixel import PixelMetrics


def test_binary_counts_with_ignore_and_nodata():
    truth = np.array([[1, 1, 0, 0, 255], [1, 0, 0, 1, 1]])
    pred = np.array([[1, 0, 1, 0, 1], [1, 0, 255, 1, 1]])
    valid = np.ones_like(truth, bool)
    valid[1, 4] = False  # nodata in the image
    metrics = PixelMetrics(["background", "building"])
    metrics.update(pred, truth, valid)
    result = metrics.compute()
    # counted pixels: all but (0,4) ignore, (1,2) pred nodata, (1,4) invalid -> 7
    # building: TP = (0,0),(1,0),(1,3) = 3; FP = (0,2) = 1; FN = (0,1) = 1
    building = result["per_class"]["building"]
    assert (building["tp"], building["fp"], building["fn"]) == (3, 1, 1)
    assert building["iou"] == pytest.approx(3 / 5)
    assert building["precision"] == pytest.approx(3 / 4) and building["recall"] == pytest.approx(3 / 4)
    assert building["f1"] == pytest.approx(0.75) and building["dice"] == pytest.approx(0.75)
    assert result["micro"]["iou"] == pytest.approx(3 / 5)  # micro over foreground = building
    background = result["per_class"]["background"]
    assert (background["tp"], background["fp"], background["fn"]) == (2, 1, 1)
    assert result["pixels"] == 7


def test_micro_pools_counts_over_scenes_not_scores():
    metrics = PixelMetrics(["background", "building"])
    metrics.update(np.array([1, 1, 1, 1]), np.array([1, 1, 1, 1]))  # IoU 1 on 4 px
    metrics.update(np.array([1, 0]), np.array([0, 1]))  # IoU 0 on 2 px
    assert metrics.compute()["micro"]["iou"] == pytest.approx(4 / 6)  # not the mean 0.5


def test_multiclass_micro_and_macro_over_foreground_classes():
    truth = np.array([0, 1, 1, 2, 2, 2])
    pred = np.array([0, 1, 2, 2, 2, 0])
    metrics = PixelMetrics(["bg", "a", "b"])
    metrics.update(pred, truth)
    result = metrics.compute()
    # a: TP1 FP0 FN1 -> IoU 1/2; b: TP2 FP1 FN1 -> IoU 2/4; micro: TP3 FP1 FN2 -> 3/6
    assert result["per_class"]["a"]["iou"] == pytest.approx(0.5)
    assert result["per_class"]["b"]["iou"] == pytest.approx(0.5)
    assert result["micro"]["iou"] == pytest.approx(0.5)
    assert result["micro"]["f1"] == pytest.approx(6 / 9)


def test_multilabel_scores_each_channel_as_its_own_binary_problem():
    truth = np.array([[[1, 1, 0]], [[0, 1, 1]]])
    pred = np.array([[[1, 0, 0]], [[1, 1, 1]]])
    metrics = PixelMetrics(["fish", "sugar"], kind="multilabel")
    metrics.update(pred, truth)
    result = metrics.compute()
    assert result["per_class"]["fish"]["iou"] == pytest.approx(1 / 2)
    assert result["per_class"]["sugar"]["iou"] == pytest.approx(2 / 3)
    assert result["micro"]["iou"] == pytest.approx(3 / 5)


def test_grow_adds_classes_found_later():
    metrics = PixelMetrics(["background", "foreground"])
    metrics.grow(4)
    metrics.update(np.array([3, 3]), np.array([3, 2]))
    per_class = metrics.compute()["per_class"]
    assert list(per_class) == ["background", "foreground", "class_2", "class_3"]
    assert per_class["class_3"]["tp"] == 1 and per_class["class_2"]["fn"] == 1

"""Threshold and minimum-area search on a synthetic validation set with a known best answer."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from affine import Affine

from eoseg.config.schema import PostSpec
from eoseg.errors import ConfigError
from eoseg.geo.raster import write_geotiff
from eoseg.post.search import search_gate_thresholds, search_thresholds, write_overlay

UTM = "EPSG:32616"
TRANSFORM = Affine(0.5, 0, 740000.0, 0, -0.5, 3740000.0)  # 0.25 m² per pixel


def scene(tmp_path, name: str):
    """Truth: two 5x5 buildings. Probabilities: 0.6 on buildings, 0.45 noise patch, 0.9 specks of 2 px."""
    truth = np.zeros((20, 20), np.uint8)
    truth[2:7, 2:7] = 1
    truth[10:15, 10:15] = 1
    prob = np.full((20, 20), 0.1, np.float32)
    prob[truth == 1] = 0.6
    prob[17:19, 2:6] = 0.45  # noise: on for thresholds below 0.45
    prob[0, 15:17] = 0.9  # 2-pixel specks (0.5 m²): removed by a minimum area above 0.5 m²
    prob[19, 18:20] = 0.9
    truth[0, 0] = 255  # ignored pixel
    return (
        write_geotiff(tmp_path / f"{name}.prob.tif", prob[None], UTM, TRANSFORM, None),
        write_geotiff(tmp_path / f"{name}.truth.tif", truth[None], UTM, TRANSFORM, None),
    )


@pytest.mark.parametrize("metric", ["iou", "f1", "mean_dice"])
def test_search_finds_the_known_best_threshold_and_min_area(tmp_path, metric):
    pairs = [scene(tmp_path, "a"), scene(tmp_path, "b")]
    probs, truths = zip(*pairs, strict=True)
    [choice] = search_thresholds(
        probs, truths, metric=metric, thresholds=[0.3, 0.4, 0.5, 0.7], min_areas=[0.0, 0.75, 10.0]
    )
    assert (choice.threshold, choice.min_area) == (0.5, 0.75)
    assert choice.score == pytest.approx(1.0)
    expected_default = {"iou": 50 / 54, "f1": 100 / 104, "mean_dice": 100 / 104}[metric]  # 4 speck FPs / scene
    assert choice.default_score == pytest.approx(expected_default)


def test_overlay_is_a_valid_post_section(tmp_path):
    probs, truths = zip(scene(tmp_path, "a"), strict=True)
    choices = search_thresholds(probs, truths, thresholds=[0.5, 0.7], min_areas=[0.0, 0.75])
    path = write_overlay(tmp_path / "post.yaml", choices, channels=1, metric="iou")
    overlay = yaml.safe_load(path.read_text())
    post = PostSpec(**overlay["post"])
    assert post.threshold == 0.5 and post.min_area == 0.75  # binary: one value, for the foreground


def test_unknown_metric_is_refused(tmp_path):
    probs, truths = zip(scene(tmp_path, "a"), strict=True)
    with pytest.raises(ConfigError, match=r"post\.metric: unknown metric 'auc'"):
        search_thresholds(probs, truths, metric="auc")


def test_gate_search_empties_classes_the_classifier_doubts():
    # class 0: images 0,1 have clouds (prob 0.8, 0.6), image 2 has none but the mask has a false blob (prob 0.3)
    truth = [np.ones((1, 2, 2)), np.ones((1, 2, 2)), np.zeros((1, 2, 2))]
    pred = [np.ones((1, 2, 2)), np.ones((1, 2, 2)), np.ones((1, 2, 2))]
    probs = np.array([[0.8], [0.6], [0.3]])
    best, score = search_gate_thresholds(probs, pred, truth, candidates=[0.0, 0.2, 0.4, 0.7])
    assert best.tolist() == [0.4] and score.tolist() == [1.0]  # 0.2 keeps the blob, 0.7 drops image 1

"""Competition scores on tiny arrays against hand-computed values: xView2, geopose R², clouds Dice."""

from __future__ import annotations

import numpy as np
import pytest

from eoseg.metrics.clouds import dice_empty_one, mean_dice
from eoseg.metrics.geopose import GeoposeR2, flow_vectors
from eoseg.metrics.xview2 import XView2Score


def test_xview2_score_by_hand():
    score = XView2Score()
    damage_truth = np.array([[1, 2, 0, 0], [3, 4, 0, 0]])
    score.update(
        loc_pred=np.array([[1, 1, 1, 0], [1, 0, 0, 0]]),
        damage_pred=np.array([[1, 2, 3, 0], [4, 4, 0, 0]]),  # (1,1) says 4 but no building predicted: 0
        loc_truth=(damage_truth > 0).astype(np.uint8),
        damage_truth=damage_truth,
    )
    damage_truth = np.array([[3, 3, 4, 4]])
    score.update(np.ones((1, 4)), np.array([[3, 4, 4, 4]]), damage_truth > 0, damage_truth)
    result = score.compute()
    # localisation: TP 7, FP 1, FN 1 -> 0.875
    # damage F1: no 1, minor 1, major (TP1 FN2) 0.5, destroyed (TP2 FP2 FN1) 4/7
    assert result["localization_f1"] == pytest.approx(0.875)
    assert result["damage_f1_major_damage"] == pytest.approx(0.5)
    assert result["damage_f1_destroyed"] == pytest.approx(4 / 7)
    assert result["damage_f1"] == pytest.approx(4 / (1 + 1 + 2 + 7 / 4), rel=1e-5)
    assert result["score"] == pytest.approx(0.3 * 0.875 + 0.7 * 4 / 5.75, rel=1e-5)


def test_xview2_class_never_predicted_drives_the_harmonic_mean_to_zero():
    score = XView2Score()
    truth = np.array([[1, 2, 3, 4]])
    score.update(np.ones((1, 4)), np.array([[1, 2, 3, 3]]), truth > 0, truth)
    assert score.compute()["damage_f1"] < 1e-5


def test_geopose_r2_per_city_and_missing_city_scores_zero():
    r2 = GeoposeR2()
    agl_truth = np.array([[1.0, 2.0], [3.0, np.nan]])
    flow_truth = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    r2.update("JAX", np.array([[1.0, 2.0], [4.0, 5.0]]), agl_truth, flow_truth.copy(), flow_truth)
    r2.mark_missing("OMA")
    result = r2.compute()
    # AGL: SSE 1, Σ(y-ȳ)² = 2 -> R² 0.5; flow perfect -> 1; city 0.75; OMA 0; final 0.375
    assert result["cities"]["JAX"]["r2_agl"] == pytest.approx(0.5, abs=1e-4)
    assert result["cities"]["JAX"]["r2_vflow"] == pytest.approx(1.0)
    assert result["cities"]["OMA"]["score"] == 0.0
    assert result["score"] == pytest.approx(0.375, abs=1e-4)


def test_geopose_nodata_prediction_counts_in_truth_variance_but_adds_no_error():
    r2 = GeoposeR2()
    truth = np.array([[1.0, 2.0, 3.0, 6.0]])
    flow = np.zeros((2, 1, 4))
    r2.update("ATL", np.array([[1.0, 2.0, 4.0, np.nan]]), truth, flow, flow)
    # SSE 1 (the NaN pixel adds none); truth mean 3 over all 4 pixels, Σ(y-ȳ)² = 4+1+0+9 = 14
    assert r2.compute()["cities"]["ATL"]["r2_agl"] == pytest.approx(1 - 1 / 14, abs=1e-4)


def test_flow_vectors_follow_the_angle():
    flow = flow_vectors(np.array([[2.0]]), scale=0.5, angle=np.pi / 2)
    assert flow[:, 0, 0] == pytest.approx([1.0, 0.0])


def test_clouds_dice_is_one_when_both_empty():
    empty = np.zeros((3, 3))
    some = np.eye(3)
    assert dice_empty_one(empty, empty) == 1.0
    assert dice_empty_one(some, empty) == 0.0
    half = np.array([[1, 1, 0]])
    assert dice_empty_one(half, np.array([[1, 0, 0]])) == pytest.approx(2 / 3)
    assert mean_dice([(empty, empty), (some, empty), (some, some)]) == pytest.approx(2 / 3)

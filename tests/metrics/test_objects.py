"""SpaceNet object F1 on hand-made polygon sets with hand-computed TP/FP/FN."""

from __future__ import annotations

import pytest
import shapely

from eoseg.metrics.objects import match_polygons, object_counts, object_metrics

box = shapely.box


def test_exact_matches_misses_and_extras():
    truth = [box(0, 0, 10, 10), box(20, 0, 30, 10), box(40, 0, 50, 10)]
    pred = [box(0, 0, 10, 10), box(21, 0, 31, 10), box(100, 100, 110, 110)]
    counts = object_counts(pred, truth)
    # first: IoU 1; second: IoU 90/110 = 0.818; third pred matches nothing; third truth missed
    assert (counts.tp, counts.fp, counts.fn) == (2, 1, 1)
    assert counts.as_dict()["f1"] == pytest.approx(2 / 3)


def test_one_truth_matched_by_two_predictions_gives_one_tp_one_fp():
    truth = [box(0, 0, 10, 10)]
    pred = [box(0, 0, 10, 9), box(0, 0, 10, 10)]  # IoU 0.9 and 1.0: the better one wins the match
    assert match_polygons(pred, truth) == [(1, 0, 1.0)]
    counts = object_counts(pred, truth)
    assert (counts.tp, counts.fp, counts.fn) == (1, 1, 0)


def test_iou_just_below_and_just_above_one_half():
    truth = [box(0, 0, 10, 10)]
    below = [box(0, 0, 10, 4.99)]  # IoU 0.499
    above = [box(0, 0, 10, 5.01)]  # IoU 0.501
    exactly = [box(0, 0, 10, 5)]  # IoU 0.5 counts
    assert (object_counts(below, truth).tp, object_counts(below, truth).fp) == (0, 1)
    assert object_counts(above, truth).tp == 1
    assert object_counts(exactly, truth).tp == 1


def test_greedy_matching_by_iou_not_by_prediction_order():
    truth = [box(0, 0, 10, 10), box(4, 0, 14, 10)]  # two overlapping footprints
    # pred 0 fits truth 0 (IoU 9/11) and truth 1 (7/13); pred 1 fits truth 0 best (9/10), truth 1 not (5/14).
    # In prediction order pred 0 would take truth 0 and leave pred 1 unmatched; greedy by IoU matches both.
    pred = [box(1, 0, 11, 10), box(0, 0, 9, 10)]
    assert sorted(match_polygons(pred, truth)) == [(0, 1, pytest.approx(7 / 13)), (1, 0, pytest.approx(0.9))]
    counts = object_counts(pred, truth)
    assert (counts.tp, counts.fp, counts.fn) == (2, 0, 0)


def test_per_scene_and_overall_counts_are_summed():
    scenes = {
        "a": ([box(0, 0, 1, 1)], [box(0, 0, 1, 1)]),
        "b": ([], [box(0, 0, 1, 1), box(5, 5, 6, 6)]),
        "c": ([box(0, 0, 1, 1)], []),
    }
    result = object_metrics(scenes)
    assert result["per_scene"]["b"] == {"tp": 0, "fp": 0, "fn": 2, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    overall = result["overall"]
    assert (overall["tp"], overall["fp"], overall["fn"]) == (1, 1, 2)
    assert overall["precision"] == pytest.approx(0.5) and overall["recall"] == pytest.approx(1 / 3)
    assert overall["f1"] == pytest.approx(0.4)


def test_invalid_polygons_are_repaired_and_empty_ones_skipped():
    bowtie = shapely.Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])
    counts = object_counts([bowtie, shapely.Polygon()], [bowtie])
    assert (counts.tp, counts.fp, counts.fn) == (1, 0, 0)

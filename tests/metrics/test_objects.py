"""SpaceNet object F1 (official rules) on hand-made polygon sets with hand-computed TP/FP/FN."""

from __future__ import annotations

import pytest
import shapely

from eoseg.formats.spacenet import aoi_of
from eoseg.metrics.objects import ImagePolygons, SpaceNetRules, match_polygons, object_counts, object_metrics

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
    pred = [box(0, 0, 10, 9), box(0, 0, 10, 10)]  # IoU 0.9 and 1.0: in file order the first one takes it
    assert match_polygons(pred, truth) == [(0, 0, pytest.approx(0.9))]
    counts = object_counts(pred, truth)
    assert (counts.tp, counts.fp, counts.fn) == (1, 1, 0)
    # with confidences the more confident proposal is visited first
    assert match_polygons(pred, truth, confidence=[0.2, 0.9]) == [(1, 0, 1.0)]


def test_iou_must_be_strictly_above_one_half():
    truth = [box(0, 0, 10, 10)]
    below = [box(0, 0, 10, 4.99)]  # IoU 0.499
    above = [box(0, 0, 10, 5.01)]  # IoU 0.501
    exactly = [box(0, 0, 10, 5)]  # IoU 0.5 does not count (SpaceNet: IoU > 0.5)
    assert (object_counts(below, truth).tp, object_counts(below, truth).fp) == (0, 1)
    assert object_counts(above, truth).tp == 1
    assert (object_counts(exactly, truth).tp, object_counts(exactly, truth).fn) == (0, 1)


def test_proposals_in_order_each_takes_its_best_free_truth():
    truth = [box(0, 0, 10, 10), box(4, 0, 14, 10)]  # two overlapping footprints
    # pred 0 fits truth 0 (IoU 9/11) better than truth 1 (7/13) and takes it; pred 1 then only has
    # truth 1 (IoU 5/14 < 0.5): a false positive, and truth 1 is missed (the official order rule).
    pred = [box(1, 0, 11, 10), box(0, 0, 9, 10)]
    assert match_polygons(pred, truth) == [(0, 0, pytest.approx(9 / 11))]
    assert (object_counts(pred, truth).tp, object_counts(pred, truth).fp) == (1, 1)
    # more confident pred 1 goes first: takes truth 0 (0.9); pred 0 then takes truth 1 (7/13 > 0.5)
    assert sorted(match_polygons(pred, truth, confidence=[0.1, 0.8])) == [
        (0, 1, pytest.approx(7 / 13)), (1, 0, pytest.approx(0.9))]


def test_small_truth_below_20_px_and_proposals_up_to_20_px_are_dropped():
    truth = [box(0, 0, 4, 4.99), box(10, 0, 14, 5), box(20, 0, 30, 10)]  # 19.96 px dropped, 20 px kept
    pred = [box(10, 0, 14, 5), box(20, 0, 30, 10), box(40, 0, 44, 5.01)]  # 20 px dropped, 20.04 px kept
    counts = object_counts(pred, truth)
    assert (counts.tp, counts.fp, counts.fn) == (1, 1, 1)  # truth 1 is unmatched: its 20 px twin was dropped
    relaxed = object_counts(pred, truth, SpaceNetRules(min_truth_area=0, min_pred_area=0))
    assert (relaxed.tp, relaxed.fp, relaxed.fn) == (2, 1, 1)
    # map coordinates at 0.5 m pixels: a 2 x 2.5 m box is 20 px, dropped as a proposal
    assert object_counts([box(0, 0, 2, 2.5)], [], pixel_area=0.25).fp == 0
    assert object_counts([box(0, 0, 2, 2.5)], [], pixel_area=None).fp == 1  # no pixel size: no area rule


def test_per_image_per_aoi_and_overall():
    images = {
        "AOI_2_Vegas_img1": ImagePolygons([box(0, 0, 10, 10)], [box(0, 0, 10, 10)]),
        "AOI_2_Vegas_img2": ImagePolygons([], [box(0, 0, 10, 10)]),
        "AOI_3_Paris_img1": ImagePolygons([box(0, 0, 10, 10)], [], pixel_area=None),
    }
    result = object_metrics(images)
    assert result["per_aoi"]["AOI_2_Vegas"] == {"tp": 1, "fp": 0, "fn": 1, "precision": 1.0, "recall": 0.5,
                                                "f1": pytest.approx(2 / 3)}
    assert result["per_aoi"]["AOI_3_Paris"]["fp"] == 1
    assert result["overall"]["f1"] == pytest.approx(0.5)
    assert result["area_filter"].startswith("off for 1 image(s)")
    assert aoi_of("Atlanta_nadir7_catid_1030010003D22F00_732701") == "Atlanta_nadir7_catid_1030010003D22F00"


def test_per_scene_and_overall_counts_are_summed():
    scenes = {
        "a": ([box(0, 0, 10, 10)], [box(0, 0, 10, 10)]),
        "b": ([], [box(0, 0, 10, 10), box(50, 50, 60, 60)]),
        "c": ([box(0, 0, 10, 10)], []),
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

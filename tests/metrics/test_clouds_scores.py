"""Kaggle clouds scoring of CSVs: empty = 1, one empty = 0, truth averaged onto the 350 x 525 grid."""

from __future__ import annotations

import numpy as np
import pytest

from eoseg.errors import InputError
from eoseg.formats.clouds import write_clouds_csv
from eoseg.formats.rle import rle_encode
from eoseg.metrics.clouds import score_clouds_csv


def test_submission_scored_against_full_size_truth(tmp_path):
    truth_mask = np.zeros((1400, 2100), np.uint8)
    truth_mask[:400, :800] = 1  # 100 x 200 on the submission grid
    pred_mask = np.zeros((350, 525), np.uint8)
    pred_mask[:100, :100] = 1  # half of it
    truth = write_clouds_csv(tmp_path / "train.csv", {"a.jpg": {"Fish": rle_encode(truth_mask)}})
    pred = write_clouds_csv(tmp_path / "sub.csv", {"a.jpg": {"Fish": rle_encode(pred_mask), "Sugar": "1 5"}})
    score = score_clouds_csv(pred, truth)
    fish = 2 * 100 * 100 / (100 * 100 + 100 * 200)
    assert score["per_class"] == pytest.approx({"Fish": fish, "Flower": 1.0, "Gravel": 1.0, "Sugar": 0.0})
    assert score["dice"] == pytest.approx((fish + 2) / 4)


def test_submission_image_missing_from_truth_is_an_error(tmp_path):
    truth = write_clouds_csv(tmp_path / "train.csv", {"a.jpg": {}})
    pred = write_clouds_csv(tmp_path / "sub.csv", {"b.jpg": {}})
    with pytest.raises(InputError, match=r"sub.csv: image\(s\) \['b.jpg'\] are not in the truth"):
        score_clouds_csv(pred, truth)

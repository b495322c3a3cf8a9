"""The official xView2 score: localisation F1 and the harmonic mean of the four damage-class F1s.

Per image pair: localisation is scored on ``pred > 0`` vs ``truth > 0`` over all pixels; damage is
scored only on pixels that are buildings in the truth, with the predicted damage zeroed where no
building is predicted. Counts are summed over all images before F1 is taken.
``score = 0.3 * localization_f1 + 0.7 * damage_f1``; this reproduces the official scorer
(``DIUx-xView/xView2_scoring/xview2_metrics.py``), including its file checks (uint8, one channel, 0..4).
"""

from __future__ import annotations

import os

import numpy as np

from eoseg.errors import InputError
from eoseg.formats.xbd import read_xview2_png, xview2_pairs
from eoseg.metrics.pixel import scores_from_counts

DAMAGE_NAMES = ("no_damage", "minor_damage", "major_damage", "destroyed")


class XView2Score:
    """Accumulates localisation and damage counts over image pairs; :meth:`compute` gives the score."""

    def __init__(self) -> None:
        self.loc = np.zeros(3, np.int64)  # tp, fp, fn
        self.damage = np.zeros((4, 3), np.int64)

    @staticmethod
    def _counts(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
        return np.array([np.sum(pred & truth), np.sum(pred & ~truth), np.sum(~pred & truth)], np.int64)

    def update(
        self, loc_pred: np.ndarray, damage_pred: np.ndarray, loc_truth: np.ndarray, damage_truth: np.ndarray
    ) -> None:
        """Add one image pair: localisation masks (0 / >0) and damage masks (0, 1..4)."""
        shapes = {a.shape for a in (loc_pred, damage_pred, loc_truth, damage_truth)}
        if len(shapes) != 1:
            raise ValueError(f"xView2 masks of one image must share a shape, got {sorted(shapes)}")
        loc_p, loc_t = loc_pred > 0, loc_truth > 0
        self.loc += self._counts(loc_p, loc_t)
        building = damage_truth > 0
        dp = np.where(loc_p, damage_pred, 0)[building]
        dt = damage_truth[building]
        for c in range(1, 5):
            self.damage[c - 1] += self._counts(dp == c, dt == c)

    def compute(self) -> dict[str, float]:
        """Score dict with the official keys."""
        lf1 = float(scores_from_counts(*self.loc)["f1"])
        f1s = [float(scores_from_counts(*row)["f1"]) for row in self.damage]
        df1 = 4.0 / sum(1.0 / (f + 1e-6) for f in f1s)
        result = {"score": 0.3 * lf1 + 0.7 * df1, "damage_f1": df1, "localization_f1": lf1}
        result.update({f"damage_f1_{name}": f for name, f in zip(DAMAGE_NAMES, f1s, strict=True)})
        return result


def score_xview2_folders(predictions: str | os.PathLike[str], targets: str | os.PathLike[str]) -> dict:
    """The xView2 score of a folder of submission PNGs against a folder of target PNGs, as the official scorer.

    Every target pair (``*_localization_<id>_target.png``, ``*_damage_<id>_target.png``) needs its two
    ``*_prediction.png`` files; masks of one id must share a shape. Returns the official keys plus
    ``images``, ``per_class`` (damage F1 by class name) and the pixel counts.
    """
    truth = xview2_pairs(targets, "target")
    pred = xview2_pairs(predictions, "prediction")
    if not truth:
        raise InputError(f"{targets}: no xView2 target PNGs (*_localization_<id>_target.png) found")
    missing = sorted(set(truth) - set(pred))
    if missing:
        raise InputError(f"{predictions}: no prediction PNGs for image(s) {missing[:5]}; "
                         f"an image without a prediction cannot be scored (write all {len(truth)})")
    score = XView2Score()
    for image_id, files in truth.items():
        arrays = [read_xview2_png(p) for p in
                  (pred[image_id]["localization"], pred[image_id]["damage"], files["localization"], files["damage"])]
        if len({a.shape for a in arrays}) != 1:
            raise InputError(f"{pred[image_id]['localization']}: image {image_id} masks differ in shape from "
                             f"its targets ({[a.shape for a in arrays]})")
        score.update(*arrays)
    result = score.compute()
    result["images"] = len(truth)
    result["per_class"] = {name: result[f"damage_f1_{name}"] for name in DAMAGE_NAMES}
    return result

"""The official xView2 score: localisation F1 and the harmonic mean of the four damage-class F1s.

Per image pair: localisation is scored on ``pred > 0`` vs ``truth > 0`` over all pixels; damage is
scored only on pixels that are buildings in the truth, with the predicted damage zeroed where no
building is predicted. Counts are summed over all images before F1 is taken.
``score = 0.3 * localization_f1 + 0.7 * damage_f1``.
"""

from __future__ import annotations

import numpy as np

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

"""K folds over groups of chips (scenes or regions), balanced by chip count and deterministic.

All chips of a group get the same fold, so overlapping chips of one scene never straddle training and
validation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping


def assign_folds(chip_counts: Mapping[str, int], k: int, seed: int = 0) -> dict[str, int]:
    """Map each group to a fold in ``0..k-1``: largest groups first, each to the fold with fewest chips.

    Ties between equal-sized groups are broken by a hash of (seed, group), ties between folds by the
    lowest index, so the result depends only on the counts, ``k`` and ``seed``.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1 (got {k})")

    def tiebreak(group: str) -> str:
        return hashlib.sha1(f"{seed}:{group}".encode()).hexdigest()

    totals = [0] * k
    folds: dict[str, int] = {}
    for group in sorted(chip_counts, key=lambda g: (-chip_counts[g], tiebreak(g))):
        fold = min(range(k), key=lambda f: (totals[f], f))
        folds[group] = fold
        totals[fold] += chip_counts[group]
    return folds

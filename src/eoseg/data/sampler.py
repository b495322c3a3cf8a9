"""Weighted sampling of chips by whether their target is empty (the UNOSAT recipe's sampler).

``data.sampler: {empty_weight: 0.3, nonempty_weight: 0.7, target: mask}`` draws chips so that, on
average, 30 % of the draws are chips without any labelled object and 70 % are chips with one, whatever
the counts of each kind in the manifest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch.utils.data import WeightedRandomSampler

from eoseg.config.schema import SamplerSpec
from eoseg.errors import ConfigError


def nonempty_chips(manifest: pd.DataFrame, target: str) -> np.ndarray:
    """``bool`` per chip: the target has an object (a class > 0; for raster targets, a labelled pixel)."""
    classes = [c for c in manifest.columns if c.startswith(f"frac:{target}:") and not c.endswith(":0")]
    if classes:
        return manifest[classes].fillna(0).to_numpy().sum(axis=1) > 0
    if f"frac:{target}" in manifest.columns:
        return manifest[f"frac:{target}"].fillna(0).to_numpy() > 0
    targets = sorted({c.split(":")[1] for c in manifest.columns if c.startswith("frac:")})
    raise ConfigError(f"data.sampler.target: the manifest has no target {target!r} (targets: {targets})")


def chip_weights(manifest: pd.DataFrame, spec: SamplerSpec) -> np.ndarray:
    """Sampling weight per chip: each group's weight shared equally among its chips (weights sum to 1)."""
    nonempty = nonempty_chips(manifest, spec.target)
    counts = {True: int(nonempty.sum()), False: int((~nonempty).sum())}
    share = {True: spec.nonempty_weight if counts[True] else 0.0, False: spec.empty_weight if counts[False] else 0.0}
    total = share[True] + share[False]
    if total <= 0:
        raise ConfigError(f"data.sampler: weights give no chip a chance (empty_weight={spec.empty_weight}, "
                          f"nonempty_weight={spec.nonempty_weight}; {counts[True]} chips with objects, "
                          f"{counts[False]} without); make the weight of a group that has chips positive")
    return np.where(nonempty, share[True] / total / max(counts[True], 1), share[False] / total / max(counts[False], 1))


def weighted_sampler(manifest: pd.DataFrame, spec: SamplerSpec) -> WeightedRandomSampler:
    """A sampler drawing ``len(manifest)`` chips per epoch, with replacement, by :func:`chip_weights`."""
    weights = torch.as_tensor(chip_weights(manifest, spec), dtype=torch.double)
    return WeightedRandomSampler(weights, num_samples=len(manifest), replacement=True)

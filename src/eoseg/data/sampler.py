"""The training sampler (:class:`ChipSampler`: per-epoch draws keyed for augmentation, resumable mid-epoch)
and weighted sampling of chips by whether their target is empty (the UNOSAT recipe's sampler).

``data.sampler: {empty_weight: 0.3, nonempty_weight: 0.7, target: mask}`` draws chips so that, on
average, 30 % of the draws are chips without any labelled object and 70 % are chips with one, whatever
the counts of each kind in the manifest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Sampler

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


def weighted_sampler(
    manifest: pd.DataFrame, spec: SamplerSpec, seed: int, num_replicas: int = 1, rank: int = 0
) -> ChipSampler:
    """A sampler drawing ``len(manifest)`` chips per epoch, with replacement, by :func:`chip_weights`."""
    return ChipSampler(len(manifest), seed, chip_weights(manifest, spec), len(manifest), num_replicas, rank)


def derived_seed(*key: int) -> int:
    """A 63-bit seed derived from integers such as ``(seed, epoch)`` (independent streams per key)."""
    return int(np.random.SeedSequence([int(k) for k in key]).generate_state(1, np.uint64)[0] >> 1)


class ChipSampler(Sampler[tuple[int, int, int]]):
    """The training draws of each epoch as ``(epoch, draw, chip index)``, resumable at any draw.

    The epoch's order is a pure function of ``(seed, epoch)``: a permutation of the ``size`` chips, or
    ``num_samples`` draws with replacement by ``weights`` (the ``data.sampler`` recipe). Across
    ``num_replicas`` processes (DDP) the order is padded to a multiple of the process count and rank ``r``
    takes draws ``r, r + n, ...``. The dataset derives each sample's augmentation from ``(seed, epoch,
    draw)``, so neither worker processes nor their seeds change what a sample looks like.

    ``state_dict()`` / ``load_state_dict()`` give and take ``{"epoch", "position"}`` (the next draw of
    this process); :class:`ResumableLoader` stores it in Lightning checkpoints. ``generator`` is reseeded
    from ``(seed, epoch)`` and is meant as the DataLoader's generator, so that making an iterator (worker
    base seeds) never draws from the global torch RNG that training restores on resume.
    :class:`~eoseg.data.mixing.MixedBatchSampler` is the labelled + pseudo-labelled mix (its draws are batches).
    """

    def __init__(
        self,
        size: int,
        seed: int,
        weights: np.ndarray | None = None,
        num_samples: int | None = None,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in 0..{num_replicas - 1}")
        self.size, self.seed = int(size), int(seed)
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.double)
        self.num_samples = int(num_samples if num_samples is not None else size)
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.generator = torch.Generator()
        self.epoch, self.position = 0, 0
        self.set_epoch(0)

    def order(self, epoch: int) -> torch.Tensor:
        """Chip indices of every draw of ``epoch`` (all processes), from ``(seed, epoch)`` only."""
        generator = torch.Generator().manual_seed(derived_seed(self.seed, epoch, 0))
        if self.weights is None:
            return torch.randperm(self.size, generator=generator)
        return torch.multinomial(self.weights, self.num_samples, replacement=True, generator=generator)

    def __len__(self) -> int:
        total = self.size if self.weights is None else self.num_samples
        return -(-total // self.num_replicas)

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` at its first draw (a resumed position of the same epoch is kept)."""
        if epoch != self.epoch:
            self.epoch, self.position = int(epoch), 0
        self.generator.manual_seed(derived_seed(self.seed, self.epoch, 1))

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        epoch, start = self.epoch, self.position
        order = self.order(epoch).tolist()
        if not order:
            return
        padded = len(self) * self.num_replicas
        order = (order * (-(-padded // len(order))))[:padded]
        for position in range(start, len(self)):
            draw = position * self.num_replicas + self.rank
            yield epoch, draw, int(order[draw])

    def state_at(self, epoch: int, position: int) -> dict[str, int]:
        """The state that resumes at ``position`` of ``epoch`` (the next epoch's start once it is done)."""
        return {"epoch": epoch + 1, "position": 0} if position >= len(self) else {"epoch": epoch, "position": position}

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self.set_epoch(self.epoch)


class ResumableLoader(DataLoader):
    """A DataLoader over a :class:`ChipSampler` whose position Lightning saves in (and restores from) checkpoints.

    ``progress`` returns ``(epoch, draws of this process trained on)``: the trainer's count, not the
    sampler's (workers and the fetcher read ahead), so the state points at the first draw not yet trained on.
    """

    progress: Callable[[], tuple[int, int]] | None = None

    def state_dict(self) -> dict[str, int]:
        sampler = self.sampler
        assert isinstance(sampler, ChipSampler)
        if self.progress is None:
            return sampler.state_dict()
        return sampler.state_at(*self.progress())

    def load_state_dict(self, state: dict[str, int]) -> None:
        sampler = self.sampler
        assert isinstance(sampler, ChipSampler)
        sampler.load_state_dict(state)

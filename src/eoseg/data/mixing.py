"""Mixing the labelled chips with a pseudo-labelled chip set (``selftrain.mix``; Open Cities noisy student).

:class:`MixedBatchSampler` is a :class:`~eoseg.data.sampler.ChipSampler` whose draws are whole batches of
keys ``(epoch, draw, index)`` into :class:`MixedDataset` (labelled chips ``0..offset-1``, pseudo-labelled
ones ``offset + i``): ``every=k`` gives ``k`` labelled batches then one pseudo-labelled batch (Open Cities:
every 5th iteration; an epoch of fewer than ``k`` labelled batches still ends with one, so that a small
labelled set does not leave the pseudo-labelled one unused), ``share=s`` puts ``round(s * batch_size)``
pseudo-labelled samples into every batch.
An epoch is one pass of the labelled chips (a permutation, or ``data.sampler``'s weighted draws); the
pseudo-labelled chips are drawn in permutations one after the other, as many as the epoch needs. The epoch's
batches are a pure function of ``(seed, epoch)``, each sample's ``draw`` is unique in its epoch (labelled
draws first, then pseudo-labelled ones), so augmentation keys never collide, and the position (in batches)
is saved in checkpoints like the plain sampler's: a mixed run resumes mid-epoch exactly.
:func:`collate_parts` keeps each source's samples apart (their targets may differ in form):
``{"parts": {"labelled": batch, "pseudo": batch}}``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from eoseg.config.schema import pseudo_per_batch
from eoseg.data.sampler import ChipSampler, derived_seed
from eoseg.errors import ConfigError

LABELLED, PSEUDO = "labelled", "pseudo"

Key = tuple[int, int, int]


class MixedDataset(Dataset):
    """``labelled`` then ``pseudo`` as one dataset whose items carry ``"source"``; a list of keys (a batch of
    :class:`MixedBatchSampler`) gives the list of their items."""

    def __init__(self, labelled: Dataset, pseudo: Dataset) -> None:
        self.labelled, self.pseudo = labelled, pseudo
        self.offset = len(labelled)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self.offset + len(self.pseudo)  # type: ignore[arg-type]

    def item(self, key: Key) -> dict[str, Any]:
        epoch, draw, index = key
        if index < self.offset:
            return {**self.labelled[(epoch, draw, index)], "source": LABELLED}
        return {**self.pseudo[(epoch, draw, index - self.offset)], "source": PSEUDO}

    def __getitem__(self, keys: Sequence[Key]) -> list[dict[str, Any]]:
        return [self.item(tuple(int(k) for k in key)) for key in keys]  # type: ignore[misc]


class MixedBatchSampler(ChipSampler):
    """Mixed batches of draw keys, per epoch from ``(seed, epoch)``; resumable at any batch (see module doc).

    ``weights`` (one per labelled chip, e.g. :func:`~eoseg.data.sampler.chip_weights`) draws the labelled
    chips with replacement, ``labelled`` draws per epoch. Under DDP the epoch's batches are padded to a
    multiple of ``num_replicas`` and rank ``r`` takes batches ``r, r + n, ...``. One draw of this sampler is
    one batch: ``state_dict()`` / ``load_state_dict()`` position counts batches.
    """

    def __init__(
        self,
        labelled: int,
        pseudo: int,
        batch_size: int,
        seed: int,
        every: int | None = None,
        share: float | None = None,
        weights: np.ndarray | None = None,
        drop_last: bool = True,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if (every is None) == (share is None):
            raise ValueError("give exactly one of every and share")
        if pseudo < 1:
            raise ValueError("the pseudo-labelled set is empty")
        self.pseudo_size, self.batch_size, self.every, self.drop_last = int(pseudo), int(batch_size), every, drop_last
        if share is not None:
            try:
                self.pseudo_per_batch = pseudo_per_batch(share, batch_size)
            except ValueError as exc:
                raise ConfigError(str(exc)) from exc
        else:
            self.pseudo_per_batch = 0
        self.labelled_per_batch = batch_size - self.pseudo_per_batch
        super().__init__(labelled, seed, weights, labelled, num_replicas, rank)

    def _labelled_batches(self) -> int:
        n, per = self.num_samples, self.labelled_per_batch
        return n // per if self.drop_last and n >= per else math.ceil(n / per)

    def _pseudo_batches(self) -> int:
        """Whole pseudo-labelled batches of one epoch (``every``): one per ``every`` labelled ones, at least one."""
        return max(1, self._labelled_batches() // self.every) if self.every is not None else 0

    def batches_per_epoch(self) -> int:
        """Batches of one epoch, all processes together."""
        return self._labelled_batches() + self._pseudo_batches()

    def __len__(self) -> int:
        return -(-self.batches_per_epoch() // self.num_replicas)

    def _pseudo_draws(self, epoch: int, count: int) -> list[int]:
        """Pseudo-labelled chip indices of the epoch's first ``count`` pseudo draws: permutations in a row."""
        out: list[int] = []
        for cycle in range(-(-count // self.pseudo_size)):
            generator = torch.Generator().manual_seed(derived_seed(self.seed, epoch, 2, cycle))
            out += torch.randperm(self.pseudo_size, generator=generator).tolist()
        return out[:count]

    def batches(self, epoch: int) -> list[list[Key]]:
        """Every batch of ``epoch`` (all processes) as keys ``(epoch, draw, index)``."""
        labelled = super().order(epoch).tolist()
        count = self._labelled_batches()
        whole = self._pseudo_batches()
        pseudo_draws = count * self.pseudo_per_batch + whole * self.batch_size
        pseudo = iter(self._pseudo_draws(epoch, pseudo_draws))
        next_draw = iter(range(len(labelled), len(labelled) + pseudo_draws))  # pseudo draws follow labelled ones

        def from_pseudo(n: int) -> list[Key]:
            return [(epoch, next(next_draw), self.size + next(pseudo)) for _ in range(n)]

        out: list[list[Key]] = []
        for number in range(count):
            draws = range(number * self.labelled_per_batch, min((number + 1) * self.labelled_per_batch, len(labelled)))
            out.append([(epoch, d, int(labelled[d])) for d in draws] + from_pseudo(self.pseudo_per_batch))
            if self.every is not None and (number + 1) % self.every == 0 and whole:
                out.append(from_pseudo(self.batch_size))
                whole -= 1
        if whole:  # fewer labelled batches than every: the epoch ends with its pseudo-labelled batch
            out.append(from_pseudo(self.batch_size))
        return out

    def __iter__(self) -> Iterator[list[Key]]:  # type: ignore[override]
        epoch, start = self.epoch, self.position
        batches = self.batches(epoch)
        if not batches:
            return
        padded = len(self) * self.num_replicas
        batches = (batches * (-(-padded // len(batches))))[:padded]
        for position in range(start, len(self)):
            yield batches[position * self.num_replicas + self.rank]


def collate_parts(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``{"parts": {source: default_collate(its items)}}`` in order of first appearance."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        groups.setdefault(item["source"], []).append({k: v for k, v in item.items() if k != "source"})
    return {"parts": {source: default_collate(group) for source, group in groups.items()}}

"""Mixing the labelled chips with a pseudo-labelled chip set (``selftrain.mix``; Open Cities noisy student).

:class:`MixedBatchSampler` draws batches of indices into ``ConcatDataset([labelled, pseudo])`` from two
ordinary samplers, so any sampler of the labelled set (random, the weighted sampler, another one) composes
with it: ``every=k`` gives ``k`` labelled batches then one pseudo-labelled batch (Open Cities: every 5th
iteration), ``share=s`` puts ``round(s * batch_size)`` pseudo-labelled samples into every batch. An epoch is
one pass of the labelled sampler; the pseudo-labelled sampler restarts whenever it runs out.
:func:`collate_parts` keeps each source's samples apart (their targets may differ in form):
``{"parts": {"labelled": batch, "pseudo": batch}}``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

from torch.utils.data import Dataset, Sampler, default_collate

from eoseg.errors import ConfigError

LABELLED, PSEUDO = "labelled", "pseudo"


class SourceDataset(Dataset):
    """``dataset`` whose items carry ``"source": name``."""

    def __init__(self, dataset: Dataset, source: str) -> None:
        self.dataset, self.source = dataset, source

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {**self.dataset[index], "source": self.source}


class MixedBatchSampler(Sampler[list[int]]):
    """Batches of labelled indices (``0..offset-1``) and pseudo-labelled ones (``offset + i``)."""

    def __init__(
        self,
        labelled: Sampler[int],
        pseudo: Sampler[int],
        batch_size: int,
        offset: int,
        every: int | None = None,
        share: float | None = None,
        drop_last: bool = True,
    ) -> None:
        if (every is None) == (share is None):
            raise ValueError("give exactly one of every and share")
        self.labelled, self.pseudo, self.offset = labelled, pseudo, offset
        self.batch_size, self.every, self.drop_last = batch_size, every, drop_last
        if share is not None:
            self.pseudo_per_batch = round(share * batch_size)
            if not 1 <= self.pseudo_per_batch < batch_size:
                raise ConfigError(
                    f"selftrain.mix.share={share:g}: with train.batch_size={batch_size} that is "
                    f"{self.pseudo_per_batch} pseudo-labelled sample(s) per batch; it must leave at least one of "
                    f"each kind (1..{batch_size - 1}); change the share or the batch size, or use selftrain.mix.every"
                )
        else:
            self.pseudo_per_batch = 0
        self.labelled_per_batch = batch_size - self.pseudo_per_batch
        self._pseudo: Iterator[int] | None = None

    def _labelled_batches(self) -> int:
        n = len(self.labelled)  # type: ignore[arg-type]
        per = self.labelled_per_batch
        return n // per if self.drop_last and n >= per else math.ceil(n / per)

    def __len__(self) -> int:
        batches = self._labelled_batches()
        return batches + batches // self.every if self.every is not None else batches

    def _next_pseudo(self, count: int) -> list[int]:
        out: list[int] = []
        while len(out) < count:
            if self._pseudo is None:
                self._pseudo = iter(self.pseudo)
            try:
                out.append(self.offset + next(self._pseudo))
            except StopIteration:
                self._pseudo = None
                if not out and len(self.pseudo) == 0:  # type: ignore[arg-type]
                    raise ValueError("the pseudo-labelled sampler is empty") from None
        return out

    def __iter__(self) -> Iterator[list[int]]:
        labelled = iter(self.labelled)
        for number in range(1, self._labelled_batches() + 1):
            batch = [i for _, i in zip(range(self.labelled_per_batch), labelled, strict=False)]
            if not batch:
                return
            yield batch + self._next_pseudo(self.pseudo_per_batch)
            if self.every is not None and number % self.every == 0:
                yield self._next_pseudo(self.batch_size)


def collate_parts(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``{"parts": {source: default_collate(its items)}}`` in order of first appearance."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        groups.setdefault(item["source"], []).append({k: v for k, v in item.items() if k != "source"})
    return {"parts": {source: default_collate(group) for source, group in groups.items()}}

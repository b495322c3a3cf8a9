"""The LightningDataModule of a prepared dataset: fold split, datasets, sampler and DataLoaders.

``data.fold = k`` validates on the chips of fold ``k`` and trains on all other folds. The manifest and
band statistics are read (and checked against the config) when the module is made, so a wrong dataset
fails before any model is built.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import pandas as pd
import torch
from torch.utils.data import DataLoader

from eoseg.config.schema import ExperimentConfig
from eoseg.data.augment import Augment
from eoseg.data.dataset import MANIFEST, ChipDataset, HeadTargetFn, check_prepared, read_manifest, read_prepared_stats
from eoseg.data.sampler import weighted_sampler
from eoseg.errors import ConfigError


def split_folds(manifest: pd.DataFrame, fold: int, where: str = MANIFEST) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, validation)`` chips: validation is fold ``fold``, training every other fold."""
    folds = sorted(int(f) for f in manifest["fold"].unique())
    if fold not in folds:
        raise ConfigError(f"data.fold={fold} is out of range: {where} has folds {folds}; "
                          f"set data.fold to one of them")
    val = manifest[manifest["fold"] == fold]
    train = manifest[manifest["fold"] != fold]
    if train.empty:
        raise ConfigError(f"data.fold={fold}: every chip of {where} is in fold {fold}, so nothing is left to "
                          f"train on; prepare the dataset with data.folds of 2 or more")
    return train.reset_index(drop=True), val.reset_index(drop=True)


class ChipDataModule(L.LightningDataModule):
    """Train/validation chips of ``config.data.root`` for fold ``config.data.fold``.

    ``head_targets`` and ``directions`` come from the task (per-head targets; direction-field targets).
    """

    def __init__(
        self, config: ExperimentConfig, head_targets: HeadTargetFn | None = None, directions: Sequence[str] = ()
    ) -> None:
        super().__init__()
        self.config = config
        data = config.data
        self.root = data.root
        self.manifest = read_manifest(self.root)
        self.stats = read_prepared_stats(self.root)
        check_prepared(data, self.stats, self.manifest, self.root)
        self.train_chips, self.val_chips = split_folds(self.manifest, data.fold, str(self.root / MANIFEST))
        self.head_targets = head_targets
        self.augment = Augment(data.augment, list(data.targets), directions) if data.augment else None
        self.train_set: ChipDataset | None = None
        self.val_set: ChipDataset | None = None

    @property
    def in_channels(self) -> int:
        """Number of model input channels (from the prepared statistics)."""
        return len(self.stats["inputs"])

    def setup(self, stage: str | None = None) -> None:
        data = self.config.data
        self.train_set = ChipDataset(self.root, self.train_chips, self.stats, data, self.head_targets, self.augment)
        self.val_set = ChipDataset(self.root, self.val_chips, self.stats, data, self.head_targets)

    def _loader(self, dataset: ChipDataset, train: bool) -> DataLoader:
        spec = self.config.train
        spec_sampler = self.config.data.sampler
        sampler = weighted_sampler(dataset.chips, spec_sampler) if train and spec_sampler is not None else None
        return DataLoader(
            dataset,
            batch_size=spec.batch_size,
            shuffle=train and sampler is None,
            sampler=sampler,
            num_workers=spec.num_workers,
            persistent_workers=spec.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            drop_last=train and len(dataset) > spec.batch_size,  # a batch of one breaks batch norm
        )

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "setup() first"
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        assert self.val_set is not None, "setup() first"
        return self._loader(self.val_set, train=False)

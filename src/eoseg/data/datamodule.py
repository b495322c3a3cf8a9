"""The LightningDataModule of a prepared dataset: fold split, datasets, sampler and DataLoaders.

``data.fold = k`` validates on the chips of fold ``k`` and trains on all other folds. The manifest and
band statistics are read (and checked against the config) when the module is made, so a wrong dataset
fails before any model is built.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch
from torch.utils.data import ConcatDataset, DataLoader, RandomSampler

from eoseg.config.loader import load_config
from eoseg.config.schema import AugmentSpec, DataSpec, ExperimentConfig
from eoseg.data.augment import Augment
from eoseg.data.dataset import MANIFEST, ChipDataset, HeadTargetFn, check_prepared, read_manifest, read_prepared_stats
from eoseg.data.mixing import LABELLED, PSEUDO, MixedBatchSampler, SourceDataset, collate_parts
from eoseg.data.sampler import weighted_sampler
from eoseg.errors import ConfigError, InputError


def split_folds(manifest: pd.DataFrame, fold: int, where: str = MANIFEST) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, validation)`` chips: validation is fold ``fold``, training every other fold."""
    folds = sorted(int(f) for f in manifest["fold"].unique())
    if manifest.empty:
        raise ConfigError(f"{where}: the dataset has no chips (every scene was empty or all nodata: see the warnings "
                          "of eoseg prepare); nothing to train on: prepare scenes with valid pixels")
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
        negatives = config.selftrain.negatives
        if negatives.manifest is not None:
            self.train_chips = add_negatives(self.train_chips, Path(negatives.manifest), negatives.share)
        self.head_targets = head_targets
        self.augment = Augment(data.augment, list(data.targets), directions) if data.augment else None
        self.train_set: ChipDataset | None = None
        self.val_set: ChipDataset | None = None
        self.pseudo_set: ChipDataset | None = None
        self.pseudo: PseudoChips | None = None
        if config.selftrain.mix is not None:
            if config.selftrain.mix.root is None:
                raise ConfigError("selftrain.mix.root: not set; give the chips/ folder written by eoseg pseudo-label "
                                  "(eoseg self-train sets it for each round)")
            self.pseudo = PseudoChips(Path(config.selftrain.mix.root), self.stats, data.augment, directions)

    @property
    def in_channels(self) -> int:
        """Number of model input channels (from the prepared statistics)."""
        return len(self.stats["inputs"])

    def setup(self, stage: str | None = None) -> None:
        data = self.config.data
        self.train_set = ChipDataset(self.root, self.train_chips, self.stats, data, self.head_targets, self.augment)
        self.val_set = ChipDataset(self.root, self.val_chips, self.stats, data, self.head_targets)
        if self.pseudo is not None:
            self.pseudo_set = self.pseudo.dataset(self.head_targets)

    def _loader(self, dataset: ChipDataset, train: bool) -> DataLoader:
        spec = self.config.train
        spec_sampler = self.config.data.sampler
        sampler = weighted_sampler(dataset.chips, spec_sampler) if train and spec_sampler is not None else None
        if train and self.pseudo_set is not None:
            return self._mixed_loader(dataset, self.pseudo_set, sampler or RandomSampler(dataset))
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

    def _mixed_loader(self, labelled: ChipDataset, pseudo: ChipDataset, sampler: Any) -> DataLoader:
        """Batches from both sets by ``selftrain.mix`` (see :mod:`eoseg.data.mixing`)."""
        spec, mix = self.config.train, self.config.selftrain.mix
        assert mix is not None
        batches = MixedBatchSampler(sampler, RandomSampler(pseudo), spec.batch_size, len(labelled), mix.every,
                                    mix.share, drop_last=len(labelled) > spec.batch_size)
        return DataLoader(
            ConcatDataset([SourceDataset(labelled, LABELLED), SourceDataset(pseudo, PSEUDO)]),
            batch_sampler=batches,
            collate_fn=collate_parts,
            num_workers=spec.num_workers,
            persistent_workers=spec.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "setup() first"
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        assert self.val_set is not None, "setup() first"
        return self._loader(self.val_set, train=False)


class PseudoChips:
    """A pseudo-labelled chip set (``selftrain.mix.root``), checked against the labelled set's inputs.

    Its samples are normalised with the labelled set's statistics (those the model is trained and used
    with); its soft targets (``data.targets.<name>.soft`` in its ``config.yaml``) stay probabilities.
    """

    def __init__(
        self, root: Path, stats: dict[str, Any], augment: Sequence[AugmentSpec], directions: Sequence[str]
    ) -> None:
        option = f"selftrain.mix.root={root}"
        self.root = root
        self.manifest = read_manifest(root)
        if self.manifest.empty:
            raise InputError(f"{root / MANIFEST}: the pseudo-labelled set has no chips ({option}); "
                             "pseudo-label more scenes or loosen selftrain.pseudo")
        prepared = read_prepared_stats(root)
        for key in ("bands", "inputs"):
            if prepared[key] != stats[key]:
                raise InputError(f"{option}: pseudo-labelled chips have {key} {prepared[key]} but the labelled "
                                 f"chips have {stats[key]}; pseudo-label with a model trained on this dataset")
        config_path = root / "config.yaml"
        if not config_path.is_file():
            raise InputError(f"{config_path}: not found ({option}); point it at the chips/ folder written by "
                             "eoseg pseudo-label or eoseg prepare")
        self.data: DataSpec = load_config(config_path).data
        self.stats = {**stats, "nodata": prepared["nodata"],  # the labelled normalisation, its own nodata
                      "scene_nodata": {**stats.get("scene_nodata", {}), **prepared.get("scene_nodata", {})}}
        self.soft = frozenset(n for n, t in self.data.targets.items() if t.soft)
        self.augment = Augment(list(augment), list(self.data.targets), directions) if augment else None

    def dataset(self, head_targets: HeadTargetFn | None) -> ChipDataset:
        """The chip dataset (augmented like the labelled one); ``head_targets`` gets ``soft=`` its soft targets."""
        fn = functools.partial(head_targets, soft=self.soft) if head_targets is not None else None
        return ChipDataset(self.root, self.manifest, self.stats, self.data, fn, self.augment)


def add_negatives(train: pd.DataFrame, path: Path, share: float) -> pd.DataFrame:
    """Training chips plus mined negatives (no target chip: an implicit zero mask), the most confident first,
    at most ``share`` of the result (``selftrain.negatives``)."""
    option = f"selftrain.negatives.manifest={path}"
    if not path.is_file():
        raise InputError(f"{path}: negatives list not found ({option}); write it with eoseg mine-negatives")
    found = pd.read_parquet(path)
    images = sorted(c for c in train.columns if c.startswith("image:"))
    if sorted(c for c in found.columns if c.startswith("image:")) != images:
        raise InputError(f"{option}: negatives have images {[c for c in found.columns if c.startswith('image:')]} "
                         f"but the training chips have {images}; mine chips of this dataset's images")
    cap = int(share / (1.0 - share) * len(train))
    if "score" in found.columns:
        found = found.sort_values("score", ascending=False, kind="stable")
    chosen = found.head(cap)
    chosen = chosen[[c for c in chosen.columns if c in train.columns or c == "reason"]].copy()
    chosen["negative"] = True
    return pd.concat([train.assign(negative=False), chosen], ignore_index=True)

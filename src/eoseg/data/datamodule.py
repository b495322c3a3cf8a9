"""The LightningDataModule of a prepared dataset: fold split, datasets, sampler and DataLoaders.

``data.fold = k`` validates on the chips of fold ``k`` and trains on all other folds; ``data.val_scenes`` /
``data.val_regions`` name the validation scenes instead, and ``data.train_on_val`` trains on every chip
(:func:`split_chips`). The manifest and
band statistics are read (and checked against the config) when the module is made, so a wrong dataset
fails before any model is built.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from eoseg.config.loader import load_config
from eoseg.config.schema import AugmentSpec, DataSpec, ExperimentConfig, GeometrySpec
from eoseg.data.augment import Augment
from eoseg.data.dataset import MANIFEST, ChipDataset, HeadTargetFn, check_prepared, read_manifest, read_prepared_stats
from eoseg.data.mixing import MixedBatchSampler, MixedDataset, collate_parts
from eoseg.data.sampler import ChipSampler, ResumableLoader, chip_weights, weighted_sampler
from eoseg.errors import ConfigError, InputError
from eoseg.registry import did_you_mean


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
                          f"train on; prepare the dataset with data.folds of 2 or more, name validation scenes "
                          f"with data.val_scenes, or set data.train_on_val=true")
    return train.reset_index(drop=True), val.reset_index(drop=True)


def _named(manifest: pd.DataFrame, column: str, names: Sequence[str], option: str, where: str) -> pd.Series:
    """Chips whose ``column`` is one of ``names``; an unknown name is a one-line error with the valid ones."""
    known = sorted({str(v) for v in manifest[column].dropna().unique()})
    for name in names:
        if name not in known:
            shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "") if known else "none"
            raise ConfigError(f"{option}: {where} has no {column} {name!r}; {did_you_mean(name, known)}"
                              f"valid: {shown}")
    return manifest[column].astype("string").isin(list(names)).fillna(False).astype(bool)


def split_chips(data: DataSpec, manifest: pd.DataFrame, where: str = MANIFEST) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, validation)`` chips as ``data`` chooses them.

    ``data.val_scenes`` / ``data.val_regions`` (names) pick the validation scenes; otherwise fold
    ``data.fold`` validates. ``data.train_on_val`` trains on every chip, validation chips included, and
    warns that validation then measures fit rather than generalisation.
    """
    if data.val_scenes or data.val_regions:
        val_mask = pd.Series(False, index=manifest.index)
        if data.val_scenes:
            val_mask |= _named(manifest, "scene", data.val_scenes, "data.val_scenes", where)
        if data.val_regions:
            val_mask |= _named(manifest, "region", data.val_regions, "data.val_regions", where)
        train, val = manifest[~val_mask], manifest[val_mask]
        if train.empty and not data.train_on_val:
            raise ConfigError(f"data.val_scenes/data.val_regions name every scene of {where}, so nothing is left "
                              f"to train on; name fewer scenes, or set data.train_on_val=true")
        train, val = train.reset_index(drop=True), val.reset_index(drop=True)
    elif data.train_on_val:
        folds = sorted(int(f) for f in manifest["fold"].unique())
        if data.fold not in folds:
            raise ConfigError(f"data.fold={data.fold} is out of range: {where} has folds {folds}; "
                              f"set data.fold to one of them")
        train, val = manifest.reset_index(drop=True), manifest[manifest["fold"] == data.fold].reset_index(drop=True)
    else:
        return split_folds(manifest, data.fold, where)
    if data.train_on_val:
        scenes = sorted(set(val["scene"]))
        warnings.warn(f"data.train_on_val=true: the validation scenes {scenes} are also trained on, so val/* "
                      f"scores measure fit to training data, not generalisation", UserWarning, stacklevel=2)
        train = manifest.reset_index(drop=True)
    return train, val


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
        self.train_chips, self.val_chips = split_chips(data, self.manifest, str(self.root / MANIFEST))
        negatives = config.selftrain.negatives
        if negatives.manifest is not None:
            self.train_chips = add_negatives(self.train_chips, Path(negatives.manifest), negatives.share)
        self.head_targets = head_targets
        self.augment = Augment.from_config(data.augment, list(data.targets), directions, data.geometry, self.stats)
        self.train_set: ChipDataset | None = None
        self.val_set: ChipDataset | None = None
        self.pseudo_set: ChipDataset | None = None
        self.pseudo: PseudoChips | None = None
        if config.selftrain.mix is not None:
            if config.selftrain.mix.root is None:
                raise ConfigError("selftrain.mix.root: not set; give the chips/ folder written by eoseg pseudo-label "
                                  "(eoseg self-train sets it for each round)")
            self.pseudo = PseudoChips(Path(config.selftrain.mix.root), self.stats, data.augment, directions,
                                      data.geometry)
        self._train_loader: ResumableLoader | None = None
        self._sampler_state: dict[str, int] | None = None
        self._draws_per_batch = config.train.batch_size

    @property
    def in_channels(self) -> int:
        """Number of model input channels (from the prepared statistics)."""
        return len(self.stats["inputs"])

    def setup(self, stage: str | None = None) -> None:
        data, seed = self.config.data, self.config.train.seed
        self.train_set = ChipDataset(self.root, self.train_chips, self.stats, data, self.head_targets, self.augment,
                                     seed=seed)
        self.val_set = ChipDataset(self.root, self.val_chips, self.stats, data, self.head_targets, seed=seed)
        if self.pseudo is not None:
            self.pseudo_set = self.pseudo.dataset(self.head_targets, seed)

    def _processes(self) -> tuple[int, int]:
        """``(world size, global rank)`` of the attached trainer (1, 0 without one)."""
        trainer = getattr(self, "trainer", None)
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def _progress(self) -> tuple[int, int]:
        """``(epoch, draws of this process trained on)``: where a checkpoint written now resumes."""
        trainer = self.trainer
        assert trainer is not None
        batches = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        if batches >= trainer.num_training_batches:  # the epoch is over (also with limit_train_batches)
            return trainer.current_epoch, len(self._train_sampler)
        return trainer.current_epoch, batches * self._draws_per_batch

    def _mixed_sampler(self, labelled: ChipDataset, pseudo: ChipDataset) -> MixedBatchSampler:
        """Batches from both sets by ``selftrain.mix`` (see :mod:`eoseg.data.mixing`), resumable like the plain one."""
        spec, mix = self.config.train, self.config.selftrain.mix
        assert mix is not None
        world, rank = self._processes()
        sampler = self.config.data.sampler
        weights = chip_weights(labelled.chips, sampler) if sampler is not None else None
        return MixedBatchSampler(len(labelled), len(pseudo), spec.batch_size, spec.seed, mix.every, mix.share,
                                 weights, drop_last=len(labelled) > spec.batch_size, num_replicas=world, rank=rank)

    def train_dataloader(self) -> DataLoader:
        """Batches drawn by a :class:`ChipSampler` (weighted by ``data.sampler`` when given), split across
        processes by the sampler itself and resumable at any batch (Lightning stores its position)."""
        assert self.train_set is not None, "setup() first"
        spec, seed = self.config.train, self.config.train.seed
        world, rank = self._processes()
        chips = self.train_set.chips
        batching: dict[str, Any]
        if self.pseudo_set is not None:  # the sampler's draws are whole mixed batches of keys
            sampler: ChipSampler = self._mixed_sampler(self.train_set, self.pseudo_set)
            dataset: Dataset = MixedDataset(self.train_set, self.pseudo_set)
            batching, self._draws_per_batch = {"batch_size": None, "collate_fn": collate_parts}, 1
        else:
            if self.config.data.sampler is not None:
                sampler = weighted_sampler(chips, self.config.data.sampler, seed, world, rank)
            else:
                sampler = ChipSampler(len(chips), seed, num_replicas=world, rank=rank)
            dataset = self.train_set
            batching = {"batch_size": spec.batch_size,
                        "drop_last": len(sampler) > spec.batch_size}  # a batch of one breaks batch norm
            self._draws_per_batch = spec.batch_size
        self._train_sampler = sampler
        loader = ResumableLoader(
            dataset,
            sampler=sampler,
            generator=sampler.generator,
            num_workers=spec.num_workers,
            persistent_workers=spec.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            **batching,
        )
        if getattr(self, "trainer", None) is not None:
            loader.progress = self._progress
        if self._sampler_state is not None:
            loader.load_state_dict(self._sampler_state)
            self._sampler_state = None
        self._train_loader = loader
        return loader

    def state_dict(self) -> dict[str, Any]:
        """The training sampler's position, saved in every checkpoint (what a mid-epoch resume needs)."""
        return {"sampler": self._train_loader.state_dict()} if self._train_loader is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume the sampler at the saved position. Lightning restores the datamodule before the loops, and
        the loader may exist already (the schedule asked for the number of steps), so both cases are set."""
        state = state_dict.get("sampler")
        if state is not None and self._train_loader is not None:
            self._train_loader.load_state_dict(state)
        else:
            self._sampler_state = state

    def val_dataloader(self) -> DataLoader:
        """Validation chips in order (each process its share under DDP), with a loader-owned generator."""
        assert self.val_set is not None, "setup() first"
        spec = self.config.train
        world, rank = self._processes()
        sampler = DistributedSampler(self.val_set, world, rank, shuffle=False) if world > 1 else None
        return DataLoader(
            self.val_set,
            batch_size=spec.batch_size,
            sampler=sampler,
            generator=torch.Generator().manual_seed(spec.seed),
            num_workers=spec.num_workers,
            persistent_workers=spec.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

class PseudoChips:
    """A pseudo-labelled chip set (``selftrain.mix.root``), checked against the labelled set's inputs.

    Its samples are normalised with the labelled set's statistics (those the model is trained and used
    with); its soft targets (``data.targets.<name>.soft`` in its ``config.yaml``) stay probabilities.
    """

    def __init__(
        self,
        root: Path,
        stats: dict[str, Any],
        augment: Sequence[AugmentSpec],
        directions: Sequence[str],
        geometry: GeometrySpec,
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
        self.augment = Augment.from_config(augment, list(self.data.targets), directions, geometry, stats)

    def dataset(self, head_targets: HeadTargetFn | None, seed: int = 0) -> ChipDataset:
        """The chip dataset (augmented like the labelled one, keys from ``seed``); ``head_targets`` gets
        ``soft=`` its soft targets."""
        fn = functools.partial(head_targets, soft=self.soft) if head_targets is not None else None
        return ChipDataset(self.root, self.manifest, self.stats, self.data, fn, self.augment, seed=seed)


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

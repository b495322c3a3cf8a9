"""The chip dataset: model-ready samples from a prepared dataset (``manifest.parquet`` + ``stats.json``).

A sample is read from the chip GeoTIFFs of one manifest row: the images go through band math
(:class:`~eoseg.data.bandmath.BandMath`) and normalisation (:func:`~eoseg.data.stats.normalize`); the
targets become float arrays with NaN for "not labelled". Pixels that are nodata in any image are invalid:
0 in the inputs and ignored in every target. An optional augmentation (:class:`~eoseg.data.augment.Augment`)
moves images, validity and targets together, and a task-supplied function turns the target chips into
one target per model head.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rasterio
import torch
import yaml
from torch.utils.data import Dataset

from eoseg.config.schema import DataSpec
from eoseg.data.augment import Augment
from eoseg.data.bandmath import BandMath
from eoseg.data.stats import DatasetStats, model_inputs, read_stats
from eoseg.errors import InputError
from eoseg.geo.products import IGNORE
from eoseg.geo.raster import valid_mask

MANIFEST = "manifest.parquet"
STATS = "stats.json"

HeadTargetFn = Callable[..., dict[str, np.ndarray]]
"""Task hook: ``{target name: float32 (bands, H, W), NaN = ignore}`` -> ``{head name: array}``; a keyword
``soft=`` names the targets that hold probabilities (pseudo-labelled sets)."""


def require_prepared(root: str | os.PathLike[str]) -> Path:
    """The manifest path of ``root``; the one error for a folder that was never prepared (train, self-train)."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise InputError(f"{path}: chip manifest not found; run `eoseg prepare` with this config first "
                         f"(or point data.root at a prepared dataset)")
    return path


def read_manifest(root: str | os.PathLike[str]) -> pd.DataFrame:
    """The chip manifest of a prepared dataset; a clear error when it was never prepared."""
    return pd.read_parquet(require_prepared(root))


def read_prepared_stats(root: str | os.PathLike[str]) -> dict[str, Any]:
    """The band statistics (``stats.json``) of a prepared dataset; a folder never prepared is
    :func:`require_prepared`'s error."""
    require_prepared(root)
    path = Path(root) / STATS
    if not path.is_file():
        raise InputError(f"{path}: band statistics not found; the dataset is incomplete, re-run `eoseg prepare`")
    return read_stats(path)


def check_prepared(data: DataSpec, stats: Mapping[str, Any], manifest: pd.DataFrame, root: Path) -> None:
    """Refuse a prepared dataset whose images, bands, inputs or targets differ from what ``data`` asks for."""
    where = root / STATS
    rerun = "re-run `eoseg prepare` with this config or set data.root to a dataset prepared with it"
    for image, bands in data.bands.items():
        prepared = stats["bands"].get(image)
        if prepared is None:
            raise InputError(f"{where}: chips have no image {image!r} (images: {list(stats['bands'])}) but "
                             f"data.bands names it; {rerun}")
        if list(bands) != list(prepared):
            raise InputError(f"{where}: image {image!r} was prepared with bands {prepared} but data.bands.{image} "
                             f"is {list(bands)}; {rerun}")
    expected = list(data.inputs) or [b for names in stats["bands"].values() for b in names]
    if expected != list(stats["inputs"]):
        shown = list(data.inputs) if data.inputs else f"empty (all bands: {expected})"
        raise InputError(f"{where}: chips were prepared with inputs {stats['inputs']} but data.inputs is "
                         f"{shown}; {rerun}")
    check_prepared_size(data, manifest, root, rerun)
    missing = [f"target:{t}" for t in data.targets if f"target:{t}" not in manifest.columns]
    missing += [f"image:{i}" for i in stats["bands"] if f"image:{i}" not in manifest.columns]
    if missing:
        raise InputError(f"{root / MANIFEST}: manifest has no column(s) {missing}; {rerun}")
    check_chip_files(manifest, root)


def check_chip_files(manifest: pd.DataFrame, root: Path) -> None:
    """Refuse a manifest that lists chip files which are gone (deleted after ``eoseg prepare``)."""
    columns = [c for c in manifest.columns if c.startswith(("image:", "target:"))]
    listed = [str(v) for c in columns for v in manifest[c].dropna()]
    gone = [name for name in listed if not (root / name).is_file()]
    if gone:
        raise InputError(f"{root / MANIFEST}: {len(gone)} of the {len(listed)} chip files it lists are missing "
                         f"(first: {root / gone[0]}); run the same `eoseg prepare` again to write them, or restore "
                         "the files")


def check_prepared_size(data: DataSpec, manifest: pd.DataFrame, root: Path, rerun: str) -> None:
    """Refuse chips cut at another ``data.chips.size`` (manifest ``size``) or ``data.format.size`` (the
    prepared ``config.yaml``) than ``data`` asks for: the model would silently train on other sizes."""
    sizes = sorted({int(s) for s in manifest["size"]}) if "size" in manifest.columns and len(manifest) else []
    if sizes and sizes != [data.chips.size]:
        shown = sizes[0] if len(sizes) == 1 else sizes
        raise InputError(f"{root / MANIFEST}: chips were prepared with data.chips.size={shown} but data.chips.size "
                         f"is {data.chips.size}; set data.chips.size={shown} or {rerun}")
    asked = getattr(data.format, "size", None)
    prepared_config = root / "config.yaml"
    if asked is None or not prepared_config.is_file():
        return
    prepared_format = ((yaml.safe_load(prepared_config.read_text()) or {}).get("data") or {}).get("format") or {}
    prepared = prepared_format.get("size")
    if prepared is not None and list(prepared) != list(asked):
        raise InputError(f"{prepared_config}: chips were prepared with data.format.size={list(prepared)} but "
                         f"data.format.size is {list(asked)}; set data.format.size={list(prepared)} or {rerun}")


class ChipDataset(Dataset):
    """Samples from the rows ``chips`` of the manifest of the prepared dataset at ``root``.

    Each item is ``{"image": float32 (N, H, W), "valid": bool (H, W), "targets": {head: tensor},
    "index": int}``. ``head_targets`` (from the task) maps the target chips to per-head targets;
    without it ``targets`` holds the target chips themselves (float32, NaN = ignore).

    An item is asked for by chip index, or by a draw ``(epoch, draw, chip index)`` of
    :class:`~eoseg.data.sampler.ChipSampler`; the augmentation of a draw is derived from ``(seed, epoch,
    draw)``, never from a global or per-worker random state (a plain index adds a draw of torch's RNG).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        chips: pd.DataFrame,
        stats: Mapping[str, Any],
        data: DataSpec,
        head_targets: HeadTargetFn | None = None,
        augment: Augment | None = None,
        seed: int = 0,
    ) -> None:
        self.root = Path(root)
        self.chips = chips.reset_index(drop=True)
        self.stats = dict(stats)
        self.bandmath = BandMath(self.stats["inputs"], self.stats["bands"], self.stats.get("scales"))
        self.typed_stats = DatasetStats.from_dict(self.stats)  # nodata per scene: each chip's own rule
        self.target_kinds = {name: spec.kind for name, spec in data.targets.items()}
        self.head_targets = head_targets
        self.augment = augment
        self._bands: dict[str, int] = {}
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.chips)

    def chip_id(self, index: int) -> str:
        return str(self.chips.at[index, "chip_id"])

    def _path(self, index: int, column: str) -> Path:
        return self.root / str(self.chips.at[index, column])

    def read_inputs(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(inputs float32 (N, H, W), valid bool (H, W))``: band math, normalisation, invalid pixels 0."""
        images, valid = {}, None
        scene = self.chips.at[index, "scene"] if "scene" in self.chips.columns else None
        for name in self.typed_stats.bands:
            nodata = self.typed_stats.nodata_of(name, scene)
            with rasterio.open(self._path(index, f"image:{name}")) as src:
                array = src.read()
            images[name] = array
            ok = valid_mask(array, nodata)
            valid = ok if valid is None else valid & ok
        return model_inputs(self.bandmath, images, valid, self.stats), valid

    def read_targets(self, index: int, shape: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
        """``{target name: float32 (bands, H, W)}`` with NaN where the chip says ignore / nodata.

        A row without a target chip (a mined negative, ``selftrain.negatives``) has an implicit zero target
        of ``shape``.
        """
        targets = {}
        for name, kind in self.target_kinds.items():
            rel = self.chips.at[index, f"target:{name}"] if f"target:{name}" in self.chips.columns else None
            if rel is None or (isinstance(rel, float) and np.isnan(rel)):
                if shape is None:
                    raise InputError(f"chip {self.chip_id(index)}: no target:{name} chip in the manifest")
                targets[name] = np.zeros((self.target_bands(name), *shape), dtype=np.float32)
                continue
            with rasterio.open(self._path(index, f"target:{name}")) as src:
                array = src.read().astype(np.float32)
                ignore = IGNORE if kind == "vector" else src.nodata
            if ignore is not None:
                array[~np.isfinite(array) | (array == np.float32(ignore))] = np.nan
            targets[name] = array
        return targets

    def target_bands(self, name: str) -> int:
        """Band count of target ``name`` (from its first chip in the manifest)."""
        if name not in self._bands:
            column = self.chips[f"target:{name}"].dropna()
            if column.empty:
                raise InputError(f"no chip of target {name!r} in the manifest: implicit zero targets need one")
            with rasterio.open(self.root / str(column.iloc[0])) as src:
                self._bands[name] = src.count
        return self._bands[name]

    def __getitem__(self, key: int | tuple[int, int, int]) -> dict[str, Any]:
        if isinstance(key, tuple | list):
            epoch, draw, index = (int(k) for k in key)
            augment_key: tuple[int, ...] = (self.seed, epoch, draw)
        else:  # a plain index (e.g. mixed labelled/pseudo batches): a fresh key from torch's RNG per access
            index = int(key)
            augment_key = (self.seed, index, int(torch.randint(2**31 - 1, ())))
        inputs, valid = self.read_inputs(index)
        targets = self.read_targets(index, valid.shape)
        if self.augment is not None:
            inputs, valid, targets = self.augment(inputs, valid, targets, seed=augment_key)
            inputs[:, ~valid] = 0.0
        for array in targets.values():
            array[:, ~valid] = np.nan
        heads = self.head_targets(targets) if self.head_targets is not None else targets
        return {
            "image": torch.from_numpy(np.ascontiguousarray(inputs)),
            "valid": torch.from_numpy(np.ascontiguousarray(valid)),
            # np.ascontiguousarray makes 0-d arrays 1-d: image-level class labels must stay scalars (B,)
            "targets": {k: torch.as_tensor(np.ascontiguousarray(v) if np.ndim(v) else v) for k, v in heads.items()},
            "index": index,
        }

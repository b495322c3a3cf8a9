"""Labelled + pseudo-labelled mixing (``selftrain.mix``): batch order, soft targets, weights, bad ratios."""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch
from lightning.pytorch.callbacks import Callback

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from training.chipdata import tiny_config, write_chips  # noqa: E402

from eoseg.cli import main  # noqa: E402
from eoseg.config.loader import config_to_dict, save_config, validate_config  # noqa: E402
from eoseg.data.mixing import MixedBatchSampler  # noqa: E402
from eoseg.errors import InputError  # noqa: E402
from eoseg.geo.raster import write_geotiff  # noqa: E402
from eoseg.training.train import train  # noqa: E402

torch.set_num_threads(1)


def soft_chips(root: Path) -> Path:
    """A prepared pseudo-labelled set: the synthetic binary chips with soft labels 0.1 / 0.9 (NaN = nodata)."""
    write_chips(root, "binary", scenes=1, per_scene=3, seed=3)
    manifest = pd.read_parquet(root / "manifest.parquet")
    for rel in manifest["target:mask"]:
        with rasterio.open(root / rel) as src:
            mask, crs, transform = src.read(), src.crs, src.transform
        soft = np.where(mask == 255, np.nan, np.where(mask > 0, 0.9, 0.1)).astype(np.float32)
        write_geotiff(root / rel, soft, crs, transform, float("nan"))
    raw = config_to_dict(validate_config({"data": {"root": str(root), "targets": {
        "mask": {"kind": "raster", "soft": True}}, "chips": {"size": 32, "overlap": 0}, "folds": 1}}))
    save_config(validate_config(raw), root / "config.yaml")
    return root


def _sources(batches, offset):
    return ["".join("L" if index < offset else "P" for _, _, index in batch) for batch in batches]


def test_sampler_every_k_and_share_per_batch() -> None:
    every = MixedBatchSampler(8, 3, batch_size=2, seed=0, every=2)
    epoch = list(every)
    assert _sources(epoch, 8) == ["LL", "LL", "PP", "LL", "LL", "PP"] and len(every) == 6
    keys = [key for batch in epoch for key in batch]
    assert sorted(i for _, _, i in keys if i < 8) == list(range(8))  # one pass of the labelled chips
    pseudo = [i for _, _, i in keys if i >= 8]
    assert sorted(pseudo[:3]) == [8, 9, 10] and pseudo[3] in (8, 9, 10)  # whole permutations, one after another
    assert sorted(d for _, d, _ in keys) == list(range(12))  # every draw of the epoch has its own key
    assert {e for e, _, _ in keys} == {0}
    few = MixedBatchSampler(6, 3, batch_size=2, seed=0, every=5)  # fewer labelled batches than every
    assert _sources(list(few), 6) == ["LL", "LL", "LL", "PP"] and len(few) == 4  # the pseudo set is still used
    share = MixedBatchSampler(8, 3, batch_size=4, seed=0, share=0.25)
    assert _sources(list(share), 8) == ["LLLP", "LLLP"] and len(share) == 2  # 3 + 1 per batch, the rest dropped


def test_sampler_is_a_function_of_seed_and_epoch_and_resumes_at_any_batch() -> None:
    first = MixedBatchSampler(8, 3, batch_size=2, seed=5, every=2)
    first.set_epoch(1)
    epoch1 = list(first)
    assert epoch1 != MixedBatchSampler(8, 3, batch_size=2, seed=5, every=2).batches(0)
    assert epoch1 == MixedBatchSampler(8, 3, batch_size=2, seed=5, every=2).batches(1)
    resumed = MixedBatchSampler(8, 3, batch_size=2, seed=5, every=2)
    resumed.load_state_dict(first.state_at(1, 4))
    assert list(resumed) == epoch1[4:]
    assert first.state_at(1, len(first)) == {"epoch": 2, "position": 0}
    ranks = [MixedBatchSampler(8, 3, batch_size=2, seed=5, every=2, num_replicas=2, rank=r) for r in (0, 1)]
    for sampler in ranks:
        sampler.set_epoch(1)
    assert [b for pair in zip(*map(list, ranks), strict=True) for b in pair] == epoch1  # DDP: every other batch


class Sources(Callback):
    def __init__(self) -> None:
        self.batches: list[tuple[str, ...]] = []
        self.pseudo_values: set[float] = set()

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.batches.append(tuple(batch["parts"]))
        if "pseudo" in batch["parts"]:
            target = batch["parts"]["pseudo"]["targets"]["mask"]
            self.pseudo_values |= {round(float(v), 3) for v in torch.unique(target[torch.isfinite(target)])}


@pytest.mark.parametrize(("mix", "expected"), [
    ({"every": 2}, [("labelled",), ("labelled",), ("pseudo",)]),
    ({"share": 0.5}, [("labelled", "pseudo")] * 4),
])
def test_training_mixes_the_sets_with_their_own_loss(tmp_path, mix, expected) -> None:
    labelled = write_chips(tmp_path / "labelled", "binary")
    pseudo = soft_chips(tmp_path / "pseudo")
    config = tiny_config(labelled, "binary", tmp_path / "runs", {
        "selftrain.mix": {"root": str(pseudo), "weight": 0.5, "loss": {"mask": {"kl": 1.0}}, **mix}})
    sources = Sources()
    train(config, progress=False, report=False, callbacks=[sources])
    assert sources.batches == expected  # 8 labelled training chips (folds 1, 2), batch size 4
    assert sources.pseudo_values == {0.1, 0.9}  # soft labels reach the loss as probabilities
    logged = pd.read_csv(tmp_path / "runs" / config.name / "metrics.csv").columns
    assert {"train/pseudo/mask/kl", "train/labelled/mask/bce", "train/labelled/mask/dice"} <= set(logged)


@pytest.mark.parametrize(("override", "message"), [
    ("selftrain.mix.share=1.5", r"selftrain.mix.share: Input should be less than 1 \(got 1.5\)"),
    ("selftrain.mix.every=0", r"selftrain.mix.every: Input should be greater than or equal to 1 \(got 0\)"),
    ("selftrain.mix.weight=-1", r"selftrain.mix.weight: Input should be greater than 0 \(got -1\)"),
    ("selftrain.mix.share=0.1", r"selftrain.mix.share=0.1: with train.batch_size=4 that is 0 pseudo-labelled "
                                r"sample\(s\) per batch; it must leave at least one of each kind \(1..3\)"),
])
def test_mixing_ratio_out_of_range_is_one_line_error(tmp_path, capsys, override, message) -> None:
    labelled = write_chips(tmp_path / "labelled", "binary", scenes=2, per_scene=2)
    pseudo = soft_chips(tmp_path / "pseudo")
    path = save_config(tiny_config(labelled, "binary", tmp_path / "runs", {"data.folds": 2}), tmp_path / "c.yaml")
    before = digest(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(path), f"selftrain.mix.root={pseudo}", override, "--quiet"])
    assert exit_info.value.code == 2
    raw = capsys.readouterr().err
    assert raw.count("\n") == 1 and raw.startswith("error: ") and "Traceback" not in raw, raw  # one line
    err = " ".join(raw.split())
    assert re.search(message, err), err
    assert digest(tmp_path) == before  # chips, pseudo chips and config untouched, no run folder
    assert not (tmp_path / "runs").exists()


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_pseudo_set_with_other_bands_is_refused(tmp_path) -> None:
    labelled = write_chips(tmp_path / "labelled", "binary", inputs=["image_1", "image_2"])
    pseudo = soft_chips(tmp_path / "pseudo")
    config = tiny_config(labelled, "binary", tmp_path / "runs", {
        "data.inputs": ["image_1", "image_2"], "selftrain.mix": {"root": str(pseudo)}})
    before = digest(tmp_path)
    with pytest.raises(InputError, match=r"selftrain.mix.root=.*pseudo: pseudo-labelled chips have inputs "
                                        r"\['image_1', 'image_2', 'image_3'\] but the labelled chips have"):
        train(config, progress=False, report=False)
    assert digest(tmp_path) == before and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_sigint_mid_epoch_then_resume_is_bit_identical_with_mixing(tmp_path) -> None:
    """issue 12: a mixed run stopped by SIGINT mid-epoch (a loader worker reading ahead) resumes exactly."""
    from training.test_resume_signal import OVERRIDES, SigintAt

    from eoseg.models.checkpoint import read_checkpoint
    from eoseg.training.interrupt import TrainingInterrupted

    labelled = write_chips(tmp_path / "labelled", "binary")
    pseudo = soft_chips(tmp_path / "pseudo")
    overrides = {**OVERRIDES, "train.num_workers": 1, "train.epochs": 1,
                 "selftrain.mix": {"root": str(pseudo), "every": 2, "loss": {"mask": {"kl": 1.0}}}}
    whole = train(tiny_config(labelled, "binary", tmp_path / "a", overrides), progress=False, report=False)
    config = tiny_config(labelled, "binary", tmp_path / "b", overrides)
    with pytest.raises(TrainingInterrupted, match=r"training stopped at epoch 0, step 4; "):
        train(config, progress=False, report=False, callbacks=[SigintAt(3)])  # 6 batches per epoch: 4 + 2 pseudo
    saved = read_checkpoint(tmp_path / "b" / config.name / "checkpoints" / "last.ckpt")
    assert saved["ChipDataModule"]["sampler"] == {"epoch": 0, "position": 4}  # the 5th batch is next
    resumed = train(config, resume=True, progress=False, report=False)
    assert resumed.steps == whole.steps == 6
    a, b = (read_checkpoint(r.last_checkpoint)["state_dict"] for r in (whole, resumed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [h["train/loss"] for h in resumed.history] == [h["train/loss"] for h in whole.history]
    assert [h["val/iou"] for h in resumed.history] == [h["val/iou"] for h in whole.history]

"""Chip dataset, augmentation, sampler, fold split and per-head targets."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch

from eoseg.config.schema import AugmentSpec, SamplerSpec
from eoseg.data.augment import Augment
from eoseg.data.datamodule import ChipDataModule, split_chips, split_folds
from eoseg.data.dataset import ChipDataset
from eoseg.data.sampler import ChipSampler, chip_weights, weighted_sampler
from eoseg.errors import ConfigError, InputError
from eoseg.tasks import targets as T
from eoseg.tasks.kinds import build_task_kind

from .chipdata import NODATA_COLUMNS, tiny_config, write_chips


@pytest.fixture(scope="module")
def binary_chips(tmp_path_factory):
    return write_chips(tmp_path_factory.mktemp("binary") / "chips", "binary")


def test_sample_is_normalised_and_nodata_is_ignored(binary_chips, tmp_path):
    config = tiny_config(binary_chips, "binary", tmp_path)
    stats = json.loads((binary_chips / "stats.json").read_text())
    manifest = pd.read_parquet(binary_chips / "manifest.parquet")
    kind = build_task_kind(config)
    dataset = ChipDataset(binary_chips, manifest, stats, config.data, kind.head_targets)
    item = dataset[0]  # scene0, chip 0: 4 nodata columns on the left
    with rasterio.open(binary_chips / manifest.at[0, "image:image"]) as src:
        raw = src.read().astype(np.float64)
    ch = stats["channels"][1]
    assert item["image"][1, 10, 20].item() == pytest.approx((raw[1, 10, 20] - ch["mean"]) / ch["std"], rel=1e-5)
    assert not item["valid"][:, :NODATA_COLUMNS].any() and item["valid"][:, NODATA_COLUMNS:].all()
    assert (item["image"][:, :, :NODATA_COLUMNS] == 0).all()
    mask = item["targets"]["mask"]
    assert mask.shape == (1, 32, 32) and torch.isnan(mask[:, :, :NODATA_COLUMNS]).all()
    assert set(torch.unique(mask[:, :, NODATA_COLUMNS:]).tolist()) <= {0.0, 1.0}


def test_augmentation_moves_image_and_targets_together(binary_chips, tmp_path):
    config = tiny_config(binary_chips, "binary", tmp_path)
    stats = json.loads((binary_chips / "stats.json").read_text())
    manifest = pd.read_parquet(binary_chips / "manifest.parquet")
    augment = Augment([AugmentSpec(name="Transpose", p=1.0), AugmentSpec(name="HorizontalFlip", p=1.0)], ["mask"])
    plain = ChipDataset(binary_chips, manifest, stats, config.data)[0]
    moved = ChipDataset(binary_chips, manifest, stats, config.data, augment=augment)[0]
    expected = lambda a: torch.flip(a.transpose(-1, -2), dims=[-1])  # noqa: E731
    assert torch.equal(moved["image"], expected(plain["image"]))
    assert torch.equal(moved["valid"], expected(plain["valid"]))
    assert torch.allclose(moved["targets"]["mask"], expected(plain["targets"]["mask"]), equal_nan=True)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("HorizontalFlip", (-0.6, 0.8)), ("VerticalFlip", (0.6, -0.8)), ("Transpose", (0.8, 0.6))],
)
def test_direction_rules_of_the_geopose_recipe(name, expected):
    field = np.empty((2, 16, 16), np.float32)
    field[0], field[1] = 0.6, 0.8
    augment = Augment([AugmentSpec(name=name, p=1.0)], ["flow"], directions=["flow"])
    _, _, out = augment(np.zeros((1, 16, 16), np.float32), np.ones((16, 16), bool), {"flow": field}, seed=0)
    assert out["flow"][:, 5, 7] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_direction_follows_the_image_under_d4(seed):
    """A vector pointing from the centre to a bright pixel still points to it after any D4 transform."""
    size, (row, col) = 16, (3, 12)
    image = np.zeros((1, size, size), np.float32)
    image[0, row, col] = 1.0
    offset = lambda r, c: np.array([c + 0.5 - size / 2, r + 0.5 - size / 2])  # noqa: E731  (x: columns, y: rows)
    field = np.broadcast_to(offset(row, col)[:, None, None], (2, size, size)).astype(np.float32).copy()
    specs = [AugmentSpec(name=n, p=0.5) for n in ("HorizontalFlip", "VerticalFlip", "RandomRotate90", "Transpose")]
    augment = Augment(specs, ["flow"], directions=["flow"])
    out_image, _, out = augment(image, np.ones((size, size), bool), {"flow": field}, seed=seed)
    (r, c), = np.argwhere(out_image[0] == 1.0)
    assert out["flow"][:, 0, 0] == pytest.approx(offset(r, c), abs=1e-5)


def test_unknown_augmentation_is_a_config_error():
    msg = (r"data.augment\[0\].name='HorizontalFlipp' is not a known albumentations transform; "
           r"did you mean 'HorizontalFlip'")
    with pytest.raises(ConfigError, match=msg):
        Augment([AugmentSpec(name="HorizontalFlipp")], [])


def test_sampler_weights_share_draws_between_empty_and_nonempty_chips():
    manifest = pd.DataFrame({"frac:mask:0": [1.0, 0.9, 0.5, 0.8], "frac:mask:1": [0.0, 0.1, 0.5, 0.2]})
    weights = chip_weights(manifest, SamplerSpec(empty_weight=0.4, nonempty_weight=0.6))
    assert weights == pytest.approx([0.4, 0.2, 0.2, 0.2])  # 1 empty chip gets 0.4, 3 others share 0.6
    sampler = weighted_sampler(manifest, SamplerSpec(empty_weight=0.4, nonempty_weight=0.6), seed=0)
    sampler.num_samples = 20000
    draws = np.bincount([index for _, _, index in sampler], minlength=4) / 20000
    assert draws[0] == pytest.approx(0.4, abs=0.015)


def test_chip_sampler_splits_across_processes_and_resumes_at_any_draw():
    whole = list(ChipSampler(10, seed=3))
    assert sorted(i for _, _, i in whole) == list(range(10)) and [d for _, d, _ in whole] == list(range(10))
    ranks = [list(ChipSampler(10, seed=3, num_replicas=3, rank=r)) for r in range(3)]
    assert [len(r) for r in ranks] == [4, 4, 4]  # padded to 12 draws, 4 per process, every chip drawn
    assert {i for r in ranks for _, _, i in r} == set(range(10))
    assert sorted(d for r in ranks for _, d, _ in r) == list(range(12))
    sampler = ChipSampler(10, seed=3)
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert [i for *_, i in epoch1] != [i for *_, i in whole] and {e for e, _, _ in epoch1} == {1}
    resumed = ChipSampler(10, seed=3)
    resumed.load_state_dict(resumed.state_at(1, 6))
    resumed.set_epoch(1)  # Lightning sets the same epoch again: the position is kept
    assert list(resumed) == epoch1[6:]
    assert resumed.state_at(1, 10) == {"epoch": 2, "position": 0}  # a finished epoch resumes at the next


def test_sampler_target_must_exist():
    with pytest.raises(ConfigError, match="data.sampler.target: the manifest has no target 'roads'"):
        chip_weights(pd.DataFrame({"frac:mask:0": [1.0]}), SamplerSpec(target="roads"))


def test_head_targets_by_hand():
    nan = np.nan
    chip = np.array([[[0, 1, 4], [nan, 2, 0]]], np.float32)
    assert T.damage_index(chip, 4, 255, "d").tolist() == [[255, 0, 3], [255, 1, 255]]
    assert T.class_index(chip, 2, 255, "m", binary=True).tolist() == [[0, 1, 1], [255, 1, 0]]
    labels = T.multilabel_channels(chip, 2, "c")
    assert labels[0].tolist()[0] == [0, 1, 0] and labels[1].tolist()[1][1:] == [1, 0]
    assert np.isnan(labels[:, 1, 0]).all()
    field = np.array([[[3, nan]], [[4, nan]]], np.float32)
    assert T.mean_direction(field, "f") == pytest.approx([0.6, 0.8])
    with pytest.raises(InputError, match="class index 4 found but the head has 3 channels"):
        T.class_index(chip, 3, 255, "mask")


def test_fold_split_and_out_of_range(binary_chips, tmp_path):
    manifest = pd.read_parquet(binary_chips / "manifest.parquet")
    train, val = split_folds(manifest, 1)
    assert set(val["scene"]) == {"scene1"} and set(train["scene"]) == {"scene0", "scene2"}
    config = tiny_config(binary_chips, "binary", tmp_path, {"data.folds": 5, "data.fold": 4})
    with pytest.raises(ConfigError, match=r"data.fold=4 is out of range: .*manifest.parquet has folds \[0, 1, 2\]"):
        ChipDataModule(config)


def test_missing_manifest_and_other_inputs(binary_chips, tmp_path):
    with pytest.raises(InputError, match=r"manifest.parquet: chip manifest not found; run `eoseg prepare`"):
        ChipDataModule(tiny_config(tmp_path / "nowhere", "binary", tmp_path))
    config = tiny_config(binary_chips, "binary", tmp_path, {"data.inputs": ["image_1", "image_2"]})
    with pytest.raises(InputError, match=r"stats.json: chips were prepared with inputs \['image_1', 'image_2', "
                                         r"'image_3'\] but data.inputs is \['image_1', 'image_2'\]; re-run"):
        ChipDataModule(config)
    config = tiny_config(binary_chips, "binary", tmp_path, {"data.bands": {"image": ["red", "green", "blue"]}})
    with pytest.raises(InputError, match=r"image 'image' was prepared with bands \['image_1', 'image_2', 'image_3'\]"):
        ChipDataModule(config)


def test_train_refuses_chips_of_another_size_in_one_line(binary_chips, tmp_path, capsys):
    import hashlib
    import shutil

    import yaml

    from eoseg.cli import main
    from eoseg.config.loader import save_config

    def hashes(root):
        return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}

    config = save_config(tiny_config(binary_chips, "binary", tmp_path / "runs"), tmp_path / "tiny.yaml")
    before = hashes(binary_chips)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(config), "data.chips.size=64"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.count("\n") == 0
    assert err.endswith("manifest.parquet: chips were prepared with data.chips.size=32 but data.chips.size is 64; set "
                        "data.chips.size=32 or re-run `eoseg prepare` with this config or set data.root to a dataset "
                        "prepared with it")
    assert hashes(binary_chips) == before and not (tmp_path / "runs").exists()

    # data.format.size (clouds: the size images are resized to) is read from the prepared config.yaml
    root = tmp_path / "clouds-chips"
    shutil.copytree(binary_chips, root)
    prepared = {"data": {"format": {"name": "clouds", "size": [32, 48]}, "chips": {"size": 32}}}
    (root / "config.yaml").write_text(yaml.safe_dump(prepared))
    asked = tiny_config(root, "binary", tmp_path / "runs", {"data.format": {"name": "clouds", "size": [64, 96]}})
    with pytest.raises(InputError, match=r"config.yaml: chips were prepared with data.format.size=\[32, 48\] but "
                                         r"data.format.size is \[64, 96\]; set data.format.size=\[32, 48\] or re-run"):
        ChipDataModule(asked)
    same = {"data.format": {"name": "clouds", "size": [32, 48]}}
    ChipDataModule(tiny_config(root, "binary", tmp_path / "runs", same))


def test_image_level_softmax_target_is_one_class_per_sample(binary_chips, tmp_path):
    """The buildings preset's heads through the dataset and the default collate: image_class is ``(B,)``."""
    heads = {"mask": {"channels": 2, "activation": "softmax"},
             "dice": {"channels": 1, "activation": "sigmoid", "target": "mask"},
             "image_class": {"kind": "image_class", "channels": 2, "activation": "softmax", "target": "mask"}}
    config = tiny_config(binary_chips, "binary", tmp_path, {
        "model.heads": heads, "loss": {"mask": {"focal": 1.0}, "dice": {"dice": 0.1}, "image_class": {"focal": 1.0}}})
    manifest = pd.read_parquet(binary_chips / "manifest.parquet")
    stats = json.loads((binary_chips / "stats.json").read_text())
    dataset = ChipDataset(binary_chips, manifest, stats, config.data, build_task_kind(config).head_targets)
    batch = torch.utils.data.default_collate([dataset[i] for i in range(4)])
    has_object = [bool((manifest.at[i, "frac:mask:1"]) > 0) for i in range(4)]
    assert batch["targets"]["image_class"].shape == (4,)
    assert batch["targets"]["image_class"].tolist() == [int(v) for v in has_object]
    assert batch["targets"]["mask"].shape == (4, 32, 32) and batch["targets"]["dice"].shape == (4, 1, 32, 32)


def test_validation_scenes_by_name_and_training_on_every_scene(binary_chips, tmp_path):
    manifest = pd.read_parquet(binary_chips / "manifest.parquet")
    config = tiny_config(binary_chips, "binary", tmp_path, {"data.val_scenes": ["scene2"]})
    train, val = split_chips(config.data, manifest)
    assert set(val["scene"]) == {"scene2"} and set(train["scene"]) == {"scene0", "scene1"}
    with_regions = manifest.assign(region=["north"] * 4 + ["south"] * 8)
    config = tiny_config(binary_chips, "binary", tmp_path, {"data.val_regions": ["north"]})
    train, val = split_chips(config.data, with_regions)
    assert set(val["scene"]) == {"scene0"} and len(train) == 8
    config = tiny_config(binary_chips, "binary", tmp_path, {"data.val_scenes": ["scene2"], "data.train_on_val": True})
    with pytest.warns(UserWarning, match=r"data.train_on_val=true: the validation scenes \['scene2'\] are also "
                                         r"trained on, so val/\* scores measure fit"):
        train, val = split_chips(config.data, manifest)
    assert len(train) == len(manifest) and set(val["scene"]) == {"scene2"}
    config = tiny_config(binary_chips, "binary", tmp_path, {"data.train_on_val": True, "data.fold": 1})
    with pytest.warns(UserWarning, match="also trained on"):
        train, val = split_chips(config.data, manifest)
    assert len(train) == len(manifest) and set(val["scene"]) == {"scene1"}


def test_validation_scene_names_must_exist(binary_chips, tmp_path):
    config = tiny_config(binary_chips, "binary", tmp_path, {"data.val_scenes": ["scene3"]})
    with pytest.raises(ConfigError, match=r"data.val_scenes: .*manifest.parquet has no scene 'scene3'; did you mean "
                                          r"'scene2'\? valid: scene0, scene1, scene2$"):
        ChipDataModule(config)
    config = tiny_config(binary_chips, "binary", tmp_path, {"data.val_regions": ["north"]})
    with pytest.raises(ConfigError, match=r"data.val_regions: .* has no region 'north'; valid: none"):
        ChipDataModule(config)
    config = tiny_config(binary_chips, "binary", tmp_path, {"data.val_scenes": ["scene0", "scene1", "scene2"]})
    with pytest.raises(ConfigError, match="name every scene of .* nothing is left to train on; name fewer scenes, "
                                          "or set data.train_on_val=true"):
        ChipDataModule(config)

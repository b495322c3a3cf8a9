"""The real SpaceNet tile: prepared with `eoseg prepare`'s library function and trained a few steps."""

from __future__ import annotations

import math

import rasterio
from rasterio.windows import Window

from eoseg.config.loader import validate_config
from eoseg.data.prepare import prepare
from eoseg.training.checkpoint import load_bundle
from eoseg.training.train import train


def test_spacenet_tile_prepares_and_trains(shared_data, tmp_path):
    """The tile is cut into a west and an east scene so that fold 0 validates on the other half."""
    folder = shared_data / "spacenet-atlanta"
    tile, labels = folder / "atlanta_pan.tif", folder / "atlanta_buildings.geojson"
    scenes = []
    with rasterio.open(tile) as src:
        for i, window in enumerate([Window(0, 0, 450, 900), Window(450, 0, 450, 900)]):
            profile = {**src.profile, "width": window.width, "height": window.height,
                       "transform": src.window_transform(window)}
            path = tmp_path / f"half{i}.tif"
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(src.read(window=window))
            scenes.append({"id": f"atlanta-{i}", "images": {"image": str(path)}, "targets": {"mask": str(labels)}})
    config = validate_config({
        "name": "atlanta",
        "data": {"root": str(tmp_path / "chips"), "scenes": scenes, "targets": {"mask": {"kind": "vector"}},
                 "chips": {"size": 64, "overlap": 0}, "folds": 2},
        "model": {"arch": "Unet", "encoder": "resnet18",
                  "arch_params": {"encoder_depth": 3, "decoder_channels": [16, 16, 8]}},
        "loss": {"mask": {"bce": 1.0, "dice": 1.0}},
        "train": {"out": str(tmp_path / "runs"), "epochs": 1, "batch_size": 4, "num_workers": 0,
                  "accelerator": "cpu", "devices": 1, "tensorboard": False,
                  "limit_train_batches": 4, "limit_val_batches": 4},
    })
    prepared = prepare(config, progress=False)
    assert prepared.chips > 20 and prepared.scenes == 2
    result = train(config, progress=False, report=False)
    assert result.steps == 4 and math.isfinite(result.history[0]["train/loss"])
    bundle = load_bundle(result.last_checkpoint)
    assert bundle.inputs == ["image"] and bundle.stats["dtypes"] == {"image": "uint16"}

"""``eoseg self-train`` on the real SpaceNet tile, as a user runs it: two labelled squares, one unlabelled."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import rasterio
import torch
import yaml
from rasterio.windows import Window

from eoseg.cli import main

torch.set_num_threads(1)


@pytest.mark.slow
def test_self_train_on_the_spacenet_tile(shared_data, tmp_path, capsys) -> None:
    folder = shared_data / "spacenet-atlanta"
    labels = folder / "atlanta_buildings.geojson"
    strips = []
    with rasterio.open(folder / "atlanta_pan.tif") as src:  # 900 x 900 uint16 panchromatic, nodata 0
        for i in range(3):
            window = Window(300 * i, 0, 300, 300)  # the northern third, cut in three
            path = tmp_path / f"strip{i}.tif"
            with rasterio.open(path, "w", **{**src.profile, "width": 300, "height": 300,
                                             "transform": src.window_transform(window)}) as dst:
                dst.write(src.read(window=window))
            strips.append(path)
    config = tmp_path / "atlanta.yaml"
    config.write_text(yaml.safe_dump({
        "name": "atlanta",
        "data": {"root": str(tmp_path / "chips"), "targets": {"mask": {"kind": "vector"}},
                 "scenes": [{"id": f"strip{i}", "images": {"image": str(strips[i])},
                             "targets": {"mask": str(labels)}} for i in (0, 1)],
                 "chips": {"size": 64, "overlap": 0}, "folds": 2},
        "model": {"arch": "Unet", "encoder": "resnet18",
                  "arch_params": {"encoder_depth": 3, "decoder_channels": [16, 16, 8]}},
        "loss": {"mask": {"bce": 1.0, "dice": 1.0}},
        "train": {"out": str(tmp_path / "runs"), "epochs": 1, "batch_size": 4, "num_workers": 0,
                  "accelerator": "cpu", "devices": 1, "tensorboard": False, "limit_train_batches": 3,
                  "limit_val_batches": 2},
        "predict": {"window": 128, "tta": "none", "device": "cpu"},
        "selftrain": {"mix": {"every": 5, "loss": {"mask": {"kl": 1.0}}}},
    }))
    for args in (["prepare", str(config), "--quiet"],
                 ["self-train", str(config), "--unlabelled", str(strips[2]), "--rounds", "1", "-q"]):
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        assert exit_info.value.code == 0, capsys.readouterr().err
    out = tmp_path / "runs" / "atlanta-selftrain"
    state = json.loads((out / "rounds.json").read_text())
    assert [r["round"] for r in state] == [0, 1] and all(0.0 <= r["val/iou"] <= 1.0 for r in state)
    pseudo = out / "pseudo" / "round1"
    with rasterio.open(strips[2]) as image, rasterio.open(pseudo / "labels" / "strip2.soft.tif") as soft:
        assert (soft.crs, soft.transform, soft.shape) == (image.crs, image.transform, image.shape)
        assert soft.dtypes[0] == "float32"
    kept = pd.read_parquet(pseudo / "chips" / "manifest.parquet")
    assert state[1]["pseudo_chips"] == len(kept) > 0
    assert json.loads((pseudo / "chips" / "stats.json").read_text())["dtypes"] == {"image": "uint16"}
    assert "Self-training rounds" in (out / "runs" / "round1" / "report.html").read_text()

"""The buildings recipe (Open Cities / SpaceNet) end to end, as docs/recipes/buildings.md walks it.

SpaceNet folder -> ``prepare`` with ``data.format.name=spacenet`` -> ``train buildings`` (the preset as shipped: focal
softmax + dice sigmoid + image-level heads, chips at scales 0.5/1/2; only sizes and epochs shrunk) ->
``predict`` with two checkpoints (ensemble) and the preset's D4 x two-scale TTA -> ``vectorize`` to a
SpaceNet submission CSV -> ``evaluate`` with the official SpaceNet rules.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import rasterio
import torch

from ..conftest import run_cli
from .data import AOI, make_spacenet

torch.set_num_threads(1)

SIZES = ["data.chips.size=64", "data.chips.overlap=16", "data.folds=2", "model.encoder=resnet18"]
SHORT = ["train.epochs=2", "train.limit_train_batches=6", "train.limit_val_batches=2", "train.num_workers=0",
         "train.accelerator=cpu"]


@pytest.mark.slow
def test_buildings_recipe_from_spacenet_folder_to_official_score(tmp_path, capsys):
    data = make_spacenet(tmp_path / "spacenet")
    chips, runs, pred = tmp_path / "chips", tmp_path / "runs", tmp_path / "pred"
    run_cli(["prepare", "buildings", "--scenes", data["train"], "--out", chips, "data.format.name=spacenet",
             *SIZES[:3], "--quiet"])
    manifest = pd.read_parquet(chips / "manifest.parquet")
    assert sorted(manifest["scale"].unique()) == [0.5, 1.0, 2.0]  # the preset's multi-scale chips
    assert set(manifest["region"]) == {AOI} and set(manifest["scene"]) == {f"{AOI}_img1", f"{AOI}_img2"}

    run_cli(["train", "buildings", f"data.root={chips}", f"train.out={runs}", *SIZES, *SHORT])
    checkpoints = runs / "buildings" / "checkpoints"
    image = data["test"] / f"RGB-PanSharpen_{AOI}_img3.tif"
    run_cli(["predict", checkpoints / "best.ckpt", checkpoints / "last.ckpt", image, "--out", pred,
             "predict.window=128", "-q"])
    name = image.stem
    config = (pred / "config.yaml").read_text()
    assert "tta: d4" in config and "- 0.75" in config  # the preset's TTA ran
    with rasterio.open(pred / f"{name}.prob.tif") as prob, rasterio.open(image) as src:
        assert (prob.crs, prob.transform, prob.count) == (src.crs, src.transform, 2)
    heads = json.loads((pred / f"{name}.heads.json").read_text())
    assert heads["image_class"]["mean"] == pytest.approx([1 - heads["image_class"]["mean"][1],
                                                          heads["image_class"]["mean"][1]])

    submission = tmp_path / "submission.csv"
    run_cli(["vectorize", pred / f"{name}.mask.tif", "--prob", pred / f"{name}.prob.tif", "--out", submission])
    table = pd.read_csv(submission)
    assert list(table.columns) == ["ImageId", "BuildingId", "PolygonWKT_Pix", "Confidence"]
    assert set(table["ImageId"]) == {f"{AOI}_img3"}

    metrics = tmp_path / "metrics.json"
    capsys.readouterr()
    run_cli(["evaluate", submission, "--truth", data["truth"], "--out", metrics])
    assert "SpaceNet rules: IoU > 0.5" in capsys.readouterr().out
    objects = json.loads(metrics.read_text())["objects"]
    truth = pd.read_csv(data["truth"])
    overall = objects["overall"]
    assert overall["tp"] + overall["fn"] <= len(truth) and overall["tp"] + overall["fp"] <= len(table)
    assert list(objects["per_aoi"]) == [AOI] and 0.0 <= overall["f1"] <= 1.0
    print(f"buildings recipe: SpaceNet F1 {overall['f1']:.3f} ({overall})")

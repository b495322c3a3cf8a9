"""The buildings recipe (Open Cities / SpaceNet) end to end, as docs/recipes/buildings.md walks it.

SpaceNet folder -> ``prepare`` with ``data.format.name=spacenet`` -> ``train buildings`` (the preset as shipped: focal
softmax + dice sigmoid + image-level heads, chips at scales 0.5/1/2; only sizes and epochs shrunk) ->
``thresholds`` on the validation tile's prediction (the seed tuned its threshold on validation) -> ``predict``
the held-out tile with two checkpoints (ensemble), the preset's D4 x two-scale TTA and the tuned ``--post`` ->
``vectorize`` to a SpaceNet submission CSV -> ``evaluate`` with the official SpaceNet rules.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import rasterio
import torch
import yaml

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
    models = [checkpoints / "best.ckpt", checkpoints / "last.ckpt"]

    # the threshold that maximises IoU on the validation tile (fold 0), as the seed tuned its 0.56
    (val_id,) = manifest.loc[manifest["fold"] == 0, "scene"].unique()
    val_image = data["train"] / "RGB-PanSharpen" / f"RGB-PanSharpen_{val_id}.tif"
    run_cli(["predict", *models, val_image, "--out", tmp_path / "val", "predict.window=128", "-q"])
    post = tmp_path / "post.yaml"
    run_cli(["thresholds", tmp_path / "val" / f"{val_image.stem}.prob.tif", "--truth",
             data["train"] / "geojson" / "buildings" / f"buildings_{val_id}.geojson", "--config", "buildings",
             "--thresholds", "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,0.95", "--out", post])
    tuned = yaml.safe_load(post.read_text())["post"]
    val_iou = float(post.read_text().split("iou ")[1].split()[0])

    image = data["test"] / f"RGB-PanSharpen_{AOI}_img3.tif"
    run_cli(["predict", *models, image, "--out", pred, "predict.window=128", "--post", post, "-q"])
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

    # Open Cities' own metric: pixel IoU of the building class on the held-out tile
    pixel_metrics = tmp_path / "pixel.json"
    run_cli(["evaluate", pred / f"{name}.mask.tif", "--truth", data["truth_polygons"], "--no-objects",
             "--out", pixel_metrics])
    pixel = json.loads(pixel_metrics.read_text())["pixel"]
    iou = pixel["per_class"]["building"]["iou"]  # the mask names its classes
    print(f"buildings recipe: validation IoU {val_iou:.3f} at threshold {tuned['threshold']}; held-out pixel IoU "
          f"{iou:.3f}; SpaceNet F1 {overall['f1']:.3f} ({overall})")
    # measured on the shared 2-core machine: validation IoU 0.48-0.49 at threshold 0.3 (calling every pixel a
    # building gives 0.11); the held-out tile's 3 buildings give SpaceNet F1 0 or 0.29 (one match) depending on
    # which checkpoint validation picks, so only the pixel IoUs get floors
    assert val_iou > 0.3 and iou > 0.2  # held-out: 0.31 measured, every pixel a building: 0.14

"""The sar-buildings recipe (UNOSAT) end to end on the real Sen1Floods11 Sentinel-1 chip, as
docs/recipes/sar-buildings.md walks it.

City folders with separate VV / VH files per acquisition (the chip is in dB: ``data.scale`` declares it)
-> ``prepare`` (the preset reads the layout; folds by city) -> ``train sar-buildings`` (the preset as
shipped: dB band math, FPN, CE + 2 x Jaccard, target-weighted sampler; only sizes and epochs shrunk) ->
``predict`` each acquisition with two checkpoints -> ``ensemble --mode vote`` across the models, then
across the acquisitions of each city -> polygons per city -> pixel F1 against the city's footprints.
"""

from __future__ import annotations

import json

import geopandas as gpd
import pandas as pd
import pytest
import rasterio
import torch

from ..conftest import folder_hashes, run_cli
from .data import CITIES, DATES, make_unosat

torch.set_num_threads(1)

DB = ["data.scale.vv=db", "data.scale.vh=db"]
SIZES = ["data.chips.size=64", "data.chips.overlap=0", "data.folds=2", "model.encoder=resnet18"]
SHORT = ["train.epochs=10", "train.limit_train_batches=4", "train.limit_val_batches=2", "train.num_workers=0",
         "train.accelerator=cpu"]


@pytest.mark.slow
def test_sar_buildings_recipe_on_the_real_s1_chip(shared_data, tmp_path):
    cities = make_unosat(shared_data, tmp_path / "unosat")
    chips, runs, pred = tmp_path / "chips", tmp_path / "runs", tmp_path / "pred"
    run_cli(["prepare", "sar-buildings", "--scenes", tmp_path / "unosat", "--out", chips, *DB, *SIZES[:3], "--quiet"])
    manifest = pd.read_parquet(chips / "manifest.parquet")
    assert manifest.groupby("region")["fold"].nunique().tolist() == [1, 1]  # folds by city
    assert manifest["scene"].nunique() == len(CITIES) * len(DATES)
    stats = json.loads((chips / "stats.json").read_text())
    assert stats["scales"] == {"vv": "db", "vh": "db"}
    assert all(c["std"] > 1.0 and c["p2"] < c["p98"] for c in stats["channels"])  # not the near-constant bug

    run_cli(["train", "sar-buildings", f"data.root={chips}", f"train.out={runs}", *DB, *SIZES, *SHORT])
    checkpoints = runs / "sar-buildings" / "checkpoints"
    metrics = tmp_path / "metrics.json"
    acquisitions = {city: [(f"{folder}/s1a_{city[:5]}_vv_ASC_{d}.tif", f"{folder}/s1a_{city[:5]}_vh_ASC_{d}.tif")
                           for d in DATES] for city, folder in cities.items()}
    pairs = [f"vv={vv},vh={vh}" for acq in acquisitions.values() for vv, vh in acq]
    for model in ("best", "last"):
        run_cli(["predict", checkpoints / f"{model}.ckpt", *pairs, "--out", pred / model,
                 "predict.window=128", "predict.overlap=32", "-q"])
    city_masks, truths = [], []
    for city, acq in acquisitions.items():
        votes = []
        for vv, _ in acq:
            stem = vv.rsplit("/", 1)[-1].removesuffix(".tif")
            votes.append(pred / f"{stem}.vote.tif")  # k-of-n across models: the seed's "all but one" (1 of 2)
            run_cli(["ensemble", pred / "best" / f"{stem}.mask.tif", pred / "last" / f"{stem}.mask.tif",
                     "--mode", "vote", "--min-votes", 1, "--out", votes[-1]])
        city_mask = pred / f"{city}.tif"  # k-of-n across the acquisitions of the city (all but one)
        run_cli(["ensemble", *votes, "--mode", "vote", "--min-votes", len(DATES) - 1, "--out", city_mask])
        run_cli(["vectorize", city_mask, "--out", pred / f"{city}.shp"])
        with rasterio.open(city_mask) as src, rasterio.open(acq[0][0]) as image:
            assert (src.crs, src.transform) == (image.crs, image.transform)
        assert gpd.read_file(pred / f"{city}.shp").crs == "EPSG:4326"
        city_masks.append(city_mask)
        truths += ["--truth", cities[city] / f"{city}.shp"]
    run_cli(["evaluate", *city_masks, *truths, "--no-objects", "--out", metrics])
    pixel = json.loads(metrics.read_text())["pixel"]
    building = pixel["per_class"]["building"]  # the masks carry the model's class names through the votes
    print(f"sar-buildings recipe: pixel F1 {building['f1']:.3f}, IoU {building['iou']:.3f}")
    # measured (shared 2-core machine): pixel F1 0.542, IoU 0.372 after 10 one-batch epochs
    assert building["f1"] > 0.3 and pixel["pixels"] > 0


def test_linear_power_declared_db_warns_and_log_of_db_declared_linear_is_refused(shared_data, tmp_path, capsys):
    linear = tmp_path / "linear"
    make_unosat(shared_data, linear, scale="linear")
    before = folder_hashes(linear)
    capsys.readouterr()
    run_cli(["prepare", "sar-buildings", "--scenes", linear, "--out", tmp_path / "chips-a", *DB, *SIZES[:3],
             "--quiet"])
    printed = capsys.readouterr()
    assert "image 'vv' is declared data.scale.vv=db but holds only positive values" in printed.out + printed.err
    assert "declare data.scale.vv=linear if it is" in printed.out + printed.err
    assert folder_hashes(linear) == before

    db = tmp_path / "db"
    make_unosat(shared_data, db)
    before = folder_hashes(db)
    with pytest.raises(SystemExit) as exit_info:
        from eoseg.cli import main
        main(["prepare", "sar-buildings", "--scenes", str(db), "--out", str(tmp_path / "chips-b"), *SIZES[:3],
              "--quiet"])
    assert exit_info.value.code == 2
    printed = capsys.readouterr()
    assert ("data.inputs '10*log10(vh)' takes a log of band 'vh' (declared linear) but it holds non-positive "
            "values") in printed.out + printed.err
    assert "declare data.scale.vh=db" in printed.out + printed.err
    assert folder_hashes(db) == before and not (tmp_path / "chips-b" / "manifest.parquet").exists()

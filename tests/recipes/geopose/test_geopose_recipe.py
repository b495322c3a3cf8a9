"""Overhead Geopose end to end, as docs/recipes/geopose.md walks it, on the competition's own layout.

metadata.csv + train/<id>_RGB.j2k, _AGL.tif, _VFLOW.json -> prepare (cm -> m, magnitude and direction
targets) -> train (the geopose preset as shipped, only sizes, epochs and a smaller encoder) -> predict
the test tiles with --format geopose (<id>_AGL.tif uint16 cm, <id>_VFLOW.json) -> evaluate (per-city R²).
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pandas as pd
import pytest
import rasterio

from eoseg.formats.geopose import read_vflow

from ..conftest import run_cli
from .data import CITIES, SIZE, make_geopose_dataset

SIZES = ["data.chips.size=64", "data.chips.overlap=0", "data.folds=2"]
TRAIN = ["model.encoder=resnet18", "train.epochs=2", "train.batch_size=4", "train.num_workers=0",
         "train.tensorboard=false"]


@pytest.mark.slow
def test_geopose_recipe_from_competition_layout_to_scored_submission(tmp_path):
    started = time.perf_counter()
    data = make_geopose_dataset(tmp_path / "geopose", per_city=3, test_per_city=1)
    chips, runs, pred = (tmp_path / n for n in ("chips", "runs", "pred"))

    run_cli(["prepare", "geopose", "--scenes", data / "metadata.csv", "--out", chips, *SIZES, "--quiet"])
    manifest = pd.read_parquet(chips / "manifest.parquet")
    assert sorted(manifest["region"].unique()) == sorted(CITIES)  # folds by city
    assert manifest.groupby("region")["fold"].nunique().eq(1).all()
    with rasterio.open(chips / "sources" / "JAX_t000.height.tif") as src:
        height = src.read(1)
    with rasterio.open(data / "train" / "JAX_t000_AGL.tif") as src:
        agl = src.read(1)
    known = agl != 65535
    assert np.allclose(height[known], agl[known] / 100.0) and np.isnan(height[~known]).all()  # metres, once
    metadata = pd.read_csv(data / "metadata.csv", index_col="id")
    with rasterio.open(chips / "sources" / "JAX_t000.gsd.tif") as src:  # the gsd plane, the 4th model input
        assert src.shape == (SIZE, SIZE) and np.all(src.read(1) == np.float32(metadata.at["JAX_t000", "gsd"]))
    assert json.loads((chips / "stats.json").read_text())["inputs"] == ["red", "green", "blue", "gsd"]

    run_cli(["train", "geopose", f"data.root={chips}", f"train.out={runs}", *SIZES, *TRAIN])
    checkpoint = runs / "geopose" / "checkpoints" / "best.ckpt"

    tiles = sorted((data / "test").glob("*_RGB.j2k"))
    run_cli(["predict", checkpoint, *tiles, "--out", pred, "--format", "geopose", "--quiet"])
    for tile in tiles:
        tile_id = tile.name.removesuffix("_RGB.j2k")
        with rasterio.open(pred / f"{tile_id}_AGL.tif") as src:
            assert src.dtypes[0] == "uint16" and src.shape == (SIZE, SIZE) and src.nodata == 65535
        vflow = read_vflow(pred / f"{tile_id}_VFLOW.json")
        assert math.isfinite(vflow.scale) and vflow.scale >= 0 and 0 <= vflow.angle < 2 * math.pi

    metrics = pred / "metrics.json"
    run_cli(["evaluate", pred, "--truth", data / "test-truth", "--format", "geopose", "--out", metrics])
    score = json.loads(metrics.read_text())
    assert sorted(score["cities"]) == sorted(CITIES) and score["scored"] == score["tiles"] == len(tiles)
    assert score["score"] == pytest.approx(np.mean([c["score"] for c in score["cities"].values()]))
    # measured -0.09 (city scores JAX -0.13, OMA -0.05; R² AGL -0.14, -0.06) after 6 steps, 2026-12-03. Folds
    # are by city, so the model sees one city's flow angle only, and the synthetic images do not show the
    # lean: the held-out city's flow R² stays negative with longer training (-0.24 after 36 steps, while
    # both R² AGL turn positive), so the floor is on the whole pipeline, with a margin
    assert -0.6 < score["score"] <= 1.0
    assert all(c["r2_agl"] > -0.5 for c in score["cities"].values())

    (pred / "OMA_t003_VFLOW.json").unlink()  # a missing prediction file gives its city 0
    run_cli(["evaluate", pred, "--truth", data / "test-truth", "--format", "geopose", "--out", metrics])
    missing = json.loads(metrics.read_text())
    assert missing["cities"]["OMA"]["score"] == 0.0
    assert missing["cities"]["JAX"] == pytest.approx(score["cities"]["JAX"])
    print(f"geopose recipe: final score {score['score']:.4f} (cities {score['cities']}), "
          f"{time.perf_counter() - started:.1f} s")

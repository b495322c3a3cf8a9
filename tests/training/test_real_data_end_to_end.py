"""The real SpaceNet tile end to end: prepared, trained a few steps, predicted whole, vectorized, evaluated."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.windows import Window

from eoseg.config.loader import validate_config
from eoseg.data.prepare import prepare
from eoseg.inference.predictor import predict_scene
from eoseg.metrics.evaluate import evaluate
from eoseg.metrics.objects import ImagePolygons, object_metrics
from eoseg.models.checkpoint import load_bundle
from eoseg.post.vectorize import vectorize
from eoseg.training.train import train


def test_spacenet_tile_end_to_end(shared_data, tmp_path):
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

    # the whole tile (not the halves), with flips TTA, through the briefly trained model
    spec = config.predict.model_copy(update={"tta": "flips", "window": 128, "device": "cpu"})
    out = predict_scene([bundle], {"image": tile}, tmp_path / "pred", spec, config.post, progress=False)
    with rasterio.open(tile) as src, rasterio.open(out.mask) as mask, rasterio.open(out.prob) as prob:
        for result in (mask, prob):
            assert (result.crs, result.transform, result.shape) == (src.crs, src.transform, src.shape)
        nodata = src.read(1) == src.nodata
        predicted = mask.read(1)
        assert (predicted[nodata] == 255).all() and set(np.unique(predicted[~nodata])) <= {0, 1}
    polygons = vectorize(out.mask, tmp_path / "pred" / "atlanta.gpkg", prob=out.prob)
    assert polygons.crs == "EPSG:32616"
    metrics = evaluate([out.mask], [labels], objects=False)
    assert 0.0 <= metrics["pixel"]["micro"]["iou"] <= 1.0
    truth = gpd.read_file(labels).to_crs(polygons.crs)
    images = {"atlanta": ImagePolygons(list(polygons.geometry), list(truth.geometry), pixel_area=0.25)}  # 0.5 m
    counts = object_metrics(images)["overall"]
    assert counts["tp"] + counts["fn"] == 43  # every true footprint is matched or missed, once

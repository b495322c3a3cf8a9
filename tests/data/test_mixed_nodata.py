"""Scenes that declare different nodata values (0 in one, 65535 in another): each is read with its own,
in training (the dataset) as in prediction (the scene reader)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from fixtures.synthetic_scenes import grid, square_buildings, write_raster

from eoseg.config.loader import validate_config
from eoseg.data.dataset import ChipDataset
from eoseg.data.prepare import prepare
from eoseg.data.stats import DatasetStats, read_stats
from eoseg.geo.raster import valid_mask
from eoseg.inference.reader import check_scene
from eoseg.models.bundle import ModelBundle


def test_no_nodata_pixel_reaches_the_model_when_scenes_declare_different_nodata(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.integers(1, 60000, (3, 64, 64)).astype(np.uint16)
    a[:, :8] = 0
    b = rng.integers(1, 60000, (3, 64, 64)).astype(np.uint16)
    b[:, :8] = 65535  # nodata of scene b
    b[:, 20, 5:10] = 0  # valid data in scene b (0 is scene a's nodata only)
    paths = {"a": write_raster(tmp_path / "a.tif", a, nodata=0), "b": write_raster(tmp_path / "b.tif", b, nodata=65535)}
    labels = tmp_path / "labels.geojson"
    square_buildings(grid(), [(20, 20)]).to_file(labels, driver="GeoJSON")
    config = validate_config({"data": {
        "root": str(tmp_path / "prepared"),
        "scenes": [{"id": s, "images": {"image": str(p)}, "targets": {"mask": str(labels)}} for s, p in paths.items()],
        "targets": {"mask": {"kind": "vector"}},
        "chips": {"size": 64, "overlap": 0},
        "folds": 2,
    }})
    result = prepare(config, progress=False)
    raw = read_stats(result.stats)
    stats = DatasetStats.from_dict(raw)
    assert stats.scene_nodata == {"a": {"image": 0}, "b": {"image": 65535}}
    manifest = pd.read_parquet(result.manifest)
    dataset = ChipDataset(result.root, manifest, raw, config.data)
    bundle = ModelBundle(model=None, config=config, stats=raw)  # what a checkpoint of this data gives back
    for i in range(len(dataset)):
        scene = manifest.at[i, "scene"]
        inputs, valid = dataset.read_inputs(i)
        array = a if scene == "a" else b
        assert not valid[:8].any() and valid[8:].all()  # b: 65535 is nodata, 0 is data
        assert (inputs[:, ~valid] == 0).all() and np.isfinite(inputs).all()
        predicted = check_scene({"image": paths[scene]}, bundle).nodata["image"]
        assert predicted == stats.nodata_of("image", scene)
        assert (valid_mask(array, predicted) == valid).all()  # training and prediction agree
    old = {k: v for k, v in raw.items() if k != "scene_nodata"}  # a stats.json written before
    assert DatasetStats.from_dict(old).nodata_of("image", "b") == 0


def test_the_scene_reader_takes_the_nodata_rule_prepare_recorded(tmp_path):
    """Prepared with ``data.nodata.image=7``, trained with a config that lacks it: prediction still reads 7 as
    nodata, since the rule travels in the checkpoint's stats; stats written before it fall back to the
    checkpoint's data.nodata."""
    array = np.random.default_rng(1).integers(8, 200, (3, 64, 64)).astype(np.uint8)
    array[:, :, :6] = 7
    path = write_raster(tmp_path / "s.tif", array, nodata=None)
    labels = tmp_path / "labels.geojson"
    square_buildings(grid(), [(20, 20)]).to_file(labels, driver="GeoJSON")
    data = {"root": str(tmp_path / "prepared"), "targets": {"mask": {"kind": "vector"}},
            "scenes": [{"id": "s", "images": {"image": str(path)}, "targets": {"mask": str(labels)}}],
            "chips": {"size": 64, "overlap": 0}, "folds": 2}
    prepared = validate_config({"data": {**data, "nodata": {"image": 7}}})
    raw = read_stats(prepare(prepared, progress=False).stats)
    assert raw["nodata_override"] == {"image": 7}
    dataset = ChipDataset(tmp_path / "prepared", pd.read_parquet(tmp_path / "prepared" / "manifest.parquet"), raw,
                          prepared.data)
    _, valid = dataset.read_inputs(0)
    trained = validate_config({"data": data})  # the training run did not repeat data.nodata
    predicted = check_scene({"image": path}, ModelBundle(model=None, config=trained, stats=raw)).nodata["image"]
    assert predicted == 7 and (valid_mask(array, predicted) == valid).all() and not valid[:, :6].any()
    old = {k: v for k, v in raw.items() if k != "nodata_override"}
    assert check_scene({"image": path}, ModelBundle(model=None, config=trained, stats=old)).nodata["image"] == 0
    assert check_scene({"image": path}, ModelBundle(model=None, config=prepared, stats=old)).nodata["image"] == 7

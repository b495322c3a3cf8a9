"""``prepare`` on the real samples in ../shared/data: the SpaceNet Atlanta tile and the Sen1Floods11 chip."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio import features
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from shapely.geometry import box

from eoseg.config.loader import validate_config
from eoseg.data.bandmath import BandMath
from eoseg.data.prepare import prepare

pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul")


@pytest.fixture(scope="module")
def atlanta(shared_data, tmp_path_factory):
    """The Atlanta tile prepared at scales 0.5, 1 and 2 (512 px chips, 64 px overlap)."""
    folder = shared_data / "spacenet-atlanta"
    root = tmp_path_factory.mktemp("atlanta")
    config = validate_config(
        {
            "data": {
                "root": str(root),
                "scenes": [
                    {
                        "id": "atlanta",
                        "images": {"image": str(folder / "atlanta_pan.tif")},
                        "targets": {"mask": str(folder / "atlanta_buildings.geojson")},
                    }
                ],
                "bands": {"image": ["pan"]},
                "inputs": ["pan"],
                "folds": 1,
                "targets": {"mask": {"kind": "vector"}},
                "chips": {"size": 512, "overlap": 64, "scales": [0.5, 1.0, 2.0]},
            }
        }
    )
    result = prepare(config, progress=False)
    return folder, root, pd.read_parquet(result.manifest)


def test_atlanta_rasterized_footprints_agree_with_the_polygons(atlanta):
    folder, root, manifest = atlanta
    with rasterio.open(folder / "atlanta_pan.tif") as src:
        transform, shape, scene = src.transform, src.shape, box(*src.bounds)
    mosaic = np.zeros(shape, dtype=np.uint8)  # the scale-1 target chips put back onto the scene grid
    for row in manifest[manifest.scale == 1].to_dict("records"):
        with rasterio.open(root / row["target:mask"]) as chip:
            mask = chip.read(1)
        r, c = row["row_off"], row["col_off"]
        h, w = min(512, shape[0] - r), min(512, shape[1] - c)
        mosaic[r : r + h, c : c + w] = np.maximum(mosaic[r : r + h, c : c + w], mask[:h, :w] == 1)
    polygons = gpd.read_file(folder / "atlanta_buildings.geojson").to_crs("EPSG:32616")
    assert len(polygons) == 43
    scene_area = polygons.union_all().intersection(scene).area
    burned_area = mosaic.sum() * abs(transform.a * transform.e)
    assert burned_area == pytest.approx(scene_area, rel=0.03)
    for geom in polygons.geometry:  # every polygon burns pixels
        inside = features.geometry_mask([geom], shape, transform, invert=True, all_touched=True)
        assert mosaic[inside].any()


def test_atlanta_chip_bounds_equal_window_bounds(atlanta):
    folder, root, manifest = atlanta
    with rasterio.open(folder / "atlanta_pan.tif") as src:
        transform = src.transform
    assert set(manifest.scale) == {0.5, 1.0, 2.0}
    for row in manifest.to_dict("records"):
        window = Window(row["col_off"], row["row_off"], row["width"], row["height"])
        for key in ("image:image", "target:mask"):
            with rasterio.open(root / row[key]) as chip:
                assert chip.shape == (512, 512) and chip.crs.to_epsg() == 32616
                assert chip.res == (row["res_x"], row["res_y"]) == (0.5 * row["scale"],) * 2
                assert tuple(chip.bounds) == pytest.approx(window_bounds(window, transform), abs=1e-6)


def test_atlanta_band_statistics_equal_numpy_on_the_full_array(atlanta):
    folder, root, _ = atlanta
    with rasterio.open(folder / "atlanta_pan.tif") as src:
        values = src.read(1)
    values = values[values != 0].astype(np.float64)
    pan = json.loads((root / "stats.json").read_text())["channels"][0]
    assert pan["name"] == "pan" and pan["count"] == values.size
    assert pan["min"] == values.min() and pan["max"] == values.max()
    assert pan["p2"] == np.percentile(values, 2) and pan["p98"] == np.percentile(values, 98)
    assert pan["mean"] == pytest.approx(values.mean(), rel=1e-12)
    assert pan["std"] == pytest.approx(values.std(), rel=1e-12)


def test_sen1floods11_vv_vh_as_two_files_go_through_band_math(shared_data, tmp_path):
    folder = shared_data / "sen1floods11"
    with rasterio.open(folder / "Spain_7370579_S1Hand.tif") as src:
        profile = {**src.profile, "count": 1}
        vv_vh = src.read()
    for i, name in enumerate(["vv", "vh"]):  # band 1 VV, band 2 VH
        with rasterio.open(tmp_path / f"{name}.tif", "w", **profile) as dst:
            dst.write(vv_vh[i : i + 1])
    inputs = ["vh", "vv", "(vh+vv)/2"]
    config = validate_config(
        {
            "data": {
                "root": str(tmp_path / "out"),
                "folds": 1,
                "inputs": inputs,
                "scenes": [
                    {
                        "id": "spain",
                        "images": {"vh": str(tmp_path / "vh.tif"), "vv": str(tmp_path / "vv.tif")},
                        "targets": {"water": str(folder / "Spain_7370579_LabelHand.tif")},
                    }
                ],
                "targets": {"water": {"kind": "raster", "ignore_value": -1}},
                "chips": {"size": 256, "overlap": 0},
            }
        }
    )
    result = prepare(config, progress=False)
    manifest = pd.read_parquet(result.manifest)
    assert len(manifest) == 4
    vv, vh = vv_vh.astype(np.float64)
    valid = np.isfinite(vv) & np.isfinite(vh)
    stats = json.loads(result.stats.read_text())
    assert stats["inputs"] == inputs and stats["bands"] == {"vh": ["vh"], "vv": ["vv"]}
    mean_db = ((vh + vv) / 2)[valid]
    for channel, expected in zip(stats["channels"], [vh[valid], vv[valid], mean_db], strict=True):
        assert channel["count"] == valid.sum()
        assert channel["mean"] == pytest.approx(expected.mean(), rel=1e-6)
        assert channel["std"] == pytest.approx(expected.std(), rel=1e-6)
        assert channel["p2"] == pytest.approx(np.percentile(expected, 2), rel=2**-8)
        assert channel["p98"] == pytest.approx(np.percentile(expected, 98), rel=2**-8)
    row = manifest.set_index("chip_id").loc["spain-s1-r256-c0"]
    chips = {}
    for name in ("vh", "vv"):
        with rasterio.open(result.root / row[f"image:{name}"]) as chip:
            chips[name] = chip.read()
    derived = BandMath(inputs, stats["bands"]).apply(chips)
    np.testing.assert_allclose(derived[2], (vh[256:, :256] + vv[256:, :256]) / 2, rtol=1e-6)
    with rasterio.open(folder / "Spain_7370579_LabelHand.tif") as src:
        label = src.read(1)
    with rasterio.open(result.root / row["target:water"]) as chip:
        water = chip.read(1)
        assert chip.dtypes[0] == "int16" and chip.nodata == -1
    np.testing.assert_array_equal(water, np.where(valid, label, -1)[256:, :256])
    assert row["frac:water"] == pytest.approx(((label != -1) & valid)[256:, :256].mean())

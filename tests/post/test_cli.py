"""The post-processing and evaluation commands: outputs written, one-line errors."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import yaml
from affine import Affine

from eoseg.cli import main
from eoseg.geo.raster import write_geotiff

UTM = "EPSG:32616"
TRANSFORM = Affine(0.5, 0, 740000.0, 0, -0.5, 3740000.0)


def run(*args: str) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    return exit_info.value.code


@pytest.fixture
def scene(tmp_path):
    mask = np.zeros((16, 16), np.uint8)
    mask[2:7, 2:9] = 1
    mask[10:14, 10:14] = 1
    prob = np.where(mask > 0, 230, 20).astype(np.uint8)
    return (
        write_geotiff(tmp_path / "s.mask.tif", mask[None], UTM, TRANSFORM, 255),
        write_geotiff(tmp_path / "s.prob.tif", prob[None], UTM, TRANSFORM, None),
    )


def test_vectorize_evaluate_ensemble_thresholds(tmp_path, scene, capsys):
    mask, prob = scene
    out = tmp_path / "s.gpkg"
    assert run("vectorize", mask, "--prob", prob, "--min-area", "3", "--out", out) == 0
    polygons = gpd.read_file(out)
    assert sorted(polygons["area_m2"]) == [4.0, 8.75] and np.allclose(polygons["mean_prob"], 230 / 255)

    assert run("evaluate", mask, "--truth", out, "--out", tmp_path / "m.json") == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["pixel"]["micro"]["iou"] == 1.0
    assert metrics["objects"]["overall"] == {"tp": 1, "fp": 0, "fn": 0, "precision": 1.0, "recall": 1.0,
                                                  "f1": 1.0}  # the 16 px building is below the 20 px rule
    args = ("--min-truth-area", "0", "--min-pred-area", "0", "--out", tmp_path / "m0.json")
    assert run("evaluate", mask, "--truth", out, *args) == 0
    assert json.loads((tmp_path / "m0.json").read_text())["objects"]["overall"]["tp"] == 2
    printed = capsys.readouterr().out
    assert "pixel metrics" in printed and "object metrics" in printed

    assert run("ensemble", prob, prob, "--mode", "vote", "--threshold", "0.5", "--out", tmp_path / "v.tif") == 0
    with rasterio.open(tmp_path / "v.tif") as src, rasterio.open(mask) as ref:
        assert np.array_equal(src.read(1), ref.read(1))

    overlay = tmp_path / "post.yaml"
    assert run("thresholds", prob, "--truth", mask, "--thresholds", "0.05,0.5,0.95", "--out", overlay) == 0
    assert "threshold: 0.5\n" in overlay.read_text()  # binary: one value; background is 0.08: 0.05 lets it in


def test_thresholds_table_shows_the_min_area_unit_of_the_grid(tmp_path, scene, capsys):
    mask, prob = scene
    capsys.readouterr()
    assert run("thresholds", prob, "--truth", mask, "--min-areas", "0,2", "--out", tmp_path / "a.yaml") == 0
    printed = capsys.readouterr().err  # the table goes to stderr with the other messages
    assert "min area m²" in printed and "min area px" not in printed
    # clouds: images and masks on a pixel grid without a CRS, one unit = one 350 x 525 submission pixel
    with rasterio.open(mask) as src:
        labels = src.read()
    grid = Affine(1, 0, 0, 0, 1, 0)
    pixel_mask = write_geotiff(tmp_path / "c.mask.tif", labels, None, grid, 255)
    probs = np.where(labels > 0, 230, 20).astype(np.uint8)
    pixel_prob = write_geotiff(tmp_path / "c.prob.tif", probs, None, grid, None)
    assert run("thresholds", pixel_prob, "--truth", pixel_mask, "--min-areas", "0,2", "--out", tmp_path / "c.yaml") == 0
    printed = capsys.readouterr().err
    assert "min area px" in printed and "m²" not in printed


def test_errors_are_one_line(tmp_path, scene, capsys):
    mask, prob = scene
    other = write_geotiff(tmp_path / "o.tif", np.zeros((1, 8, 8), np.uint8), UTM, TRANSFORM, 255)
    assert run("ensemble", mask, other, "--out", tmp_path / "e.tif") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "o.tif: not on the grid of s.mask.tif" in err
    (tmp_path / "blocker").write_text("")
    assert run("vectorize", mask, "--out", tmp_path / "blocker" / "x.gpkg") == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert run("evaluate", tmp_path / "missing.tif", "--truth", mask) == 2
    assert "missing.tif (argument PRED): prediction file does not exist" in capsys.readouterr().err


def test_vectorize_refuses_geojson_of_a_mask_without_a_crs_before_tracing(tmp_path, capsys, monkeypatch):
    """Pixel polygons cannot go to GeoJSON (read as WGS84): the mask's CRS is checked against the format
    before its polygons are traced (slow on a large mask), by write_vector's rule; exit 2, nothing written."""
    import eoseg.post.vectorize as vectorize_module

    mask = np.zeros((16, 16), np.uint8)
    mask[2:7, 2:9] = 1
    path = write_geotiff(tmp_path / "png.mask.tif", mask[None], None, Affine.identity(), 255)
    traced, polygonize = [], vectorize_module.polygonize
    monkeypatch.setattr(vectorize_module, "polygonize", lambda *a, **k: traced.append(a) or polygonize(*a, **k))
    out = tmp_path / "x.geojson"
    assert run("vectorize", path, "--out", out) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {out}: these polygons have no CRS (pixel coordinates), but GeoJSON readers take coordinates "
        "as WGS84 longitude/latitude; write .gpkg or .fgb instead")
    assert traced == [] and sorted(p.name for p in tmp_path.iterdir()) == ["png.mask.tif"]
    assert run("vectorize", path, "--out", tmp_path / "x.gpkg") == 0  # the format that says "no CRS"
    assert len(traced) == 1 and gpd.read_file(tmp_path / "x.gpkg").crs is None


def test_evaluate_writes_an_error_map_per_raster_prediction(tmp_path, scene):
    from PIL import Image

    from eoseg.report.quicklook import ERROR_CLASSES

    mask, _ = scene
    truth = np.zeros((16, 16), np.uint8)
    truth[2:7, 2:9] = 1  # the second predicted square is a false positive
    truth_path = write_geotiff(tmp_path / "t.tif", truth[None], UTM, TRANSFORM, 255)
    assert run("evaluate", mask, "--truth", truth_path, "--error-maps", tmp_path / "maps") == 0
    png = tmp_path / "maps" / "s.errors.png"
    assert png.is_file()
    picture = np.asarray(Image.open(png).convert("RGB"))[:16, :16]  # the map sits top-left, legend below
    colours = list(ERROR_CLASSES.values())
    assert tuple(picture[4, 4]) == tuple(colours[0])  # true positive
    assert tuple(picture[12, 12]) == tuple(colours[1])  # false positive
    assert tuple(picture[0, 15]) == tuple(colours[4])  # true negative


def test_thresholds_kind_defaults_to_the_mask_kind_tag(tmp_path, scene, capsys):
    """`eoseg thresholds` searches the layout predict wrote the prob.tif with (its mask_kind tag), binary
    for an untagged raster; an explicit --kind the tag contradicts is one error line, nothing written."""
    mask, prob = scene
    with rasterio.open(mask) as src:
        labels = src.read(1)
    labels[10:14, 10:14] = 2  # the second box is class 2
    truth = write_geotiff(tmp_path / "k.mask.tif", labels[None], UTM, TRANSFORM, 255)
    softmax = np.stack([labels == 0, labels == 1, labels == 2]).astype(np.float32) * 0.8 + 0.1
    tagged = write_geotiff(tmp_path / "k.prob.tif", (softmax * 255).round().astype(np.uint8), UTM, TRANSFORM, None)
    with rasterio.open(tagged, "r+") as dst:
        dst.update_tags(mask_kind="multiclass")
    overlay = tmp_path / "k.yaml"
    assert run("thresholds", tagged, "--truth", truth, "--thresholds", "0.5,0.95", "--out", overlay) == 0
    post = yaml.safe_load(overlay.read_text())["post"]
    assert post["threshold"] == [0.0, 0.5, 0.5]  # multiclass: one per class (background unused), not binary's one

    untagged = tmp_path / "u.yaml"  # the fixture's 1-band prob has no tag: binary, one threshold
    assert run("thresholds", prob, "--truth", mask, "--thresholds", "0.5,0.95", "--out", untagged) == 0
    assert yaml.safe_load(untagged.read_text())["post"]["threshold"] == 0.5

    before = overlay.read_bytes()
    capsys.readouterr()
    assert run("thresholds", tagged, "--truth", truth, "--kind", "binary", "--out", overlay) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "--kind: 'binary' contradicts k.prob.tif's mask_kind tag 'multiclass'" in err
    assert overlay.read_bytes() == before
    assert run("thresholds", tagged, "--truth", truth, "--kind", "multiclass", "--out", overlay) == 0  # agrees

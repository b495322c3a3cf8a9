"""Clear messages: point and line labels, a GeoJSON without CRS, a scene without CRS (each says what to do)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from reliability_helpers import TRANSFORM, UTM, hashes, run, write_scene
from shapely.geometry import LineString, Point, box

X0, Y0 = TRANSFORM.c, TRANSFORM.f
CHIPS = ["data.chips.size=32", "data.chips.overlap=0", "data.folds=1"]
BUILDING = box(X0 + 2, Y0 - 12, X0 + 12, Y0 - 2)


def scene_with_labels(folder: Path, labels: gpd.GeoDataFrame | dict, crs: str | None = UTM) -> tuple[Path, Path]:
    """A 64 px RGB scene, its labels (a frame written as GeoPackage, or a GeoJSON mapping) and scenes.csv."""
    write_scene(folder / "scene.tif", np.random.default_rng(0).integers(1, 255, (3, 64, 64)).astype(np.uint8),
                crs=crs)
    if isinstance(labels, dict):
        path = folder / "labels.geojson"
        path.write_text(json.dumps(labels))
    else:
        path = folder / "labels.gpkg"
        labels.to_file(path)
    (folder / "scenes.csv").write_text(f"id,image,mask\ntown,scene.tif,{path.name}\n")
    return folder / "scenes.csv", path


def prepare(capsys: pytest.CaptureFixture[str], scenes: Path, out: Path, *extra: str) -> tuple[int, str]:
    return run(capsys, "prepare", "demo", "--scenes", scenes, "--out", out, "--quiet", *CHIPS, *extra)


@pytest.mark.parametrize(
    ("geometries", "counts"),
    [
        ([Point(X0 + 5, Y0 - 5), Point(X0 + 20, Y0 - 20)], "2 point features"),
        ([LineString([(X0 + 2, Y0 - 2), (X0 + 30, Y0 - 30)])], "1 line feature"),
    ],
)
def test_point_or_line_labels_say_to_buffer_them(tmp_path, capsys, geometries, counts):
    """Used to be "no label feature overlaps the scene" although they lie inside it."""
    scenes, labels = scene_with_labels(tmp_path, gpd.GeoDataFrame(geometry=geometries, crs=UTM))
    before = hashes(tmp_path)
    code, line = prepare(capsys, scenes, tmp_path / "chips")
    assert (code, line) == (2, f"error: {labels}: {counts} and no polygon; labels must be polygons: buffer them into "
                               f"polygons first, e.g. geopandas.read_file('{labels}').to_crs('{UTM}').buffer(2.0)"
                               ".to_file('buffered.gpkg') for 2 m around each, and give that file instead")
    assert hashes(tmp_path) == before and not (tmp_path / "chips").exists()


def test_the_buffer_command_of_the_message_works(tmp_path, capsys):
    scenes, labels = scene_with_labels(tmp_path, gpd.GeoDataFrame(geometry=[Point(X0 + 5, Y0 - 5)], crs=UTM))
    gpd.read_file(labels).to_crs(UTM).buffer(2.0).to_file(tmp_path / "buffered.gpkg")  # as the message says
    (tmp_path / "scenes.csv").write_text("id,image,mask\ntown,scene.tif,buffered.gpkg\n")
    code, _ = prepare(capsys, scenes, tmp_path / "chips")
    assert code == 0
    assert pd.read_parquet(tmp_path / "chips" / "manifest.parquet")["frac:mask:1"].sum() > 0


def test_points_beside_polygons_are_a_warning(tmp_path, capsys):
    frame = gpd.GeoDataFrame(geometry=[BUILDING, Point(X0 + 20, Y0 - 20)], crs=UTM)
    scenes, labels = scene_with_labels(tmp_path, frame)
    code, line = prepare(capsys, scenes, tmp_path / "chips")
    assert (code, line) == (0, f"warning: {labels}: 1 point feature ignored (labels must be polygons); to label "
                               "them, buffer them into polygons (geopandas GeoSeries.buffer)")


def geojson_without_crs() -> dict:
    """A FeatureCollection without a ``crs`` member whose coordinates are UTM metres (read as WGS84)."""
    return {"type": "FeatureCollection",
            "features": [{"type": "Feature", "properties": {}, "geometry": BUILDING.__geo_interface__}]}


def test_geojson_without_crs_says_which_option_to_set(tmp_path, capsys, recwarn):
    """Used to be "no label feature overlaps the scene" plus numpy RuntimeWarnings."""
    scenes, labels = scene_with_labels(tmp_path, geojson_without_crs())
    before = hashes(tmp_path)
    capsys.readouterr()
    code, line = prepare(capsys, scenes, tmp_path / "chips")
    assert (code, line) == (2, f"error: {labels}: coordinates (x 740002 to 740012, y 3739988 to 3739998) are not "
                               "longitude/latitude, but the file has no CRS of its own, so it is read as WGS84 (the "
                               "GeoJSON default); give the CRS of its coordinates with "
                               f"data.targets.mask.label_crs=EPSG:CODE (the scene's is {UTM})")
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
    assert hashes(tmp_path) == before
    code, _ = prepare(capsys, scenes, tmp_path / "chips", f"data.targets.mask.label_crs={UTM}")
    assert code == 0  # the hint works: the building is labelled
    assert pd.read_parquet(tmp_path / "chips" / "manifest.parquet")["frac:mask:1"].sum() > 0


def test_geojson_truth_without_crs_points_to_truth_crs(rasters, tmp_path, capsys):
    truth = tmp_path / "truth.geojson"
    truth.write_text(json.dumps(geojson_without_crs()))
    before = hashes(tmp_path)
    code, line = run(capsys, "evaluate", rasters["mask"], "--truth", truth, "--out", tmp_path / "m.json")
    assert code == 2 and line.endswith(f"give the CRS of its coordinates with --truth-crs=EPSG:CODE (the scene's is "
                                       f"{UTM})")
    assert hashes(tmp_path) == before
    code, _ = run(capsys, "evaluate", rasters["mask"], "--truth", truth, f"--truth-crs={UTM}", "--out",
                  tmp_path / "m.json")
    assert code == 0 and (tmp_path / "m.json").is_file()


def test_a_scene_without_crs_says_how_to_assign_one(tmp_path, capsys):
    scenes, _ = scene_with_labels(tmp_path, gpd.GeoDataFrame(geometry=[BUILDING], crs=UTM), crs=None)
    before = hashes(tmp_path)
    code, line = prepare(capsys, scenes, tmp_path / "chips")
    scene = tmp_path / "scene.tif"
    assert (code, line) == (2, f"error: {scene}: scene town has no CRS, so labels cannot be placed on it; assign the "
                               f"scene's CRS first: rio edit-info --crs EPSG:CODE {scene}")
    assert hashes(tmp_path) == before
    rio = Path(sys.executable).parent / "rio"  # the command of the message, as written (rio comes with rasterio)
    subprocess.run([str(rio), "edit-info", "--crs", UTM, str(scene)], check=True)
    assert prepare(capsys, scenes, tmp_path / "chips")[0] == 0


@pytest.mark.parametrize("text", ["", "# my settings, to be filled in\n", "~\n"], ids=["0 bytes", "comments", "null"])
def test_an_empty_config_file_is_one_line_naming_it(tmp_path, capsys, checkpoint, text):
    """Used to run silently with the schema's defaults (read as {}). An explicit ``{}`` still means defaults;
    no document at all is a truncated or wrong file."""
    config = tmp_path / "my.yaml"
    config.write_text(text)
    runs = tmp_path / "runs"
    (runs / "earlier").mkdir(parents=True)
    (runs / "earlier" / "metrics.csv").write_text("epoch,val/iou\n0,0.5\n")
    scene = write_scene(tmp_path / "scene.tif", np.full((1, 64, 64), 7, np.uint8))
    before = hashes(tmp_path)
    says = f"error: {config}: config file is empty; give its sections (data:, model:, train:, ...), e.g. from "
    for command in (["train", config, f"train.out={runs}"], ["config", "show", config],
                    ["predict", checkpoint, scene, "--post", config, "--out", tmp_path / "pred", "-q"]):
        code, line = run(capsys, *command)
        assert (code, line[:len(says)]) == (2, says), command
        assert "or a preset (presets: buildings," in line
    assert hashes(tmp_path) == before and not (tmp_path / "pred").exists()


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # rasterio's own Affine `*` (hidden in a shell)
def test_a_four_class_prediction_prints_no_gdal_warning(tmp_path, capsys):
    """clouds predict printed "The dataset's nodata attribute is shadowing the alpha band" (GDAL took the 4-band
    uint8 outputs for RGBA); the outputs' 4th band is a class like the others."""
    from reliability_helpers import write_checkpoint

    classes = ["fish", "flower", "gravel", "sugar"]
    model = write_checkpoint(tmp_path / "clouds.ckpt", kind="multilabel", bands=3, classes=classes)
    scene = write_scene(tmp_path / "s.tif", np.random.default_rng(0).integers(1, 255, (3, 64, 64)).astype(np.uint8))
    before = hashes(scene, model)
    code, line = run(capsys, "predict", model, scene, "--out", tmp_path / "pred", "--quicklook", "-q",
                     "predict.polygons=true", "post.min_area=1")  # min_area: the second pass reads the mask
    assert code == 0 and not line.startswith("warning: "), line  # the first warning line, if any
    assert hashes(scene, model) == before
    for name in ("s.prob.tif", "s.mask.tif"):
        with rasterio.open(tmp_path / "pred" / name) as src:
            assert src.count == 4 and "alpha" not in [c.name for c in src.colorinterp]


@pytest.mark.parametrize(("command", "given_by", "kind"), [
    (["vectorize", "{gone}", "--out", "{out}.gpkg"], "argument MASK", "raster file"),
    (["vectorize", "{mask}", "--prob", "{gone}", "--out", "{out}.gpkg"], "--prob", "raster file"),
    (["vectorize", "{mask}", "{gone}", "--out", "{out}.csv"], "argument MASK", "raster file"),
    (["ensemble", "{prob}", "{gone}", "--out", "{out}.tif"], "argument RASTER", "raster file"),
    (["thresholds", "{gone}", "--truth", "{truth}", "--out", "{out}.yaml"], "argument PROB", "raster file"),
    (["thresholds", "{prob}", "--truth", "{gone}", "--out", "{out}.yaml"], "--truth", "truth file"),
    (["evaluate", "{gone}", "--truth", "{truth}", "--out", "{out}.json"], "argument PRED", "prediction file"),
    (["evaluate", "{mask}", "--truth", "{gone}", "--out", "{out}.json"], "--truth", "truth file"),
    (["evaluate", "{gone}", "--truth", "{truth}", "--format", "xview2"], "argument PRED", "prediction folder"),
    (["predict", "{ckpt}", "{gone}", "--out", "{out}"], "argument SCENE", "raster file"),
    (["predict", "{ckpt}", "{prob}", "{gone}", "--out", "{out}", "-q"], "argument SCENE", "raster file"),
    (["pseudo-label", "{ckpt}", "{gone}", "--out", "{out}"], "argument SCENE", "raster file"),
], ids=["vectorize", "vectorize --prob", "vectorize csv", "ensemble", "thresholds", "thresholds --truth", "evaluate",
        "evaluate --truth", "evaluate --format", "predict", "predict 2 scenes", "pseudo-label"])
def test_a_missing_input_names_the_option_it_came_from(rasters, checkpoint, tmp_path, capsys, command, given_by,
                                                       kind):
    """These commands have no scene list: the line used to say 'check the path in the scene list' (evaluate and
    a typed scene of predict named no option: predict ran the other scenes and said 'file not found: image=...')."""
    gone = tmp_path / "gone.tif"
    before = hashes(tmp_path)
    names = {**{k: str(v) for k, v in rasters.items()}, "gone": str(gone), "out": str(tmp_path / "out" / "o"),
             "ckpt": str(checkpoint)}
    code, line = run(capsys, *(arg.format(**names) for arg in command))
    assert (code, line) == (2, f"error: {gone} ({given_by}): {kind} does not exist; check the path")
    assert hashes(tmp_path) == before and not (tmp_path / "out").exists()


def test_self_train_on_an_unprepared_root_says_what_train_says(tmp_path, capsys):
    """self-train read stats.json first and called the folder 'incomplete'; train says to run prepare."""
    (tmp_path / "keep.txt").write_text("untouched")
    root, runs = tmp_path / "never-prepared", tmp_path / "runs"
    before = hashes(tmp_path)
    says = (f"error: {root / 'manifest.parquet'}: chip manifest not found; run `eoseg prepare` with this config "
            "first (or point data.root at a prepared dataset)")
    for command in ("train", "self-train"):
        assert run(capsys, command, "demo", f"data.root={root}", f"train.out={runs}", "-q") == (2, says), command
    assert hashes(tmp_path) == before and not root.exists() and not runs.exists()


@pytest.mark.parametrize(("override", "says"), [
    ("model.arch=Unett", "model.arch='Unett' is not a known architecture; did you mean 'Unet'? valid: Unet, "
                         "UnetPlusPlus, MAnet, Linknet, FPN, PSPNet, DeepLabV3, DeepLabV3Plus, PAN, UPerNet, "
                         "Segformer"),
    ("model.encoder=resnet181", "model.encoder='resnet181' is not a known encoder; did you mean 'resnet18'? valid: "
                                "resnet18, resnet34,"),
])
def test_config_show_refuses_an_unknown_architecture_or_encoder(tmp_path, capsys, override, says):
    """Used to print the config; the name was only refused when a model was built (after prepare, in train)."""
    (tmp_path / "keep.txt").write_text("untouched")
    before = hashes(tmp_path)
    code, line = run(capsys, "config", "show", "demo", override)
    assert (code, line[:len(f"error: preset demo: {says}")]) == (2, f"error: preset demo: {says}")
    assert hashes(tmp_path) == before

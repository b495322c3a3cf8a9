"""Nothing silently wrong: out-of-range values are refused at the schema/CLI boundary with one line."""

from __future__ import annotations

import numpy as np
import pytest
from reliability_helpers import hashes, run, write_checkpoint, write_scene


@pytest.mark.parametrize(
    ("args", "first_line"),
    [
        (["evaluate", "{mask}", "--truth", "{truth}", "--iou", "1.5"],
         "error: --iou: 1.5 is out of range; a match needs an IoU above it, so it must be in [0, 1)"),
        (["evaluate", "{mask}", "--truth", "{truth}", "--iou", "1"],
         "error: --iou: 1 is out of range; a match needs an IoU above it, so it must be in [0, 1)"),
        (["thresholds", "{prob}", "--truth", "{mask}", "--thresholds", "1.5,-1", "--out", "{tmp}/post.yaml"],
         "error: --thresholds: 1.5 is out of range; every value must be in [0, 1]"),
        (["thresholds", "{prob}", "--truth", "{mask}", "--min-areas", "0,-5", "--out", "{tmp}/post.yaml"],
         "error: --min-areas: -5 is out of range; every value must be >= 0"),
        (["vectorize", "{mask}", "--min-area", "-5", "--out", "{tmp}/b.gpkg"],
         "error: --min-area: -5 is out of range; every value must be >= 0"),
        (["ensemble", "{prob}", "{prob}", "--mode", "vote", "--threshold", "1.5", "--out", "{tmp}/v.tif"],
         "error: --threshold: 1.5 is out of range; every value must be in [0, 1]"),
    ],
)
def test_out_of_range_options_are_refused(rasters, tmp_path, capsys, args, first_line):
    values = {k: str(v) for k, v in rasters.items()} | {"tmp": str(tmp_path)}
    before = hashes(tmp_path)
    code, line = run(capsys, *(a.format(**values) for a in args))
    assert (code, line) == (2, first_line)
    assert hashes(tmp_path) == before


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("post.threshold=1.5", "post.threshold: a probability threshold must be in [0, 1] (got 1.5)"),
        ("post.threshold=[0.5,-1]", "post.threshold: a probability threshold must be in [0, 1] (every value"),
        ("post.min_area=-5", "post.min_area: an area in m² must be >= 0 (got -5)"),
        ("predict.vote=0", "predict.vote: Input should be greater than or equal to 1 (got 0)"),
        ("predict.overlap=-8", "predict.overlap: Input should be greater than or equal to 0 (got -8)"),
    ],
)
def test_out_of_range_settings_are_refused_before_predicting(tmp_path, checkpoint, capsys, override, message):
    scene = write_scene(tmp_path / "city.tif", np.full((1, 64, 64), 7, np.uint8))
    before = hashes(tmp_path)
    code, line = run(capsys, "predict", checkpoint, scene, "--out", tmp_path / "pred", "-q", override)
    assert code == 2 and message in line
    assert hashes(tmp_path) == before and not (tmp_path / "pred").exists()


def test_a_scene_of_another_dtype_is_refused_before_any_window(tmp_path, checkpoint, capsys):
    """uint16 scene, uint8 model: the values would be on another scale (58 % 'building' in the catalogue)."""
    scene = write_scene(tmp_path / "city16.tif", np.full((1, 64, 64), 700, np.uint16))
    before = hashes(tmp_path)
    code, line = run(capsys, "predict", checkpoint, scene, "--out", tmp_path / "pred", "-q")
    assert code == 2
    assert line.startswith("error: ") and line.endswith(
        f"{scene}: scene is uint16 but the model was trained on uint8 images (values 0 to 255 in training); its values "
        "would be read on another scale: convert it to uint8 with the training scaling (e.g. gdal_translate -ot Byte "
        "-scale ...), use a model trained on such scenes, or set predict.allow_dtype=true if its values are on the "
        "training scale already")
    assert hashes(tmp_path) == before and not (tmp_path / "pred").exists()


def test_allow_dtype_predicts_another_dtype_with_a_warning(tmp_path, checkpoint, capsys):
    """``predict.allow_dtype=true``: a uint16 scene whose values are on the uint8 scale is predicted, with a warning."""
    scene = write_scene(tmp_path / "city16.tif", np.full((1, 64, 64), 70, np.uint16))
    before = hashes(scene)
    code, line = run(capsys, "predict", checkpoint, scene, "--out", tmp_path / "pred", "-q", "predict.allow_dtype=true")
    assert code == 0
    assert line == (f"warning: {scene}: scene is uint16 but the model was trained on uint8 images (values 0 to 255 in "
                    "training); predicting anyway (predict.allow_dtype=true): its values are used as they are, so "
                    "they must already be on the training scale")
    assert (tmp_path / "pred" / "city16.mask.tif").is_file() and hashes(scene) == before


def test_checkpoints_of_different_tasks_are_not_ensembled(tmp_path, checkpoint, capsys):
    """``predict binary.ckpt multiclass.ckpt scene.tif`` used to write only config.yaml."""
    multiclass = write_checkpoint(tmp_path / "multiclass.ckpt", kind="multiclass")
    scene = write_scene(tmp_path / "city.tif", np.full((1, 64, 64), 7, np.uint8))
    before = hashes(tmp_path)
    code, line = run(capsys, "predict", checkpoint, multiclass, scene, "--out", tmp_path / "pred", "-q")
    assert code == 2
    assert line.startswith("error: ") and (f"{multiclass}: a multiclass model of classes ['background', 'a', 'b'] "
                                           f"but {checkpoint} is a binary model of classes ['background', 'building']"
                                           in line)
    assert hashes(tmp_path) == before and not (tmp_path / "pred").exists()


def test_a_scene_without_crs_warns_with_what_to_do(tmp_path, checkpoint, capsys):
    scene = write_scene(tmp_path / "plain.tif", np.full((1, 64, 64), 7, np.uint8), crs=None)
    code, line = run(capsys, "predict", checkpoint, scene, "--out", tmp_path / "pred", "-q")
    assert code == 0
    assert line == (f"warning: {scene}: scene has no CRS; outputs are written without a CRS (if they must be "
                    f"georeferenced, assign one first: rio edit-info --crs EPSG:CODE {scene})")
    assert (tmp_path / "pred" / "plain.mask.tif").is_file()


def test_a_truth_file_without_features_scores_as_no_objects(rasters, tmp_path, capsys):
    """A building-free scene can be scored: its one predicted building is a false positive."""
    import json

    import geopandas as gpd
    from reliability_helpers import UTM

    empty = tmp_path / "no-buildings.gpkg"
    gpd.GeoDataFrame(geometry=[], crs=UTM).to_file(empty)
    out = tmp_path / "m.json"
    before = hashes(rasters["mask"], empty)
    code, _ = run(capsys, "evaluate", rasters["mask"], "--truth", empty, "--out", out, "--min-pred-area", "0")
    assert code == 0
    metrics = json.loads(out.read_text())
    overall = metrics["objects"]["overall"]
    assert (overall["tp"], overall["fp"], overall["fn"]) == (0, 2, 0)
    assert metrics["pixel"]["micro"]["fn"] == 0 and metrics["pixel"]["micro"]["fp"] == 35 + 16
    assert hashes(rasters["mask"], empty) == before


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_an_all_nodata_scene_is_reported_and_training_says_why(tmp_path, capsys, dtype):
    """All-nodata (uint8, nodata 0) or all-NaN (float32): a warning and a count, then train explains."""
    import geopandas as gpd
    from reliability_helpers import TRANSFORM, UTM
    from shapely.geometry import box

    fill = 0 if dtype == "uint8" else np.nan
    nodata = 0 if dtype == "uint8" else None
    scene = write_scene(tmp_path / "dark.tif", np.full((3, 64, 64), fill, dtype), nodata=nodata)
    x0, y0 = TRANSFORM.c, TRANSFORM.f
    gpd.GeoDataFrame(geometry=[box(x0 + 2, y0 - 8, x0 + 8, y0 - 2)], crs=UTM).to_file(tmp_path / "b.gpkg")
    (tmp_path / "scenes.csv").write_text("id,image,mask\ndark,dark.tif,b.gpkg\n")
    before = hashes(scene, tmp_path / "b.gpkg")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        from eoseg.cli.app import main

        main(["prepare", "demo", "--scenes", str(tmp_path / "scenes.csv"), "--out", str(tmp_path / "chips"),
              "--quiet", "data.chips.size=32", "data.chips.overlap=0", "data.folds=2"])
    captured = capsys.readouterr()
    assert exit_info.value.code == 0, captured.err
    warning = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert warning == [f"warning: {scene}: scene dark has no valid pixel (every pixel is nodata or NaN; nodata "
                       f"image: {0 if dtype == 'uint8' else 'nan'}): it gives 0 chips; check data.nodata or drop the "
                       "scene"]
    assert "RuntimeWarning" not in captured.err
    assert "0 chips from 1 scenes; 1 scene(s) without valid pixels: dark in" in captured.out
    code, line = run(capsys, "train", "demo", f"data.root={tmp_path / 'chips'}", f"train.out={tmp_path / 'runs'}",
                     "--quiet")
    assert code == 2
    assert line == (f"error: {tmp_path / 'chips' / 'manifest.parquet'}: the dataset has no chips (every scene was "
                    "empty or all nodata: see the warnings of eoseg prepare); nothing to train on: prepare scenes "
                    "with valid pixels")
    assert hashes(scene, tmp_path / "b.gpkg") == before

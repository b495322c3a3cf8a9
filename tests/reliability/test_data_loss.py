"""Nothing lost: a full disk fails the command with one line (no unreadable chip is listed, no partial
output is renamed into place), outputs never overwrite inputs, a finished run is never replaced silently."""

from __future__ import annotations

import subprocess
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from reliability_helpers import TRANSFORM, UTM, hashes, run, write_scene
from shapely.geometry import box


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 1 MiB tmpfs (needs root and mount rights; skipped with the reason otherwise)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tiny tmpfs to fill ({mounted.stderr.strip() or 'mount failed'})")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def noisy_scene(folder: Path, size: int = 640) -> Path:
    """An incompressible RGB scene with one building, and its scenes.csv."""
    image = np.random.default_rng(0).integers(1, 255, (3, size, size)).astype(np.uint8)
    write_scene(folder / "scene.tif", image)
    x0, y0 = TRANSFORM.c, TRANSFORM.f
    gpd.GeoDataFrame(geometry=[box(x0 + 10, y0 - 30, x0 + 30, y0 - 10)], crs=UTM).to_file(folder / "b.gpkg")
    (folder / "scenes.csv").write_text("id,image,mask\ntown,scene.tif,b.gpkg\n")
    return folder / "scenes.csv"


@pytest.mark.slow
def test_prepare_on_a_full_disk_fails_and_lists_no_unreadable_chip(tmp_path, tiny_disk, capsys):
    scenes = noisy_scene(tmp_path)
    before = hashes(tmp_path / "scene.tif", tmp_path / "b.gpkg", scenes)
    code, line = run(capsys, "prepare", "demo", "--scenes", scenes, "--out", tiny_disk / "chips", "--quiet",
                     "data.chips.size=64", "data.chips.overlap=0", "data.folds=1")
    assert code == 2
    assert line.startswith(f"error: {tiny_disk / 'chips'}/chips/town/") and "(disk full" in line
    assert not (tiny_disk / "chips" / "manifest.parquet").exists()
    assert not [p for p in tiny_disk.rglob("*") if p.is_file() and ".part" in p.name]  # no temporaries
    assert hashes(tmp_path / "scene.tif", tmp_path / "b.gpkg", scenes) == before


@pytest.mark.slow
def test_predict_on_a_full_disk_fails_and_renames_nothing(tmp_path, tiny_disk, checkpoint, capsys):
    scene = write_scene(tmp_path / "city.tif", np.random.default_rng(1).integers(1, 255, (1, 192, 192)).astype(
        np.uint8))
    (tiny_disk / "filler").write_bytes(np.random.default_rng(2).bytes(1000 * 1024))
    code, line = run(capsys, "predict", checkpoint, scene, "--out", tiny_disk / "pred", "-q")
    assert code == 2
    assert line.startswith("error: ") and f"{tiny_disk / 'pred' / 'city.'}" in line
    assert "could not write the output (disk full" in line
    assert not (tiny_disk / "pred").exists() or not any((tiny_disk / "pred").iterdir())


@pytest.mark.parametrize(
    ("command", "out_key"),
    [
        ("evaluate-mask", "mask"),
        ("evaluate-truth", "truth"),
        ("thresholds", "prob"),
        ("ensemble", "prob"),
        ("vectorize", "mask"),
    ],
)
def test_out_equal_to_an_input_is_refused(rasters, tmp_path, capsys, command, out_key):
    mask, prob, truth = rasters["mask"], rasters["prob"], rasters["truth"]
    out = rasters[out_key]
    args = {
        "evaluate-mask": ["evaluate", mask, "--truth", truth, "--out", out],
        "evaluate-truth": ["evaluate", mask, "--truth", truth, "--out", out],
        "thresholds": ["thresholds", prob, "--truth", mask, "--out", out],
        "ensemble": ["ensemble", prob, tmp_path / "." / "s.prob.tif", "--out", out],
        "vectorize": ["vectorize", mask, "--out", tmp_path / "sub" / ".." / out.name],
    }[command]
    before = hashes(tmp_path)
    code, line = run(capsys, *args)
    assert code == 2
    assert line.startswith("error: --out ") and f"is the input {out}" in line or f"is the input {tmp_path}" in line
    assert "the output would overwrite it" in line
    assert hashes(tmp_path) == before


def test_predict_out_equal_to_the_scene_is_refused(tmp_path, checkpoint, capsys):
    scene = write_scene(tmp_path / "city.tif", np.full((1, 64, 64), 7, np.uint8))
    before = hashes(tmp_path)
    code, line = run(capsys, "predict", checkpoint, scene, "--out", scene, "-q")
    assert code == 2 and line == (f"error: --out {scene}: is the input {scene}; the output would overwrite it: "
                                  "choose another output path")
    assert hashes(tmp_path) == before


def test_predict_output_named_like_an_input_is_refused(tmp_path, checkpoint, capsys):
    """Scene x.tif predicted into its own folder writes x.prob.tif: the other scene given."""
    first = write_scene(tmp_path / "x.tif", np.full((1, 64, 64), 7, np.uint8))
    second = write_scene(tmp_path / "x.prob.tif", np.full((1, 64, 64), 9, np.uint8))
    before = hashes(tmp_path)
    code, line = run(capsys, "predict", checkpoint, second, first, "--out", tmp_path, "-q")
    assert code == 2 and line.startswith(f"error: --out {tmp_path / 'x.prob.tif'}: is the input")
    assert hashes(tmp_path) == before


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_prepare_into_a_folder_holding_its_inputs_is_refused(tmp_path, capsys, overwrite):
    """Scenes kept in ./chips/ and --out . : writing (or --overwrite clearing) chips/ would destroy them."""
    scenes = noisy_scene(tmp_path / "chips", size=64)
    before = hashes(tmp_path)
    code, line = run(capsys, "prepare", "demo", "--scenes", scenes, "--out", tmp_path, "--quiet", *overwrite)
    assert code == 2 and line.startswith(f"error: --out {tmp_path / 'chips'}: holds the input")
    assert hashes(tmp_path) == before


def test_prepare_out_that_is_a_file_is_one_line(tmp_path, capsys):
    scenes = noisy_scene(tmp_path, size=64)
    (tmp_path / "chips").write_text("not a folder")
    before = hashes(tmp_path)
    code, line = run(capsys, "prepare", "demo", "--scenes", scenes, "--out", tmp_path / "chips", "--quiet")
    assert code == 2
    assert line == f"error: data.root (--out) {tmp_path / 'chips'}: is a file, not a folder; choose another output " \
                   "folder"
    assert hashes(tmp_path) == before


def earlier_run(tmp_path: Path) -> Path:
    run_dir = tmp_path / "runs" / "town"
    (run_dir / "checkpoints").mkdir(parents=True)
    for name in ("checkpoints/best.ckpt", "checkpoints/last.ckpt", "metrics.csv"):
        (run_dir / name).write_bytes(f"finished run: {name}".encode())
    return run_dir


def test_train_refuses_to_replace_a_finished_run(tmp_path, capsys):
    run_dir = earlier_run(tmp_path)
    before = hashes(tmp_path)
    code, line = run(capsys, "train", "demo", f"train.out={tmp_path / 'runs'}", "name=town",
                     f"data.root={tmp_path / 'chips'}", "--quiet")
    assert code == 2
    assert line == (f"error: {run_dir}: holds an earlier run (checkpoints/best.ckpt, checkpoints/last.ckpt, "
                    "metrics.csv); continue it with --resume, replace it with --overwrite, or give another name=...")
    assert hashes(tmp_path) == before


def test_train_overwrite_removes_the_earlier_run_first(tmp_path, capsys):
    run_dir = earlier_run(tmp_path)
    (run_dir / "notes.txt").write_text("mine")
    code, line = run(capsys, "train", "demo", f"train.out={tmp_path / 'runs'}", "name=town",
                     f"data.root={tmp_path / 'chips'}", "--quiet", "--overwrite")
    assert code == 2 and "manifest" in line  # no dataset there: the run itself fails, after the clean-up
    assert sorted(p.name for p in run_dir.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("name", ["/abs/run", "../../escaped", "a/../../b"])
def test_run_name_must_stay_inside_train_out(tmp_path, capsys, name):
    code, line = run(capsys, "train", "demo", f"train.out={tmp_path / 'runs'}", f"name={name}", "--quiet")
    assert code == 2
    assert f"name: {name!r} is not a run name inside train.out" in line
    assert not (tmp_path / "runs").exists() and not Path("/abs").exists()

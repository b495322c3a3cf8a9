"""What every competition recipe shares: its picture files open quietly, and submissions check their inputs once.

The competitions publish JPEG / PNG / JPEG 2000 files without georeference; GDAL's "no geotransform" note
(rasterio's NotGeoreferencedWarning) is noise for them and is silenced where they are opened
(:func:`eoseg.geo.raster.open_raster`), but kept for a GeoTIFF scene that lost its georeference.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from eoseg.config.schema import CloudsFormat, GeoposeFormat
from eoseg.errors import ConfigError, InputError
from eoseg.geo.raster import open_raster
from eoseg.inference.competitions import check_submission_inputs

from .clouds.data import make_clouds_dataset, write_jpeg
from .geopose.data import make_geopose_dataset

NO_GRID = ("geotransform", "Affine.identity")


def _plain_tiff(path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="GTiff", count=1, height=8, width=8, dtype="uint8") as dst:
            dst.write(np.ones((1, 8, 8), np.uint8))
    return path


def test_pictures_open_quietly_but_a_geotiff_without_grid_still_warns(tmp_path):
    jpeg = tmp_path / "a.jpg"
    write_jpeg(jpeg, np.full((3, 16, 16), 100, np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotGeoreferencedWarning)
        with open_raster(jpeg) as src:
            assert src.shape == (16, 16)
    with pytest.warns(NotGeoreferencedWarning, match="no geotransform"), open_raster(_plain_tiff(tmp_path / "b.tif")):
        pass


def _prepare_output(args: list[str]) -> str:
    """``eoseg ARGS`` in its own process, as a user runs it (the warning filters are the CLI's, not pytest's)."""
    done = subprocess.run([str(Path(sys.executable).parent / "eoseg"), *args], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def test_prepare_clouds_prints_no_georeference_warning(tmp_path):
    kaggle = make_clouds_dataset(tmp_path / "kaggle", n_train=2, n_test=0)
    out = _prepare_output(["prepare", "clouds", "--scenes", str(kaggle / "train.csv"), "--out", str(tmp_path / "c"),
                           "data.format.size=[64,96]", "data.chips.size=64", "data.chips.overlap=32",
                           "data.folds=2"])
    assert (tmp_path / "c" / "manifest.parquet").is_file()
    assert not [line for line in out.splitlines() if any(n in line for n in NO_GRID)], out


def test_prepare_geopose_prints_no_georeference_warning(tmp_path):
    data = make_geopose_dataset(tmp_path / "gp", per_city=1, test_per_city=0)
    out = _prepare_output(["prepare", "geopose", "--scenes", str(data / "metadata.csv"), "--out", str(tmp_path / "c"),
                           "data.chips.size=64", "data.chips.overlap=0", "data.folds=2"])
    assert (tmp_path / "c" / "manifest.parquet").is_file()
    assert not [line for line in out.splitlines() if any(n in line for n in NO_GRID)], out


def _bundle(fmt) -> SimpleNamespace:
    return SimpleNamespace(source="model.ckpt", config=SimpleNamespace(data=SimpleNamespace(format=fmt)))


@pytest.fixture
def tiles(tmp_path) -> list[Path]:
    paths = [tmp_path / "JAX_1_RGB.j2k", tmp_path / "OMA_2_RGB.j2k"]
    for path in paths:
        path.write_bytes(b"x")
    return paths


def test_submission_inputs_pass_and_return_the_checkpoints_format(tmp_path, tiles):
    fmt = GeoposeFormat(name="geopose", unit="m")
    out = tmp_path / "sub"
    assert check_submission_inputs([_bundle(fmt)], GeoposeFormat, tiles, ["JAX_1", "OMA_2"], out, "tile", "t") is fmt
    assert out.is_dir()


def test_submission_of_a_model_without_the_format_is_refused(tmp_path, tiles):
    with pytest.raises(ConfigError) as exc:
        check_submission_inputs([_bundle(None)], CloudsFormat, tiles, ["a", "b"], tmp_path / "sub", "image", "x")
    assert str(exc.value) == ("model.ckpt: --format clouds needs a model trained with data.format.name=clouds "
                              "(the clouds preset); predict its images without --format")
    assert not (tmp_path / "sub").exists()


def test_submission_with_an_id_twice_or_a_missing_file_is_refused_before_writing(tmp_path, tiles):
    geopose = [_bundle(GeoposeFormat(name="geopose"))]
    out = tmp_path / "sub"
    with pytest.raises(InputError) as exc:
        check_submission_inputs(geopose, GeoposeFormat, [*tiles, tiles[0]], ["JAX_1", "OMA_2", "JAX_1"], out,
                                "tile", "the <id>_RGB.j2k tiles of test/")
    assert str(exc.value) == ("--format geopose: tiles ['JAX_1'] are given twice; "
                              "a submission lists each tile once")
    missing = tmp_path / "PAR_3_RGB.j2k"
    with pytest.raises(InputError) as exc:
        check_submission_inputs(geopose, GeoposeFormat, [*tiles, missing], ["JAX_1", "OMA_2", "PAR_3"], out,
                                "tile", "the <id>_RGB.j2k tiles of test/")
    assert str(exc.value) == f"{missing}: image not found; give the <id>_RGB.j2k tiles of test/"
    assert not out.exists()
    blocker = tmp_path / "file"
    blocker.write_text("keep")
    with pytest.raises(InputError, match=r"file is a file, not a folder; choose another --out"):
        check_submission_inputs(geopose, GeoposeFormat, tiles, ["JAX_1", "OMA_2"], blocker / "sub", "tile", "t")
    assert blocker.read_text() == "keep"

"""Bad Overhead Geopose inputs: one line naming the file, and nothing written or changed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from eoseg.cli.app import main
from eoseg.errors import InputError
from eoseg.formats.geopose import find_metadata

from ..conftest import folder_hashes
from .data import make_geopose_dataset


@pytest.fixture
def data(tmp_path):
    return make_geopose_dataset(tmp_path / "geopose", per_city=1, test_per_city=0)


def _prepare_fails(tmp_path, data, capsys):
    chips = tmp_path / "chips"
    chips.mkdir()
    (chips / "keep.txt").write_text("earlier work")
    before, inputs = folder_hashes(chips), folder_hashes(data)
    with pytest.raises(SystemExit) as exc:
        main(["prepare", "geopose", "--scenes", str(data / "metadata.csv"), "--out", str(chips), "--quiet"])
    assert exc.value.code == 2
    assert folder_hashes(chips) == before and folder_hashes(data) == inputs
    captured = capsys.readouterr()
    message = (captured.out + captured.err).strip()
    assert len(message.splitlines()) == 1
    return message


def test_vflow_without_scale(tmp_path, data, capsys):
    (data / "train" / "OMA_t000_VFLOW.json").write_text(json.dumps({"angle": 1.0}))
    message = _prepare_fails(tmp_path, data, capsys)
    assert "OMA_t000_VFLOW.json" in message and "no numeric 'scale'" in message and "pixels per cm" in message


def test_agl_on_another_grid_than_its_rgb(tmp_path, data, capsys):
    agl = data / "train" / "JAX_t000_AGL.tif"
    with rasterio.open(agl, "w", driver="GTiff", count=1, height=100, width=120, dtype="uint16", nodata=65535) as dst:
        dst.write(np.zeros((1, 100, 120), np.uint16))
    message = _prepare_fails(tmp_path, data, capsys)
    assert "JAX_t000_AGL.tif" in message and "120x100 px differs from JAX_t000_RGB.j2k (128x128 px)" in message


def test_metadata_without_gsd_names_the_column(tmp_path, data, capsys):
    metadata = data / "metadata.csv"
    metadata.write_text("id,city\n" + "".join(f"{line.split(',')[0]},{line.split(',')[1]}\n"
                                              for line in metadata.read_text().splitlines()[1:]))
    message = _prepare_fails(tmp_path, data, capsys)
    assert "metadata.csv: no gsd column" in message and "metres per pixel" in message


def test_a_tile_without_a_number_for_gsd_is_named(tmp_path, data, capsys):
    metadata = data / "metadata.csv"
    metadata.write_text(metadata.read_text().replace("OMA_t000,OMA,", "OMA_t000,OMA,x"))
    message = _prepare_fails(tmp_path, data, capsys)
    assert "tile 'OMA_t000' has gsd" in message and "a number > 0" in message


def test_test_tiles_outside_the_competition_layout_need_their_metadata(tmp_path):
    tile = tmp_path / "elsewhere" / "JAX_t009_RGB.j2k"
    tile.parent.mkdir()
    tile.write_bytes(b"")
    with pytest.raises(InputError, match=r"JAX_t009_RGB.j2k: no metadata.csv in .* the model takes each tile's "
                                         r"ground sample distance \(gsd\) from it"):
        find_metadata(tile)
    (tmp_path / "metadata.csv").write_text("id,city,gsd\n")
    assert find_metadata(tile) == (tmp_path / "metadata.csv").resolve()

"""Overviews reduced block by block while a raster is written (OverviewPyramid) give the COG that GDAL's COG
driver gives when it computes them itself after the last block: same pixels and masks at every level, same
layout; no temporary is left behind, whether the raster is finished or fails."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from eoseg.geo import cog
from eoseg.geo.cog import OverviewPyramid, RasterSpec, TiledRasterWriter, overview_shapes

HEIGHT, WIDTH = 1024, 1536  # two levels: 512 x 768 and 256 x 384
GRID = {"crs": CRS.from_epsg(32616), "transform": Affine(0.5, 0, 500000, 0, -0.5, 3700000)}
SPECS = {
    "probabilities (uint8, mask band, average)": RasterSpec(
        WIDTH, HEIGHT, 2, "uint8", use_mask=True, band_names=("road", "building"), **GRID),
    "classes (uint8, nodata 255, nearest)": RasterSpec(
        WIDTH, HEIGHT, 1, "uint8", nodata=255, resampling="nearest", band_names=("class",), **GRID),
    "values (float32, nodata NaN, average)": RasterSpec(
        WIDTH, HEIGHT, 1, "float32", nodata=float("nan"), band_names=("height",), **GRID),
}


def _scene(spec: RasterSpec) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    valid = rng.random((HEIGHT, WIDTH)) > 0.1
    valid[:512] = True  # whole blocks valid (a shortcut of the reduction) ...
    valid[:300, :700] = False  # ... and whole 2x2 squares and blocks without a valid pixel
    if spec.dtype == "float32":
        data = rng.random((spec.count, HEIGHT, WIDTH)).astype(np.float32)
        data[:, ~valid] = np.nan
    else:
        data = rng.integers(0, 256 if spec.use_mask else 4, (spec.count, HEIGHT, WIDTH)).astype(np.uint8)
        if spec.nodata is not None:
            data[:, ~valid] = spec.nodata
    return data, valid


def _write_blocks(path, spec: RasterSpec, data: np.ndarray, valid: np.ndarray) -> None:
    blocks = [(r, c) for r in range(0, HEIGHT, 256) for c in range(0, WIDTH, 256)]
    with TiledRasterWriter(path, spec, block=256) as writer:
        for r, c in blocks[::-1]:  # any order
            writer.write_block(r, c, data[:, r : r + 256, c : c + 256], valid[r : r + 256, c : c + 256])
        writer.finish()


def _levels(path) -> list[tuple[np.ndarray, np.ndarray]]:
    with rasterio.open(path) as src:
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.overviews(1) == [2, 4]
        levels = [(src.read(), src.read_masks())]
        for factor in src.overviews(1):
            shape = (src.count, HEIGHT // factor, WIDTH // factor)
            levels.append((src.read(out_shape=shape), src.read_masks(out_shape=shape)))
        return levels


@pytest.mark.parametrize("buffer", [None, 0, 100_000], ids=["whole blocks", "piece by piece", "mixed"])
@pytest.mark.parametrize("kind", list(SPECS))
def test_overviews_built_from_blocks_equal_gdal_overviews(tmp_path, monkeypatch, kind, buffer) -> None:
    """Whether the levels' pieces are gathered into whole blocks or (a full buffer) written piece by piece."""
    if buffer is not None:
        monkeypatch.setattr(cog, "OVERVIEW_BUFFER", buffer)
    spec = SPECS[kind]
    assert OverviewPyramid.supports(spec, 256)
    data, valid = _scene(spec)
    _write_blocks(tmp_path / "ours.tif", spec, data, valid)
    rows = tmp_path / "rows"
    with TiledRasterWriter(rows / "ours.tif", spec) as writer:  # row bands of any height, 512-px blocks
        for r in range(0, HEIGHT, 300):
            writer.write_rows(r, data[:, r : r + 300], valid[r : r + 300])
        writer.finish()
    monkeypatch.setattr(OverviewPyramid, "supports", staticmethod(lambda spec, block: False))
    _write_blocks(tmp_path / "gdal.tif", spec, data, valid)  # GDAL computes the overviews at finish

    gdal = _levels(tmp_path / "gdal.tif")
    for ours in (_levels(tmp_path / "ours.tif"), _levels(rows / "ours.tif")):
        for (values, masks), (expected, expected_masks) in zip(ours, gdal, strict=True):
            np.testing.assert_array_equal(values, expected)
            np.testing.assert_array_equal(masks, expected_masks)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gdal.tif", "ours.tif", "rows"]
    assert [p.name for p in rows.iterdir()] == ["ours.tif"]


def test_overview_shapes_halve_until_one_block() -> None:
    assert overview_shapes(4096, 4096) == [(2048, 2048), (1024, 1024), (512, 512)]
    assert overview_shapes(1024, 65536)[-1] == (8, 512)
    assert overview_shapes(1025, 300) == [(513, 150), (257, 75)]  # odd sides round up
    assert overview_shapes(512, 512) == []


def test_overviews_need_blocks_that_halve_to_every_level() -> None:
    spec = SPECS["probabilities (uint8, mask band, average)"]
    assert not OverviewPyramid.supports(spec, 2)  # two levels need blocks that are multiples of 4
    half = RasterSpec(WIDTH, HEIGHT, 1, "float32", nodata=float("nan"), nbits=16, **GRID)
    assert not OverviewPyramid.supports(half, 256)  # half floats: GDAL computes them


def test_odd_sides_get_gdal_overviews(tmp_path) -> None:
    """GDAL halves an odd side rounding down (1,030 -> 515 -> 257): such rasters are left to GDAL, so the COG
    has GDAL's levels (a 2x2 reduction would give 515 -> 258 and other pixels)."""
    odd = [RasterSpec(n, n, 1, "uint8", use_mask=True, **GRID) for n in (1025, 1030)]
    assert [OverviewPyramid.supports(spec, 256) for spec in odd] == [False, False]
    spec = odd[1]
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, (1, 1030, 1030)).astype(np.uint8)
    with TiledRasterWriter(tmp_path / "odd.tif", spec, block=256) as writer:
        for r in range(0, 1030, 256):
            for c in range(0, 1030, 256):
                block = data[:, r : r + 256, c : c + 256]
                writer.write_block(r, c, block, np.ones(block.shape[1:], bool))
        writer.finish()
    shapes = []
    for level in range(2):
        with rasterio.open(tmp_path / "odd.tif", overview_level=level) as src:
            shapes.append(src.shape)
    assert shapes == [(515, 515), (257, 257)]


def test_missing_block_with_overviews_fails_and_leaves_nothing(tmp_path) -> None:
    spec = SPECS["classes (uint8, nodata 255, nearest)"]
    data, valid = _scene(spec)
    writer = TiledRasterWriter(tmp_path / "out.tif", spec, block=256)
    for r in range(0, HEIGHT, 256):
        for c in range(256, WIDTH, 256):  # the first block column is missing
            writer.write_block(r, c, data[:, r : r + 256, c : c + 256], valid[r : r + 256, c : c + 256])
    with pytest.raises(ValueError, match=r"only 1310720 of 1572864 pixels were written"):
        writer.finish()
    assert list(tmp_path.iterdir()) == []  # neither the target nor the temporary, its levels or its VRT

"""TiledRasterWriter by blocks: blocks in any order give the same COG pixels as rows in order; a missing
block fails at finish and leaves no file; blocks and rows do not mix."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from eoseg.geo.cog import RasterSpec, TiledRasterWriter
from eoseg.geo.raster import no_grid_warning

SPEC = RasterSpec(width=70, height=50, count=2, dtype="uint8", crs=CRS.from_epsg(32616),
                  transform=Affine(0.5, 0, 500000, 0, -0.5, 3700000), use_mask=True)


def _blocks(block: int):
    return [(r, c) for r in range(0, SPEC.height, block) for c in range(0, SPEC.width, block)]


def test_blocks_in_any_order_match_rows(tmp_path) -> None:
    data = np.random.default_rng(0).integers(0, 256, (2, 50, 70)).astype(np.uint8)
    valid = np.random.default_rng(1).random((50, 70)) > 0.2
    with TiledRasterWriter(tmp_path / "rows.tif", SPEC) as writer:
        writer.write_rows(0, data[:, :30], valid[:30])
        writer.write_rows(30, data[:, 30:], valid[30:])
        writer.finish()
    blocks = _blocks(16)[::-1]  # last block first
    with TiledRasterWriter(tmp_path / "blocks.tif", SPEC, block=16) as writer:
        for r, c in blocks:
            writer.write_block(r, c, data[:, r : r + 16, c : c + 16], valid[r : r + 16, c : c + 16])
        writer.finish()
    with rasterio.open(tmp_path / "rows.tif") as a, rasterio.open(tmp_path / "blocks.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())
        np.testing.assert_array_equal(a.read_masks(1), b.read_masks(1))
        assert b.block_shapes[0] == a.block_shapes[0]  # the COG has its own blocks, whatever the temporary's


def test_missing_block_fails_and_leaves_nothing(tmp_path) -> None:
    writer = TiledRasterWriter(tmp_path / "out.tif", SPEC, block=16)
    for r, c in _blocks(16)[1:]:
        writer.write_block(r, c, np.zeros((2, 16, 16), np.uint8)[:, : SPEC.height - r, : SPEC.width - c],
                           np.ones((16, 16), bool)[: SPEC.height - r, : SPEC.width - c])
    with pytest.raises(ValueError, match=r"only 3244 of 3500 pixels were written"):
        writer.finish()
    assert list(tmp_path.iterdir()) == []  # neither the target nor the temporary


def test_blocks_and_rows_do_not_mix(tmp_path) -> None:
    with TiledRasterWriter(tmp_path / "out.tif", SPEC, block=16) as writer:
        writer.write_block(0, 0, np.zeros((2, 16, 16), np.uint8), np.ones((16, 16), bool))
        with pytest.raises(ValueError, match="write_rows cannot follow write_block"):
            writer.write_rows(0, np.zeros((2, 16, 70), np.uint8), np.ones((16, 70), bool))
        writer.abort()
    with pytest.raises(ValueError, match="positive multiple of 16"):
        TiledRasterWriter(tmp_path / "x.tif", SPEC, block=20)


@pytest.mark.parametrize(("count", "nodata"), [(3, None), (4, None), (4, 255)])
def test_three_or_four_uint8_bands_are_classes_not_rgb_or_alpha(tmp_path, count, nodata) -> None:
    """GDAL reads 3 or 4 uint8 bands as RGB(A) unless told otherwise: a 4-class mask (clouds) had its 4th class
    as an alpha band and every read of its mask warned "nodata attribute is shadowing the alpha band"."""
    spec = RasterSpec(width=40, height=30, count=count, dtype="uint8", crs=SPEC.crs, transform=SPEC.transform,
                      nodata=nodata, use_mask=nodata is None)
    data = np.random.default_rng(0).integers(0, 255, (count, 30, 40)).astype(np.uint8)
    data[:, :5] = 255 if nodata is not None else data[:, :5]
    valid = np.ones((30, 40), bool)
    valid[:5] = False
    with TiledRasterWriter(tmp_path / "out.tif", spec) as writer:
        writer.write_rows(0, data, valid)
        writer.finish()
    with rasterio.open(tmp_path / "out.tif") as src, warnings.catch_warnings():
        warnings.simplefilter("error")  # NodataShadowWarning
        assert [c.name for c in src.colorinterp] == ["gray"] + ["undefined"] * (count - 1)
        np.testing.assert_array_equal(src.dataset_mask() > 0, valid)
        np.testing.assert_array_equal(src.read()[:, 5:], data[:, 5:])


@pytest.mark.parametrize("compress", ["zstd", "deflate"])
def test_data_directories_take_compress_and_mask_directories_are_deflate_by_gdal(tmp_path, compress) -> None:
    """Every data directory (full resolution, overview) is written with ``compress`` and the predictor; the
    1-bit internal mask directories are DEFLATE whatever ``compress`` is: GDAL's GTiff driver creates them
    so (GTiffDataset::CreateMaskBand, DEFLATE when built in, else PackBits) and has no option for them. If a
    GDAL release changes that, this test says so and docs/design.md's note is to be updated."""
    spec = RasterSpec(width=1024, height=1024, count=1, dtype="uint8", crs=CRS.from_epsg(32616),
                      transform=Affine(0.5, 0, 500000, 0, -0.5, 3700000), use_mask=True)
    data = np.random.default_rng(0).integers(0, 3, (1, 1024, 1024)).astype(np.uint8)
    valid = np.ones((1024, 1024), bool)
    valid[:100] = False
    with TiledRasterWriter(tmp_path / "m.tif", spec, compress) as writer:
        writer.write_rows(0, data, valid)
        writer.finish()
    seen = []
    with no_grid_warning():  # the TIFF directories after the first have no georeference of their own
        for number in range(1, 5):  # full resolution, its mask, the overview, its mask
            with rasterio.open(f"GTIFF_DIR:{number}:{tmp_path / 'm.tif'}") as ifd:
                structure = ifd.tags(ns="IMAGE_STRUCTURE")
                seen.append((ifd.width, structure["COMPRESSION"], structure.get("PREDICTOR")))
    data_ifd = (compress.upper(), "2")
    assert seen == [(1024, *data_ifd), (1024, "DEFLATE", None), (512, *data_ifd), (512, "DEFLATE", None)]

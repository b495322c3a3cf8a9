"""Raster I/O: clear errors, windows beyond the edge, resampling, alignment, validity, chip writing."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import rasterio.warp
from affine import Affine
from fixtures.synthetic_scenes import grid, write_raster
from rasterio.windows import Window

import eoseg.geo.raster
from eoseg.errors import InputError
from eoseg.geo.cog import to_cog
from eoseg.geo.raster import (
    align_to,
    check_overlap,
    open_raster,
    raster_info,
    read_window,
    valid_mask,
    write_geotiff,
)


def test_missing_raster_names_the_file(tmp_path):
    with pytest.raises(InputError, match=r"nope\.tif: raster file does not exist"):
        open_raster(tmp_path / "nope.tif")


def test_unreadable_raster_names_the_file(tmp_path):
    bad = tmp_path / "notes.tif"
    bad.write_text("this is not a raster")
    with pytest.raises(InputError, match=r"notes\.tif: not a readable raster"):
        open_raster(bad)


def test_truncated_raster_is_an_input_error_naming_the_file(tmp_path):
    path = write_raster(tmp_path / "cut.tif", np.random.default_rng(0).integers(1, 255, (3, 256, 256), dtype="uint8"))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError, match=r"cut\.tif: .*(truncated|not a readable raster)"):
        with open_raster(path) as src:
            read_window(src, Window(0, 0, 256, 256), (256, 256))


def test_window_beyond_the_edge_is_padded_with_nodata(tmp_path):
    array = np.arange(1, 101, dtype="uint16").reshape(1, 10, 10)
    with open_raster(write_raster(tmp_path / "a.tif", array)) as src:
        out = read_window(src, Window(6, -2, 8, 8), (8, 8), fill=0)
    assert out.shape == (1, 8, 8)
    assert (out[0, :2] == 0).all() and (out[0, :, 4:] == 0).all()
    np.testing.assert_array_equal(out[0, 2:, :4], array[0, 0:6, 6:10])


def test_window_read_into_a_reused_array_equals_a_fresh_read(tmp_path):
    array = np.arange(1, 101, dtype="uint16").reshape(1, 10, 10)
    with open_raster(write_raster(tmp_path / "a.tif", array)) as src:
        out = np.full((1, 8, 8), 7, np.uint16)
        for window in (Window(1, 2, 8, 8), Window(6, -2, 8, 8), Window(0, 0, 8, 8)):  # inside, beyond the edge
            back = read_window(src, window, (8, 8), fill=0, out=out)
            assert back is out
            np.testing.assert_array_equal(out, read_window(src, window, (8, 8), fill=0))
        with pytest.raises(ValueError, match="out must be uint16"):
            read_window(src, Window(0, 0, 8, 8), (8, 8), out=np.empty((1, 8, 8), np.uint8))


def test_window_at_scale_two_averages_blocks(tmp_path):
    array = np.arange(64, dtype="float32").reshape(1, 8, 8)
    with open_raster(write_raster(tmp_path / "a.tif", array, nodata=None)) as src:
        out = read_window(src, Window(0, 0, 8, 8), (4, 4), "average")
    expected = array[0].reshape(4, 2, 4, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(out[0], expected)


def test_window_at_scale_two_beyond_an_odd_edge_pads_partial_pixels(tmp_path):
    array = np.ones((1, 9, 9), dtype="uint8")
    with open_raster(write_raster(tmp_path / "a.tif", array)) as src:
        out = read_window(src, Window(0, 0, 12, 12), (6, 6), "average", fill=0)
    assert (out[0, :4, :4] == 1).all()  # pixels fully inside the 9 x 9 scene
    assert (out[0, 4:] == 0).all() and (out[0, :, 4:] == 0).all()  # straddling or outside -> nodata


def test_second_image_on_another_grid_is_aligned_onto_the_first(tmp_path):
    first = write_raster(tmp_path / "pre.tif", np.ones((1, 20, 20), dtype="uint8"))
    coarse = np.arange(1, 101, dtype="uint8").reshape(1, 10, 10)  # 2 m pixels, shifted 4 m east
    second = write_raster(tmp_path / "post.tif", coarse, transform=grid(2.0, (500_004.0, 4_000_000.0)))
    reference = raster_info(first)
    with open_raster(second) as src, align_to(src, reference, "nearest", 0) as vrt:
        out = read_window(vrt, Window(0, 0, 20, 20), (20, 20), fill=0)
    assert (out[0, :, :4] == 0).all()  # west of the second image: nodata
    np.testing.assert_array_equal(out[0, ::2, 4::2], coarse[0, :, :8])


def test_images_that_do_not_overlap_are_an_error(tmp_path):
    first = write_raster(tmp_path / "pre.tif", np.ones((1, 10, 10), dtype="uint8"))
    far = write_raster(tmp_path / "post.tif", np.ones((1, 10, 10), dtype="uint8"), transform=grid(1.0, (6e5, 0.0)))
    with pytest.raises(InputError, match=r"post\.tif: image 'post' does not overlap pre\.tif"):
        check_overlap(raster_info(first), raster_info(far), "image 'post'")


def test_valid_mask_integer_and_float():
    ints = np.array([[[1, 0], [3, 4]], [[1, 2], [0, 4]]], dtype="uint8")
    np.testing.assert_array_equal(valid_mask(ints, 0), [[True, False], [False, True]])
    floats = np.array([[[1.0, np.nan], [np.inf, -9999.0]]], dtype="float32")
    np.testing.assert_array_equal(valid_mask(floats, np.nan), [[True, False], [False, True]])
    np.testing.assert_array_equal(valid_mask(floats, -9999.0), [[True, False], [False, False]])
    assert valid_mask(ints, None).all()
    np.testing.assert_array_equal(valid_mask(ints, 4.0), [[True, True], [True, False]])  # a float nodata
    assert valid_mask(ints, -9999.0).all() and valid_mask(ints, 256).all()  # outside uint8: never equal
    assert valid_mask(ints, 0.5).all()  # not an integer: never equal
    int16 = np.array([[[-32768, 5], [7, -1]]], dtype="int16")
    np.testing.assert_array_equal(valid_mask(int16, -32768), [[False, True], [True, True]])
    np.testing.assert_array_equal(valid_mask(int16, -1.0), [[True, True], [True, False]])


def test_write_geotiff_keeps_georeference_and_nodata(tmp_path):
    array = np.full((2, 32, 32), 7, dtype="int16")
    transform = grid(0.5)
    path = write_geotiff(tmp_path / "chip.tif", array, rasterio.crs.CRS.from_epsg(32630), transform, -1, "deflate")
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == 32630 and src.transform == transform and src.nodata == -1
        assert src.compression.value == "DEFLATE"
        np.testing.assert_array_equal(src.read(), array)
    assert [p.name for p in tmp_path.iterdir()] == ["chip.tif"]  # no temporary file left


def test_second_image_in_another_crs_is_reprojected_onto_the_first(tmp_path):
    first = write_raster(tmp_path / "utm.tif", np.ones((1, 40, 40), dtype="uint8"))
    reference = raster_info(first)
    # the same area in geographic coordinates, a little larger, with a constant value
    bounds = rasterio.warp.transform_bounds(reference.crs, "EPSG:4326", *reference.bounds)
    west, south, east, north = bounds
    pad = 0.0001
    transform = rasterio.transform.from_bounds(west - pad, south - pad, east + pad, north + pad, 50, 50)
    geographic = write_raster(tmp_path / "wgs84.tif", np.full((1, 50, 50), 7, dtype="uint8"), transform, "EPSG:4326")
    with open_raster(geographic) as src, align_to(src, reference, "nearest", 0) as vrt:
        assert vrt.crs == reference.crs and vrt.transform == reference.transform
        out = read_window(vrt, Window(0, 0, 40, 40), (40, 40), fill=0)
    assert (out == 7).all()


@pytest.mark.parametrize(("compress", "levels"), [("deflate", (1, 12)), ("zstd", (1, 19))])
def test_chips_and_cogs_take_their_level_from_the_one_level_map(tmp_path, monkeypatch, compress, levels):
    """write_geotiff (chips) and to_cog (predict's COGs) write at COMPRESS_LEVELS' level: write_geotiff had a
    map of its own (level 1 hard-coded), so a level set in COMPRESS_LEVELS changed the COGs only."""
    rows = np.arange(512)[:, None] // 3 + np.arange(512)[None] // 5
    array = ((rows % 97) + np.random.default_rng(0).integers(0, 3, (512, 512)))[None].astype(np.uint8)
    transform = Affine(0.5, 0, 500000, 0, -0.5, 4000000)
    sizes: dict[str, list[int]] = {"chip": [], "cog": []}
    for level in levels:
        monkeypatch.setitem(eoseg.geo.raster.COMPRESS_LEVELS, compress, level)
        chip = write_geotiff(tmp_path / f"chip{level}.tif", array, rasterio.crs.CRS.from_epsg(32630), transform,
                             None, compress)
        to_cog(chip, tmp_path / f"cog{level}.tif", compress=compress)
        for kind in sizes:
            path = tmp_path / f"{kind}{level}.tif"
            with rasterio.open(path) as src:
                assert src.compression.name.lower() == compress
                np.testing.assert_array_equal(src.read(), array)
            sizes[kind].append(path.stat().st_size)
    assert sizes["chip"][1] < sizes["chip"][0]  # the higher level compresses more: it was applied
    assert sizes["cog"][1] < sizes["cog"][0]


def test_a_failed_window_read_names_gdal_s_error_not_a_hidden_exception(tmp_path):
    """rasterio says "Read failed. See previous exception for details." and chains GDAL's error: the user's
    line gave the former (no exception to see); it gives GDAL's cause (a truncated strip: where and how much)."""
    rows = np.arange(600)[:, None] * 7 + np.arange(600)[None]
    path = write_raster(tmp_path / "cut.tif", (rows % 251).astype("uint8")[None])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with open_raster(path) as src, pytest.raises(InputError) as error:
        read_window(src, Window(0, 480, 64, 64), (64, 64))
    message = str(error.value)
    assert message.startswith(f"{path}: reading window ") and "previous exception" not in message
    assert "Read error at scanline" in message and message.endswith("re-download or re-export it")

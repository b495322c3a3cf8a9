"""Polygonize and vectorize: exact round trip, band borders, holes, areas in m², attributes, formats."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from affine import Affine
from rasterio import features

from eoseg.errors import InputError
from eoseg.geo.polygonize import band_rows_for, pixel_area_m2, polygonize, polygonize_array
from eoseg.geo.raster import write_geotiff
from eoseg.post.vectorize import vectorize

UTM = "EPSG:32616"
TRANSFORM = Affine(0.5, 0, 740000.0, 0, -0.5, 3740000.0)  # 0.5 m pixels: 0.25 m² each


def ring_mask() -> np.ndarray:
    """A class-1 ring (with a hole) crossing rows 4|5, a class-2 block touching it, a lone class-1 pixel."""
    mask = np.zeros((12, 10), np.uint8)
    mask[2:9, 1:6] = 1
    mask[4:7, 2:4] = 0  # the hole, 6 pixels
    mask[2:9, 6:8] = 2  # touches the ring: a separate polygon of another class
    mask[10, 9] = 1
    return mask


def burn(frame: gpd.GeoDataFrame, shape: tuple[int, int], transform: Affine = TRANSFORM) -> np.ndarray:
    return features.rasterize(
        zip(frame.geometry, frame["class"], strict=True), out_shape=shape, transform=transform, dtype="uint8"
    )


@pytest.mark.parametrize("band_rows", [1, 3, 5, 1024])
def test_vectorize_then_rasterize_gives_back_the_mask(tmp_path, band_rows):
    mask = ring_mask()
    path = write_geotiff(tmp_path / "m.tif", mask[None], UTM, TRANSFORM, 255)
    frame = polygonize(path, band_rows=band_rows)
    assert np.array_equal(burn(frame, mask.shape), mask)
    assert len(frame) == 3  # ring, block, lone pixel: no seam splits a polygon
    ring = frame[(frame["class"] == 1) & (frame["area_m2"] > 1)].geometry.iloc[0]
    assert len(ring.interiors) == 1
    assert frame.crs == UTM


def test_random_masks_round_trip_for_any_band_height():
    rng = np.random.default_rng(3)
    mask = (rng.random((41, 37)) > 0.4) * rng.integers(1, 4, (41, 37))
    mask = mask.astype(np.uint8)
    whole = polygonize_array(mask, TRANSFORM, UTM, band_rows=1000)
    for band_rows in (1, 2, 7):
        banded = polygonize_array(mask, TRANSFORM, UTM, band_rows=band_rows)
        assert np.array_equal(burn(banded, mask.shape), mask)
        assert len(banded) == len(whole)
        assert sorted(banded.area_m2) == sorted(whole.area_m2)


def test_area_attribute_is_in_square_metres(tmp_path):
    mask = ring_mask()
    frame = polygonize(write_geotiff(tmp_path / "m.tif", mask[None], UTM, TRANSFORM, 255))
    ring_pixels = 7 * 5 - 6
    assert sorted(frame["area_m2"]) == [0.25, 14 * 0.25, ring_pixels * 0.25]
    assert pixel_area_m2(TRANSFORM, frame.crs) == 0.25


def test_area_in_a_geographic_crs_is_geodesic():
    degree = Affine(1e-5, 0, 10.0, 0, -1e-5, 0.0)  # at the equator 1e-5° ≈ 1.113 m
    frame = polygonize_array(np.ones((10, 10), np.uint8), degree, "EPSG:4326")
    assert frame["area_m2"].iloc[0] == pytest.approx(100 * 1.1132 * 1.1057, rel=2e-3)


def test_min_area_removes_small_polygons_and_mean_prob_is_added(tmp_path):
    mask = ring_mask()
    prob = np.where(mask > 0, 200, 10).astype(np.uint8)
    prob[10, 9] = 51
    mask_path = write_geotiff(tmp_path / "m.tif", mask[None], UTM, TRANSFORM, 255)
    prob_path = write_geotiff(tmp_path / "p.tif", prob[None], UTM, TRANSFORM, None)
    frame = vectorize(mask_path, prob=prob_path, min_area=0.3)
    assert len(frame) == 2 and frame["area_m2"].min() > 0.3
    assert np.allclose(frame["mean_prob"], 200 / 255)
    everything = vectorize(mask_path, prob=prob_path)
    assert everything["mean_prob"].min() == pytest.approx(51 / 255)


def test_wide_masks_are_traced_in_fewer_rows_with_the_same_polygons(tmp_path):
    assert [band_rows_for(w) for w in (1, 4096, 16384, 65536, 2**22, 2**23)] == [1024, 1024, 256, 64, 1, 1]
    width = 2**18  # 16 rows per band by default
    mask = np.zeros((40, width), np.uint8)
    mask[5:35, 10:width - 10] = 1  # a bar across every band border, with a hole and a notch
    mask[12:20, 1000:2000] = 0
    mask[30:35, 5000:6000] = 0
    mask[14:26, 3000] = 2  # a thin class-2 line crossing two band borders
    path = write_geotiff(tmp_path / "wide.tif", mask[None], UTM, TRANSFORM, 255)
    default = vectorize(path)
    whole = vectorize(path, band_rows=1024)  # one band
    assert len(default) == len(whole) == 2
    assert default.geometry.normalize().geom_equals(whole.geometry.normalize()).all()
    assert np.array_equal(burn(default, mask.shape), mask)
    assert len(default[default["class"] == 1].geometry.iloc[0].interiors) == 2  # the hole and the class-2 line


def test_polygonize_reads_bands_bounded_by_area_by_default(tmp_path, monkeypatch):
    """`eoseg evaluate` and benchmarks/vectorize.py call polygonize without band_rows: a 65,536-column mask
    is read 64 rows at a time (4 Mpx), not 1,024 full-width rows (+297 MB), with the same polygons."""
    import eoseg.geo.polygonize as module

    width = 65536
    mask = np.zeros((150, width), np.uint8)
    mask[20:140, 100:width - 100] = 1  # crosses both band borders
    mask[60:70, 5000:6000] = 0
    path = write_geotiff(tmp_path / "wide.tif", mask[None], UTM, TRANSFORM, 255)
    heights = []
    windows = module.row_windows
    monkeypatch.setattr(module, "row_windows", lambda h, w, rows: heights.append(rows) or windows(h, w, rows))
    default = polygonize(path)
    assert heights == [64]
    whole = polygonize(path, band_rows=1024)
    assert heights == [64, 1024]
    assert len(default) == len(whole) == 1
    assert default.geometry.normalize().geom_equals(whole.geometry.normalize()).all()


def test_min_area_per_class(tmp_path):
    mask_path = write_geotiff(tmp_path / "m.tif", ring_mask()[None], UTM, TRANSFORM, 255)
    frame = vectorize(mask_path, min_area=[0, 0, 100])  # class 2 block (3.5 m²) is dropped
    assert sorted(frame["class"]) == [1, 1]


@pytest.mark.parametrize("suffix", [".gpkg", ".parquet", ".geojson", ".shp"])
def test_vectorize_writes_each_format_atomically(tmp_path, suffix):
    mask_path = write_geotiff(tmp_path / "m.tif", ring_mask()[None], UTM, TRANSFORM, 255)
    out = tmp_path / "out" / f"polygons{suffix}"
    vectorize(mask_path, out, simplify=0.1)
    back = gpd.read_parquet(out) if suffix == ".parquet" else gpd.read_file(out)
    assert len(back) == 3 and back.crs == UTM
    assert {"class", "area_m2"} <= set(back.columns)
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    if suffix == ".shp":
        assert {p.suffix for p in out.parent.iterdir()} >= {".shp", ".dbf", ".shx", ".prj"}


def test_missing_mask_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match=r"nope\.tif: raster file does not exist"):
        vectorize(tmp_path / "nope.tif")


def test_output_folder_not_writable(tmp_path):
    mask_path = write_geotiff(tmp_path / "m.tif", ring_mask()[None], UTM, TRANSFORM, 255)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match=r"cannot write the output: .*file is a file, not a folder"):
        vectorize(mask_path, blocker / "out.gpkg")


def test_probability_raster_on_another_grid_is_refused(tmp_path):
    mask_path = write_geotiff(tmp_path / "m.tif", ring_mask()[None], UTM, TRANSFORM, 255)
    shifted = TRANSFORM @ Affine.translation(3, 0)
    prob_path = write_geotiff(tmp_path / "p.tif", np.zeros((1, 12, 10), np.uint8), UTM, shifted, None)
    with pytest.raises(InputError, match=r"p\.tif: not on the grid of m\.tif"):
        vectorize(mask_path, prob=prob_path)

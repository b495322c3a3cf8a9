"""Prediction products: masked uint8 probability rasters keep their nodata through every reader.

The rasters are written with the writer ``eoseg predict`` uses (``probability_spec`` + the tiled COG
writer): uint8 bytes with an internal mask. Under the mask the bytes say 255 (p = 1.0), so any reader
that ignores the mask turns nodata into a confident probability.
"""

from __future__ import annotations

import re
import subprocess
import sys
from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine

from eoseg.errors import InputError
from eoseg.geo.cog import TiledRasterWriter
from eoseg.geo.products import (
    IGNORE,
    decode_probabilities,
    encode_probabilities,
    probability_spec,
    read_heads,
    read_probabilities,
    stored_probabilities,
    write_heads,
    write_vector,
)
from eoseg.geo.raster import open_raster, write_geotiff
from eoseg.post.ensemble import ensemble_rasters
from eoseg.post.postprocess import Postprocessor
from eoseg.post.search import search_thresholds
from eoseg.post.zonal import zonal_means

UTM = "EPSG:32616"
TRANSFORM = Affine(1.0, 0, 500000.0, 0, -1.0, 4000000.0)
GRID = SimpleNamespace(width=8, height=6, crs=rasterio.crs.CRS.from_string(UTM), transform=TRANSFORM)


def masked_prob(path, prob: np.ndarray, valid: np.ndarray, names=("building",)):
    """A uint8 probability raster as predict writes it; invalid pixels hold byte 255 under the mask."""
    data, mask = encode_probabilities(prob.astype(np.float32), valid, "uint8")
    data[:, ~valid] = 255
    with TiledRasterWriter(path, probability_spec(GRID, names, "uint8")) as writer:
        writer.write_rows(0, data, mask)
        return writer.finish()


@pytest.fixture
def two_masked(tmp_path):
    valid_a = np.ones((6, 8), bool)
    valid_a[:, :2] = False  # columns 0-1 nodata in a
    valid_b = np.ones((6, 8), bool)
    valid_b[:, :1] = False  # column 0 nodata in both
    a = masked_prob(tmp_path / "a.prob.tif", np.full((1, 6, 8), 0.2), valid_a)
    b = masked_prob(tmp_path / "b.prob.tif", np.full((1, 6, 8), 0.6), valid_b)
    return a, b


def test_uint8_encoding_rounds_half_to_even_and_decodes_to_the_stored_probabilities():
    """predict thresholds the decoded bytes instead of quantising the floats twice: they must be the values
    ``stored_probabilities`` (what eoseg thresholds reads back) gives, and out-of-range or NaN values bytes
    that a reader never takes for a probability (invalid under the mask) or clipped ones."""
    prob = np.array([[[0.0, 0.5, 1.0, 1.2, -0.1, np.nan, np.inf, 0.25, 1 / 255, 0.998]]], np.float32)
    valid = np.ones((1, 10), bool)
    valid[0, 0] = False
    data, mask = encode_probabilities(prob, valid, "uint8")
    assert data.dtype == np.uint8
    assert data[0, 0].tolist() == [0, 128, 255, 255, 0, 0, 255, 64, 1, 254]  # 127.5 -> 128, 63.75 -> 64
    assert mask[0].tolist() == [False, True, True, True, True, False, False, True, True, True]
    rng = np.random.default_rng(0)
    many = rng.random((2, 64, 64), dtype=np.float32)
    many[0, 0, :256 // 64] = np.arange(4, dtype=np.float32) / 255 + np.float32(0.5 / 255)  # exact halves
    decoded = decode_probabilities(encode_probabilities(many, np.ones((64, 64), bool), "uint8")[0])
    np.testing.assert_array_equal(decoded, stored_probabilities(many, "uint8"))
    half, _ = encode_probabilities(many, np.ones((64, 64), bool), "float16")
    assert decode_probabilities(half) is half  # float16-stored float32: already the stored values


def test_reader_keeps_the_internal_mask_and_band_names(two_masked):
    a, _ = two_masked
    with open_raster(a) as src:
        assert src.descriptions == ("building",) and src.nodata is None
        prob = read_probabilities(src)
    assert np.isnan(prob[0, :, :2]).all()
    assert np.allclose(prob[0, :, 2:], 51 / 255)


def test_mean_ensemble_of_masked_rasters_keeps_nodata(two_masked, tmp_path):
    out = ensemble_rasters(list(two_masked), tmp_path / "mean.tif", "mean")
    with rasterio.open(out) as src:
        masks, data = src.read_masks(1), src.read(1)
    assert (masks[:, 0] == 0).all() and (masks[:, 1:] == 255).all()  # nodata only where both are nodata
    assert (data[:, 1] == 153).all()  # only b is valid there
    assert (data[:, 2:] == round((51 + 153) / 2)).all()


def test_vote_ensemble_of_masked_probabilities_keeps_nodata(two_masked, tmp_path):
    out = ensemble_rasters(list(two_masked), tmp_path / "vote.tif", "vote", min_votes=1, threshold=0.5)
    with rasterio.open(out) as src:
        votes = src.read(1)
    assert (votes[:, 0] == IGNORE).all()  # was 1: the masked bytes (p = 1.0) voted
    assert (votes[:, 1:] == 1).all()  # b says 0.6 > 0.5


def test_threshold_search_skips_masked_pixels(tmp_path):
    truth = np.zeros((6, 8), np.uint8)
    truth[1:4, 3:6] = 1
    prob = np.where(truth == 1, 0.7, 0.1)[None]
    valid = np.ones((6, 8), bool)
    valid[:, :2] = False  # bytes 255 there, truth 0: false positives if read as probabilities
    path = masked_prob(tmp_path / "p.prob.tif", prob, valid)
    truth_path = write_geotiff(tmp_path / "t.tif", truth[None], UTM, TRANSFORM, IGNORE)
    [choice] = search_thresholds([path], [truth_path], kind="binary", metric="iou", thresholds=[0.5])
    assert choice.score == pytest.approx(1.0)


def test_zonal_means_and_polygon_vote_skip_masked_pixels(tmp_path):
    prob = np.stack([np.full((6, 8), 0.7), np.full((6, 8), 0.3)])
    valid = np.ones((6, 8), bool)
    valid[:, :2] = False  # both bands 255 under the mask
    path = masked_prob(tmp_path / "d.prob.tif", prob, valid, names=("no-damage", "destroyed"))
    box = gpd.GeoDataFrame(geometry=[shapely.box(500000, 3999996, 500004, 4000000)], crs=UTM)  # cols 0-3
    means, counts = zonal_means(box, path)
    assert counts.tolist() == [8]  # 4 rows x 2 valid columns
    b0, b1 = np.rint(0.7 * 255), np.rint(0.3 * 255)
    assert means[0] == pytest.approx([b0 / 255, b1 / 255])
    voted = Postprocessor.vote_polygons(box, path, classes=["no-damage", "destroyed"])  # normalised per pixel first
    assert voted["class"].tolist() == ["no-damage"]
    assert voted["class_prob"].iloc[0] == pytest.approx(b0 / (b0 + b1))


def test_heads_json_round_trip_and_foreign_file(tmp_path):
    heads = {"image_class": {"kind": "image_class", "mean": [0.1, 0.9]}}
    assert read_heads(write_heads(tmp_path / "s.heads.json", heads)) == heads
    (tmp_path / "x.json").write_text("[1, 2]")
    with pytest.raises(InputError, match=r"x.json: not a heads.json file"):
        read_heads(tmp_path / "x.json")


@pytest.mark.parametrize("suffix", [".gpkg", ".fgb"])
def test_polygons_without_a_crs_are_written_without_pyogrio_s_note(tmp_path, suffix):
    """A competition's PNG grid has no CRS by design (and a scene without one was warned about once): the
    buildings of `predict --format xview2` printed pyogrio's "'crs' was not provided" note on every run. In a
    fresh process: eoseg's filter is set on import, and pytest restores the filters after collecting. They
    read back without a CRS, in the same pixel coordinates."""
    path = tmp_path / f"00003.buildings{suffix}"
    code = ("import geopandas as gpd, shapely, sys; from eoseg.geo.products import write_vector; "
            "write_vector(gpd.GeoDataFrame({'damage': [2]}, geometry=[shapely.box(0.5, 0, 4, 7.25)]), sys.argv[1])")
    run = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert run.stderr == ""
    back = gpd.read_file(path)
    assert back.crs is None
    assert back["damage"].tolist() == [2] and back.geometry[0].bounds == (0.5, 0, 4, 7.25)  # pixel coordinates


@pytest.mark.parametrize("suffix", [".geojson", ".json"])
def test_polygons_without_a_crs_are_not_written_as_geojson(tmp_path, suffix):
    """GDAL reads a GeoJSON without a crs member as EPSG:4326 (RFC 7946), so pixel polygons would open near
    0°, 0° in QGIS: refused in one line, an earlier file left as it was. With a CRS, GeoJSON is fine."""
    frame = gpd.GeoDataFrame({"damage": [2]}, geometry=[shapely.box(0, 0, 4, 4)])
    path = tmp_path / f"b{suffix}"
    path.write_text("earlier")
    with pytest.raises(InputError, match=re.escape(
            f"b{suffix}: these polygons have no CRS (pixel coordinates), but GeoJSON readers take coordinates as "
            "WGS84 longitude/latitude; write .gpkg or .fgb instead")):
        write_vector(frame, path)
    assert path.read_text() == "earlier"
    write_vector(frame.set_crs("EPSG:32616"), tmp_path / "utm.geojson")
    assert gpd.read_file(tmp_path / "utm.geojson").crs == "EPSG:32616"

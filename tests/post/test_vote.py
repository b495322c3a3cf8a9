"""Per-polygon vote: the class with the highest mean probability wins the whole polygon; zonal means by blocks."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from affine import Affine

from eoseg.geo.raster import write_geotiff
from eoseg.post.postprocess import Postprocessor
from eoseg.post.zonal import zonal_means

UTM = "EPSG:32616"
TRANSFORM = Affine(1.0, 0, 500000.0, 0, -1.0, 4000000.0)


def test_mean_probability_not_pixel_majority_decides(tmp_path):
    prob = np.zeros((2, 4, 4), np.float32)
    prob[0], prob[1] = 0.5, 0.5
    # building A (left 2x2): three pixels lean to class 0, one is certainly class 1 -> mean says class 1
    prob[:, 0:2, 0:2] = np.array([0.55, 0.45])[:, None, None]
    prob[:, 1, 1] = [0.0, 1.0]
    # building B (right 2x2): class 0 everywhere
    prob[:, 2:4, 2:4] = np.array([0.9, 0.1])[:, None, None]
    path = write_geotiff(tmp_path / "p.tif", prob, UTM, TRANSFORM, None)
    boxes = [shapely.box(500000, 3999998, 500002, 4000000), shapely.box(500002, 3999996, 500004, 3999998)]
    buildings = gpd.GeoDataFrame({"id": [1, 2]}, geometry=boxes, crs=UTM)
    voted = Postprocessor.vote_polygons(buildings, path, classes=["no-damage", "destroyed"])
    assert voted["class"].tolist() == ["destroyed", "no-damage"]
    assert np.allclose(voted["class_prob"], [(0.45 * 3 + 1.0) / 4, 0.9])


def test_polygons_in_another_crs_are_reprojected_and_empty_ones_get_no_class(tmp_path):
    prob = np.stack([np.full((4, 4), 0.2), np.full((4, 4), 0.8)]).astype(np.float32)
    path = write_geotiff(tmp_path / "p.tif", prob, UTM, TRANSFORM, None)
    inside = gpd.GeoSeries([shapely.box(500001, 3999997, 500003, 3999999)], crs=UTM).to_crs("EPSG:4326")
    outside = gpd.GeoSeries([shapely.box(600000, 3000000, 600001, 3000001)], crs=UTM).to_crs("EPSG:4326")
    frame = gpd.GeoDataFrame(geometry=gpd.GeoSeries([inside[0], outside[0]], crs="EPSG:4326"))
    voted = Postprocessor.vote_polygons(frame, path, classes=[1, 4], normalize=False)
    assert voted["class"].iloc[0] == 4 and voted["class"].isna().iloc[1]


def test_zonal_means_by_blocks_of_any_size_are_the_whole_rasters_means(tmp_path):
    """Polygons spanning many blocks in both directions, overlapping ones (the last listed owns a pixel),
    nodata pixels and per-pixel normalisation: the same sums for blocks of 1 pixel to the whole raster."""
    rng = np.random.default_rng(0)
    prob = rng.random((3, 13, 17)).astype(np.float32)
    prob[:, 4, 2:9] = np.nan  # nodata: left out
    path = write_geotiff(tmp_path / "p.tif", prob, UTM, TRANSFORM, float("nan"))
    # pixel boxes (col0, row0, col1, row1): a wide strip, a tall one crossing it, a box inside the strip
    boxes = [(1, 2, 16, 6), (5, 0, 8, 13), (10, 3, 12, 5)]
    polygons = gpd.GeoSeries([shapely.box(*TRANSFORM @ (c0, r1), *TRANSFORM @ (c1, r0)) for c0, r0, c1, r1 in boxes],
                             crs=UTM)
    owner = np.zeros((13, 17), int)  # the expected owner of each pixel: 1-based id, later polygons on top
    for i, (c0, r0, c1, r1) in enumerate(boxes, start=1):
        owner[r0:r1, c0:c1] = i
    valid = np.isfinite(prob).all(axis=0)
    for normalize in (False, True):
        values = prob / prob.sum(axis=0) if normalize else prob
        expected = np.array([values[:, (owner == i) & valid].mean(axis=1) for i in (1, 2, 3)])
        counts = [int(((owner == i) & valid).sum()) for i in (1, 2, 3)]
        for block in (1, 2, 5, 16, 1024):
            means, got = zonal_means(polygons, path, normalize=normalize, block=block)
            assert got.tolist() == counts, block
            assert means == pytest.approx(expected, rel=1e-6), (normalize, block)

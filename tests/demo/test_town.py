"""The synthetic town: georeferenced, deterministic by seed, and its footprints are the painted roofs."""

from __future__ import annotations

import cv2
import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.features import rasterize

from eoseg.demo.town import DEMO_CRS, NODATA, ROOF_COLOURS, make_town
from eoseg.errors import InputError


@pytest.fixture(scope="module")
def town(tmp_path_factory):
    return make_town(tmp_path_factory.mktemp("town"), seed=7, n_scenes=3, size=256)


def _read(scene):
    with rasterio.open(scene.image) as src:
        return src.read(), src.profile, src.transform


def test_scenes_are_georeferenced_rgb_at_half_a_metre(town):
    assert [s.split for s in town] == ["train", "train", "holdout"]
    assert len({s.id for s in town}) == 3
    bounds = []
    for scene in town:
        pixels, profile, transform = _read(scene)
        assert pixels.shape == (3, 256, 256) and pixels.dtype == np.uint8
        assert profile["crs"].to_string() == DEMO_CRS and profile["nodata"] == NODATA
        assert (transform.a, transform.e) == (0.5, -0.5)
        footprints = gpd.read_file(scene.footprints)
        assert footprints.crs.to_string() == DEMO_CRS
        assert len(footprints) == scene.buildings >= 5
        assert set(footprints["kind"]) <= {"rectangle", "L", "courtyard"}
        assert footprints.geometry.is_valid.all()
        bounds.append(rasterio.open(scene.image).bounds)
    assert bounds[0].right < bounds[1].left  # scenes lie apart
    nodata = [(_read(s)[0] == NODATA).all(axis=0).mean() for s in town]
    assert 0.05 < nodata[0] < 0.3 and nodata[1] == nodata[2] == 0  # one scene has a nodata corner


def test_town_is_deterministic_by_seed(town, tmp_path):
    again = make_town(tmp_path / "again", seed=7, n_scenes=3, size=256)
    other = make_town(tmp_path / "other", seed=8, n_scenes=3, size=256)
    for first, second, third in zip(town, again, other, strict=True):
        assert (_read(first)[0] == _read(second)[0]).all()
        assert gpd.read_file(first.footprints).geom_equals(gpd.read_file(second.footprints)).all()
        assert not np.array_equal(_read(first)[0], _read(third)[0])


def test_footprints_are_the_painted_roofs(town):
    """Inside each footprint the pixels have the roof's colour; just outside, they do not."""
    matched = contrasted = total = 0
    for scene in town[1:]:  # no nodata corner
        pixels, _, transform = _read(scene)
        image = np.moveaxis(pixels, 0, -1).astype(np.float32)
        footprints = gpd.read_file(scene.footprints)
        ids = rasterize(((g, i + 1) for i, g in enumerate(footprints.geometry)), out_shape=(256, 256),
                        transform=transform, dtype="int32")
        kernel = np.ones((3, 3), np.uint8)
        for i, row in enumerate(footprints.itertuples()):
            inside = ids == i + 1
            core = cv2.erode(inside.astype(np.uint8), kernel).astype(bool)
            ring = cv2.dilate(inside.astype(np.uint8), kernel, iterations=3).astype(bool)
            ring &= ~cv2.dilate(inside.astype(np.uint8), kernel).astype(bool)
            if core.sum() < 20 or ring.sum() < 20:
                continue
            total += 1
            roof = np.array(ROOF_COLOURS[row.roof], np.float32)
            # light and shade scale a roof's colour: compare chromaticity (colour / brightness)
            chroma = np.median(image[core] / image[core].sum(axis=1, keepdims=True), axis=0)
            matched += np.abs(chroma - roof / roof.sum()).max() < 0.03
            contrasted += np.abs(np.median(image[core], 0) - np.median(image[ring], 0)).sum() > 30
    assert total >= 15
    assert matched == total
    assert contrasted >= 0.9 * total


def test_town_needs_a_held_out_scene(tmp_path):
    with pytest.raises(InputError, match="n_scenes=1, holdout=1"):
        make_town(tmp_path, n_scenes=1)
    with pytest.raises(InputError, match="size=64 px is too small"):
        make_town(tmp_path, size=64)

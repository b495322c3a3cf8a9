"""Every bad input of ``eoseg prepare`` gives one clear line naming the file, and keeps finished work."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fixtures.synthetic_scenes import buildings_scene, gradient_image, grid, square_buildings, write_raster

from eoseg.config.loader import validate_config
from eoseg.data.prepare import prepare
from eoseg.errors import ConfigError, InputError
from eoseg.geo.vector import LabelWarning


def config(root, scenes, **targets):
    return validate_config(
        {
            "data": {
                "root": str(root),
                "scenes": scenes,
                "folds": 1,
                "chips": {"size": 64, "overlap": 0},
                "targets": targets or {"mask": {"kind": "vector"}},
            }
        }
    )


@pytest.fixture
def good(tmp_path):
    image, labels = buildings_scene(tmp_path / "good")
    return {"id": "good", "images": {"image": str(image)}, "targets": {"mask": str(labels)}}


def scene(sid, image, labels=None):
    return {"id": sid, "images": {"image": str(image)}, "targets": {"mask": str(labels)} if labels else {}}


def run_after_good(tmp_path, good, bad, expected_error, match):
    """Prepare ``good`` (manifest written), then ``good`` + ``bad``: the error, and good's work kept."""
    root = tmp_path / "out"
    first = prepare(config(root, [good]), progress=False)
    manifest = first.manifest.read_bytes()
    with pytest.raises(expected_error, match=match) as info:
        prepare(config(root, [good, bad]), progress=False)
    assert "\n" not in str(info.value)
    assert first.manifest.read_bytes() == manifest  # nothing already written is lost
    assert (root / ".parts" / "good.json").is_file()
    assert all((root / p).is_file() for p in pd.read_parquet(first.manifest)["image:image"])


def test_path_does_not_exist(tmp_path, good):
    run_after_good(
        tmp_path,
        good,
        scene("bad", tmp_path / "missing.tif"),
        InputError,
        r"missing\.tif: image 'image' of scene bad does not exist",
    )


def test_unreadable_raster(tmp_path, good):
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"II*\x00garbage")
    run_after_good(tmp_path, good, scene("bad", junk), InputError, r"junk\.tif: not a readable raster")


def test_truncated_raster(tmp_path, good):
    path = write_raster(tmp_path / "cut.tif", np.random.default_rng(0).integers(1, 255, (3, 200, 200), dtype="uint8"))
    path.write_bytes(path.read_bytes()[:40_000])
    run_after_good(tmp_path, good, scene("bad", path), InputError, r"cut\.tif: .*truncated")


@pytest.mark.filterwarnings("ignore:.crs. was not provided")
def test_label_file_without_crs(tmp_path, good):
    # (a GeoJSON without a "crs" member is WGS 84 by the standard; a GeoPackage can truly lack one)
    square_buildings(grid(), [(5, 5)]).set_crs(None, allow_override=True).to_file(tmp_path / "nocrs.gpkg")
    bad = scene("bad", good["images"]["image"], tmp_path / "nocrs.gpkg")
    run_after_good(
        tmp_path,
        good,
        bad,
        InputError,
        r"nocrs\.gpkg: label file has no CRS; pass a CRS with data\.targets\.mask\.label_crs=",
    )
    fixed = config(tmp_path / "out2", [bad], mask={"kind": "vector", "label_crs": "EPSG:32630"})
    assert prepare(fixed, progress=False).chips == 4


def test_empty_label_file(tmp_path, good):
    labels = tmp_path / "empty.geojson"
    labels.write_text('{"type": "FeatureCollection", "features": []}')
    run_after_good(
        tmp_path,
        good,
        scene("bad", good["images"]["image"], labels),
        InputError,
        r"empty\.geojson: label file has no features",
    )


def test_images_of_one_sample_do_not_overlap(tmp_path, good):
    far = write_raster(tmp_path / "post.tif", gradient_image(50, 50), transform=grid(1.0, (700_000.0, 0.0)))
    bad = {"id": "bad", "images": {"image": good["images"]["image"], "post": str(far)}}
    root = tmp_path / "out"
    with pytest.raises(InputError, match=r"post\.tif: image 'post' of scene bad does not overlap scene\.tif"):
        prepare(config(root, [bad], mask={"kind": "vector"}), progress=False)
    assert not (root / "manifest.parquet").exists()


def test_band_counts_differ_between_scenes(tmp_path, good):
    four = write_raster(tmp_path / "four.tif", gradient_image(50, 50, bands=4))
    run_after_good(
        tmp_path,
        good,
        scene("bad", four),
        InputError,
        r"four\.tif: image 'image' of scene bad has 4 bands but scene good has 3",
    )


def test_class_map_names_a_value_absent_from_the_data(tmp_path, good):
    targets = {"mask": {"kind": "vector", "burn_attribute": "kind", "class_map": {"house": 1, "garage": 2}}}
    with pytest.raises(ConfigError, match=r"class_map: names value\(s\) \['garage'\] absent .*buildings\.geojson"):
        prepare(config(tmp_path / "out", [good], **targets), progress=False)


def test_no_feature_overlapping_the_scene_warns_and_gives_empty_chips(tmp_path, good):
    far = tmp_path / "far.geojson"
    square_buildings(grid(1.0, (700_000.0, 4_000_000.0)), [(0, 0)]).to_file(far)
    with pytest.warns(LabelWarning, match=r"far\.geojson: no label feature overlaps the scene"):
        result = prepare(config(tmp_path / "out", [scene("lonely", good["images"]["image"], far)]), progress=False)
    m = pd.read_parquet(result.manifest)
    assert len(m) == 4 and (m["frac:mask:1"] == 0).all() and (m["frac:mask:0"] == 1).all()

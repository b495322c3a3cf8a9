"""Vector labels: formats, CRS handling, repair, overlap warning, burn values and class maps."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from fixtures.synthetic_scenes import CRS, grid, square_buildings
from rasterio.crs import CRS as RasterCRS
from shapely.geometry import Polygon

from eoseg.errors import ConfigError, InputError
from eoseg.geo.vector import LabelWarning, burn_values, check_class_map, load_labels

SCENE_CRS = RasterCRS.from_string(CRS)
SCENE_BOUNDS = (500_000.0, 3_999_900.0, 500_100.0, 4_000_000.0)  # 100 x 100 m


def buildings(**columns):
    return square_buildings(grid(), [(10, 10), (50, 50)], **columns)


@pytest.mark.parametrize("name,driver", [("a.geojson", "GeoJSON"), ("a.gpkg", "GPKG"), ("a.shp", "ESRI Shapefile")])
def test_reads_ogr_formats(tmp_path, name, driver):
    buildings().to_file(tmp_path / name, driver=driver)
    frame = load_labels(tmp_path / name, SCENE_CRS, SCENE_BOUNDS)
    assert len(frame) == 2 and frame.crs == SCENE_CRS
    np.testing.assert_allclose(frame.area, [100, 100])


def test_reads_geoparquet_and_reprojects_to_the_scene(tmp_path):
    path = tmp_path / "a.parquet"
    buildings().to_crs("EPSG:4326").to_parquet(path)
    frame = load_labels(path, SCENE_CRS, SCENE_BOUNDS)
    assert frame.crs == SCENE_CRS
    np.testing.assert_allclose(frame.total_bounds, [500_010, 3_999_940, 500_060, 3_999_990], atol=1e-3)


def test_missing_label_file(tmp_path):
    with pytest.raises(InputError, match=r"gone\.geojson: label file does not exist"):
        load_labels(tmp_path / "gone.geojson", SCENE_CRS, SCENE_BOUNDS)


def test_empty_label_file(tmp_path):
    path = tmp_path / "empty.geojson"
    path.write_text('{"type": "FeatureCollection", "features": []}')
    with pytest.raises(InputError, match=r"empty\.geojson: label file has no features"):
        load_labels(path, SCENE_CRS, SCENE_BOUNDS)


@pytest.mark.filterwarnings("ignore:.crs. was not provided")
def test_label_file_without_crs_needs_label_crs(tmp_path):
    path = tmp_path / "nocrs.gpkg"
    buildings().set_crs(None, allow_override=True).to_file(path, driver="GPKG")
    with pytest.raises(InputError, match=r"nocrs\.gpkg: label file has no CRS; pass a CRS with data\.targets\.mask"):
        load_labels(path, SCENE_CRS, SCENE_BOUNDS, option="data.targets.mask.label_crs")
    frame = load_labels(path, SCENE_CRS, SCENE_BOUNDS, label_crs=CRS)
    assert len(frame) == 2


def test_no_feature_overlapping_the_scene_warns_and_gives_no_labels(tmp_path):
    path = tmp_path / "far.geojson"
    square_buildings(grid(1.0, (700_000.0, 4_000_000.0)), [(0, 0)]).to_file(path)
    with pytest.warns(LabelWarning, match=r"far\.geojson: no label feature overlaps the scene"):
        frame = load_labels(path, SCENE_CRS, SCENE_BOUNDS)
    assert len(frame) == 0


def test_invalid_geometries_are_repaired(tmp_path):
    bowtie = Polygon([(500_010, 3_999_990), (500_030, 3_999_970), (500_030, 3_999_990), (500_010, 3_999_970)])
    path = tmp_path / "bowtie.geojson"
    gpd.GeoDataFrame(geometry=[bowtie], crs=CRS).to_file(path)
    frame = load_labels(path, SCENE_CRS, SCENE_BOUNDS)
    assert frame.is_valid.all()
    assert frame.area.sum() == pytest.approx(200.0)  # two triangles of 10 x 20 / 2


def test_burn_values_from_attribute_with_class_map(tmp_path):
    frame = square_buildings(grid(), [(0, 0), (20, 0), (40, 0)], kind=["house", "shed", "tower"])
    kept, values = burn_values(frame, 1, "kind", {"house": 1, "shed": 2}, tmp_path / "a.geojson")
    assert len(kept) == 2 and values.tolist() == [1, 2]  # "tower" is not mapped: skipped
    _, constant = burn_values(frame, 3, None, None, "a.geojson")
    assert constant.tolist() == [3, 3, 3]


def test_burn_attribute_missing_lists_the_attributes(tmp_path):
    frame = buildings(kind=["a", "b"])
    with pytest.raises(InputError, match=r"a\.geojson: label file has no attribute 'type'; attributes: kind"):
        burn_values(frame, 1, "type", None, tmp_path / "a.geojson")


def test_class_map_naming_an_absent_value_is_an_error(tmp_path):
    path = tmp_path / "damage.geojson"
    buildings(kind=["house", "shed"]).to_file(path)
    check_class_map([path], "kind", {"house": 1, "shed": 2}, "data.targets.mask.class_map")
    with pytest.raises(ConfigError, match=r"class_map: names value\(s\) \['garage'\] absent .* damage\.geojson"):
        check_class_map([path], "kind", {"house": 1, "garage": 2}, "data.targets.mask.class_map")

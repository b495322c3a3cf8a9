"""SpaceNet CSV: round trips in pixel and map coordinates, empty images, errors."""

from __future__ import annotations

import geopandas as gpd
import pytest
import shapely
from affine import Affine

from eoseg.errors import InputError
from eoseg.formats.spacenet import read_spacenet_csv, write_spacenet_csv

TRANSFORM = Affine(0.5, 0, 740000.0, 0, -0.5, 3740000.0)


def buildings() -> gpd.GeoDataFrame:
    ring = shapely.box(10, 10, 30, 30).difference(shapely.box(15, 15, 20, 20))  # with a hole
    return gpd.GeoDataFrame(
        {"image_id": ["img1", "img1", "img2"], "building_id": [0, 1, 0]},
        geometry=[shapely.box(0, 0, 4.5, 3), ring, shapely.Polygon()],
    )


def test_round_trip_in_pixel_and_geo_coordinates(tmp_path):
    path = write_spacenet_csv(tmp_path / "truth.csv", buildings(), "pixel", TRANSFORM)
    header = path.read_text().splitlines()[0]
    assert header == "ImageId,BuildingId,PolygonWKT_Pix,PolygonWKT_Geo"
    pix = read_spacenet_csv(path, "pixel")
    assert pix["image_id"].tolist() == ["img1", "img1", "img2"]
    assert pix["building_id"].tolist() == [0, 1, -1]  # an image without buildings
    assert all(a.equals(b) for a, b in zip(pix.geometry[:2], buildings().geometry[:2], strict=True))
    assert pix.geometry[2].is_empty
    geo = read_spacenet_csv(path, "geo", crs="EPSG:32616")
    assert geo.crs == "EPSG:32616"
    assert geo.geometry[0].equals(shapely.box(740000.0, 3739998.5, 740002.25, 3740000.0))
    again = write_spacenet_csv(tmp_path / "again.csv", geo, "geo", {"img1": TRANSFORM, "img2": TRANSFORM})
    assert read_spacenet_csv(again, "pixel").geometry[1].equals(buildings().geometry[1])


def test_submission_layout_with_confidence(tmp_path):
    frame = buildings().iloc[:2].assign(confidence=[0.9, 0.4])
    path = write_spacenet_csv(tmp_path / "sub.csv", frame)
    assert path.read_text().splitlines()[0] == "ImageId,BuildingId,PolygonWKT_Pix,Confidence"
    assert read_spacenet_csv(path)["confidence"].tolist() == [0.9, 0.4]


def test_missing_file_and_wrong_columns(tmp_path):
    with pytest.raises(InputError, match=r"nope\.csv: SpaceNet CSV not found"):
        read_spacenet_csv(tmp_path / "nope.csv")
    (tmp_path / "bad.csv").write_text("ImageId,Wkt\na,POINT (1 1)\n")
    with pytest.raises(InputError, match=r"bad\.csv: not a SpaceNet CSV with geo coordinates: .*PolygonWKT_Geo"):
        read_spacenet_csv(tmp_path / "bad.csv", "geo")

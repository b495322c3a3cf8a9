"""xBD label JSON: buildings with damage classes, in pixel or WGS84 coordinates."""

from __future__ import annotations

import json

import pytest

from eoseg.errors import InputError
from eoseg.formats.xbd import read_xbd_json


def label_file(tmp_path):
    def feature(subtype, wkt, uid):
        props = {"feature_type": "building", "uid": uid}
        if subtype:
            props["subtype"] = subtype
        return {"properties": props, "wkt": wkt}

    doc = {
        "metadata": {"width": 1024, "height": 1024, "disaster": "test-fire"},
        "features": {
            "xy": [
                feature("no-damage", "POLYGON ((0 0, 10 0, 10 10, 0 10, 0 0))", "a"),
                feature("destroyed", "POLYGON ((20 20, 30 20, 30 30, 20 30, 20 20))", "b"),
                feature("un-classified", "POLYGON ((40 40, 50 40, 50 50, 40 50, 40 40))", "c"),
            ],
            "lng_lat": [feature(None, "POLYGON ((-120 35, -119.9 35, -119.9 35.1, -120 35))", "a")],
        },
    }
    path = tmp_path / "x_post_disaster.json"
    path.write_text(json.dumps(doc))
    return path


def test_damage_classes_and_coordinates(tmp_path):
    path = label_file(tmp_path)
    frame = read_xbd_json(path)
    assert frame["damage"].tolist() == [1, 4, 0]
    assert frame.crs is None and frame.geometry[1].bounds == (20, 20, 30, 30)
    assert frame.attrs["metadata"]["disaster"] == "test-fire"
    assert read_xbd_json(path, unclassified=1)["damage"].tolist() == [1, 4, 1]
    geo = read_xbd_json(path, "lng_lat")
    assert geo.crs == "EPSG:4326" and geo["damage"].tolist() == [0]  # pre-disaster style: no subtype


def test_not_an_xbd_file(tmp_path):
    (tmp_path / "other.json").write_text(json.dumps({"type": "FeatureCollection"}))
    with pytest.raises(InputError, match=r"other\.json: not an xBD label JSON with features\.xy"):
        read_xbd_json(tmp_path / "other.json")

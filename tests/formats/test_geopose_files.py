"""Overhead Geopose files: AGL uint16 cm with 65535 missing, VFLOW JSON, and the least-squares flow scale."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import rasterio

from eoseg.errors import InputError
from eoseg.formats.geopose import Vflow, read_agl, read_vflow, tile_id, write_agl, write_vflow
from eoseg.post.geopose import flow_scale


def test_agl_round_trip_in_centimetres_and_metres(tmp_path):
    metres = np.array([[0.0, 1.234], [np.nan, 25.0]])
    path = write_agl(tmp_path / "JAX_a_AGL.tif", metres, "cm")
    with rasterio.open(path) as src:
        assert src.read(1).tolist() == [[0, 123], [65535, 2500]] and src.dtypes[0] == "uint16"
    back = read_agl(path, "cm")
    assert back[0, 1] == pytest.approx(1.23) and np.isnan(back[1, 0]) and back[1, 1] == 25.0
    assert read_agl(write_agl(tmp_path / "m_AGL.tif", metres, "m"), "m")[1, 1] == 25.0


def test_vflow_round_trip_wraps_the_angle(tmp_path):
    path = write_vflow(tmp_path / "OMA_b_VFLOW.json", Vflow(scale=0.004, angle=-math.pi / 2))
    vflow = read_vflow(path)
    assert vflow.scale == 0.004 and vflow.angle == pytest.approx(1.5 * math.pi)
    assert vflow.direction == pytest.approx((-1.0, 0.0), abs=1e-12)  # (sin θ, cos θ)


def test_vflow_with_a_non_numeric_angle_is_refused(tmp_path):
    path = tmp_path / "x_VFLOW.json"
    path.write_text(json.dumps({"scale": 0.1, "angle": "north"}))
    with pytest.raises(InputError, match=r"x_VFLOW.json: no numeric 'angle'"):
        read_vflow(path)


def test_flow_scale_is_the_least_squares_slope_of_magnitude_on_height():
    height = np.array([[1.0, 2.0], [3.0, np.nan]])
    magnitude = 0.5 * np.nan_to_num(height) + np.array([[0.0, 0.0], [0.0, 9.0]])
    assert flow_scale(height, magnitude) == pytest.approx(0.5 * 14 / 14.01)


def test_tile_id_strips_the_suffixes():
    assert tile_id("test/JAX_abc_RGB.j2k") == "JAX_abc"

"""Band math: default band names, expressions over named bands, safe evaluation, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from eoseg.data.bandmath import BandMath, default_band_names, resolve_band_names
from eoseg.errors import ConfigError

VV = np.array([[[0.1, 0.01]]], dtype=np.float32)
VH = np.array([[[0.02, 0.001]]], dtype=np.float32)


def test_default_band_names():
    assert default_band_names("vv", 1) == ["vv"]
    assert default_band_names("image", 3) == ["image_1", "image_2", "image_3"]
    assert resolve_band_names({"image": ["r", "g", "b"]}, {"image": 3}) == {"image": ["r", "g", "b"]}
    assert resolve_band_names({}, {"pre": 2, "post": 1}) == {"pre": ["pre_1", "pre_2"], "post": ["post"]}


def test_band_names_must_match_the_band_count():
    with pytest.raises(ConfigError, match=r"data\.bands\.image: lists 2 band names but image 'image' has 3 bands"):
        resolve_band_names({"image": ["r", "g"]}, {"image": 3})


def test_sar_expressions_in_db():
    bm = BandMath(["vh", "vv", "(vh+vv)/2", "10*log10(vv)"], {"vh": ["vh"], "vv": ["vv"]})
    out = bm.apply({"vh": VH, "vv": VV})
    assert out.dtype == np.float32 and out.shape == (4, 1, 2) and bm.channels == 4
    np.testing.assert_allclose(out[2, 0], [0.06, 0.0055], rtol=1e-6)
    np.testing.assert_allclose(out[3, 0], [-10.0, -20.0], rtol=1e-6)
    assert bm.plain_band(0) == ("vh", 0) and bm.plain_band(2) is None


def test_empty_inputs_mean_all_bands_in_order():
    bm = BandMath([], {"pre": ["pre_1", "pre_2"], "post": ["post"]})
    assert bm.inputs == ["pre_1", "pre_2", "post"]
    images = {"pre": np.stack([np.zeros((2, 2)), np.ones((2, 2))]), "post": np.full((1, 2, 2), 5)}
    np.testing.assert_array_equal(bm.apply(images)[:, 0, 0], [0, 1, 5])


def test_unknown_band_lists_the_valid_names():
    with pytest.raises(ConfigError, match=r"data\.inputs: 'vv - hh' names unknown band 'hh'; valid bands: vh, vv"):
        BandMath(["vv - hh"], {"vh": ["vh"], "vv": ["vv"]})


@pytest.mark.parametrize("expr", ["vv.__class__", "__import__('os')", "vv[0]", "open('x')", "lambda: 1"])
def test_only_band_names_numbers_and_numexpr_functions_are_allowed(expr):
    with pytest.raises(ConfigError, match=r"data\.inputs: "):
        BandMath([expr], {"vv": ["vv"]})
